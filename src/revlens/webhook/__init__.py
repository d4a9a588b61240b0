"""Receiving Stripe webhook deliveries: signature checks and the HTTP route."""
