"""Demo data: deterministic, realistic Stripe webhook events for `revlens demo`, benchmarks and tests."""
