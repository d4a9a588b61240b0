"""The registry of Stripe event types revlens keeps, checked against the Stripe library at import.

The 26 types of Amplitude's Stripe source (shared/reference/amplitude.md section 1.2, with Stripe's
real `issuing_*` names) plus refunds, disputes, credit notes and subscriptions. Anything else that
arrives is acknowledged and counted as ignored.
"""

from __future__ import annotations

import typing

from stripe._event import Event as _StripeEvent

AMPLITUDE_TYPES = (
    "charge.succeeded",
    "charge.refunded",
    "charge.captured",
    "charge.updated",
    "charge.failed",
    "invoice.payment_succeeded",
    "invoice.paid",
    "invoice.finalized",
    "invoice.marked_uncollectible",
    "invoice.payment_failed",
    "invoice.voided",
    "invoice.sent",
    "invoice.created",
    "payment_intent.succeeded",
    "payment_intent.canceled",
    "payment_intent.payment_failed",
    "payment_intent.amount_capturable_updated",
    "checkout.session.completed",
    "checkout.session.async_payment_succeeded",
    "checkout.session.async_payment_failed",
    "application_fee.created",
    "application_fee.refunded",
    "application_fee.refund.updated",
    "balance.available",
    "issuing_authorization.created",
    "issuing_transaction.created",
)

EXTRA_TYPES = (
    "refund.created",
    "refund.updated",
    "charge.refund.updated",
    "charge.dispute.created",
    "charge.dispute.updated",
    "charge.dispute.closed",
    "charge.dispute.funds_withdrawn",
    "charge.dispute.funds_reinstated",
    "credit_note.created",
    "credit_note.updated",
    "credit_note.voided",
    "customer.subscription.created",
    "customer.subscription.updated",
    "customer.subscription.deleted",
    "customer.subscription.paused",
    "customer.subscription.resumed",
    "customer.subscription.trial_will_end",
    "customer.subscription.pending_update_applied",
    "customer.subscription.pending_update_expired",
)

SUPPORTED_TYPES: frozenset[str] = frozenset(AMPLITUDE_TYPES + EXTRA_TYPES)

# Every name above must be a real event type of the pinned Stripe API version.
STRIPE_EVENT_TYPES: frozenset[str] = frozenset(typing.get_args(typing.get_type_hints(_StripeEvent)["type"]))
_unknown = SUPPORTED_TYPES - STRIPE_EVENT_TYPES
if _unknown:  # pragma: no cover - fails at import if the registry drifts from Stripe's list
    raise RuntimeError(f"not Stripe event types: {sorted(_unknown)}")
if len(AMPLITUDE_TYPES) != 26:  # pragma: no cover
    raise RuntimeError("Amplitude's Stripe table has 26 event types")

EVENT_PREFIX = "[Stripe] "


def event_name(stripe_type: str) -> str:
    """`payment_intent.succeeded` -> `[Stripe] payment_intent.succeeded`."""
    return EVENT_PREFIX + stripe_type


def is_supported(stripe_type: str) -> bool:
    return stripe_type in SUPPORTED_TYPES
