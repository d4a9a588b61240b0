"""Normalization: pure functions from a Stripe event (and a context) to an analytics event."""

from revlens.normalize.events import SUPPORTED_TYPES, event_name, is_supported
from revlens.normalize.fx import RateTable
from revlens.normalize.identity import Link
from revlens.normalize.normalizer import (
    AnalyticsEvent,
    Context,
    Envelope,
    EnvelopeError,
    Normalized,
    normalize,
    parse_envelope,
)

__all__ = [
    "SUPPORTED_TYPES",
    "AnalyticsEvent",
    "Context",
    "Envelope",
    "EnvelopeError",
    "Link",
    "Normalized",
    "RateTable",
    "event_name",
    "is_supported",
    "normalize",
    "parse_envelope",
]
