"""revlens: self-hosted revenue analytics for Stripe."""

__version__ = "0.1.0"

# The Stripe API version whose event shapes revlens normalizes; other versions are parked.
STRIPE_API_VERSION = "2024-06-20"
