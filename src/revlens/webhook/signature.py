"""Stripe-Signature headers: verification through the official library, and signing for tests and demos.

Verification is `stripe.WebhookSignature.verify_header`, so revlens accepts exactly what Stripe's
own library accepts (several `v1` signatures during secret rolling, `v0` ignored). Signing exists
because the demo and benchmarks send real deliveries; it is the same scheme Stripe documents:
HMAC-SHA256 over "<timestamp>.<raw body>" keyed by the full `whsec_...` secret.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Sequence

import stripe

# Stripe's libraries default to five minutes (stripe.Webhook.DEFAULT_TOLERANCE).
TOLERANCE_SECONDS = 300


class SignatureError(ValueError):
    """The Stripe-Signature header is missing, malformed, stale, or matches no secret."""


def compute_signature(payload: bytes, secret: str, timestamp: int) -> str:
    """The hex `v1` signature Stripe computes for `payload` sent at `timestamp`."""
    signed = b"%d." % timestamp + payload
    return hmac.new(secret.encode("utf-8"), signed, hashlib.sha256).hexdigest()


def sign(payload: bytes, secrets: str | Sequence[str], timestamp: int | None = None) -> str:
    """Build a Stripe-Signature header value, one `v1` per secret (as Stripe does while rolling)."""
    t = int(time.time()) if timestamp is None else timestamp
    keys = [secrets] if isinstance(secrets, str) else list(secrets)
    parts = [f"t={t}"] + [f"v1={compute_signature(payload, key, t)}" for key in keys]
    return ",".join(parts)


def verify(payload: bytes, header: str | None, secrets: Sequence[str], tolerance: int = TOLERANCE_SECONDS) -> None:
    """Raise SignatureError unless `header` carries a fresh `v1` signature made with one of `secrets`."""
    if not header:
        raise SignatureError("missing Stripe-Signature header")
    try:
        text = payload.decode("utf-8")
    except UnicodeDecodeError:
        raise SignatureError("body is not UTF-8, so it cannot carry a Stripe signature") from None
    last: Exception | None = None
    for secret in secrets:
        try:
            stripe.WebhookSignature.verify_header(text, header, secret, tolerance)  # type: ignore[no-untyped-call]
            return
        except stripe.SignatureVerificationError as exc:
            last = exc
        except (ValueError, TypeError) as exc:  # a header the library cannot parse at all
            last = exc
    reason = str(last) if last else "endpoint has no signing secret"
    raise SignatureError(reason)
