"""Who an event belongs to: Amplitude's user id order, plus links that make one person one user.

Amplitude picks the user id of a Stripe event from the first of these that is set:
`metadata.amplitude_id`, `metadata.user_id`, `customer_email`, `customer.email` (an expanded
customer), `receipt_email`, `customer`. revlens keeps that order (the rank below is the step number)
and adds two last resorts, `customer_details.email` and `billing_details.email`, so a Checkout
session without a customer still has a user.

Going further: every event also names *aliases* of its user (its Stripe customer id and its
e-mail addresses). When an event resolves at a strong rank, each alias is linked to that user; a
later event whose own resolution is weaker than a link of one of its aliases takes the linked user.
So `cus_A` seen once with `metadata.user_id = u1` makes every later `cus_A` event belong to `u1`,
and `revlens reprocess` applies the links learned from all events to the earlier ones too.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

# Resolution steps, strongest first; the number is the rank stored with each event.
RANK_AMPLITUDE_ID = 1
RANK_USER_ID = 2
RANK_CUSTOMER_EMAIL = 3
RANK_EXPANDED_CUSTOMER_EMAIL = 4
RANK_RECEIPT_EMAIL = 5
RANK_CUSTOMER = 6
RANK_CUSTOMER_DETAILS_EMAIL = 7
RANK_BILLING_DETAILS_EMAIL = 8
RANK_NONE = 9

RANK_NAMES = {
    RANK_AMPLITUDE_ID: "metadata.amplitude_id",
    RANK_USER_ID: "metadata.user_id",
    RANK_CUSTOMER_EMAIL: "customer_email",
    RANK_EXPANDED_CUSTOMER_EMAIL: "customer.email",
    RANK_RECEIPT_EMAIL: "receipt_email",
    RANK_CUSTOMER: "customer",
    RANK_CUSTOMER_DETAILS_EMAIL: "customer_details.email",
    RANK_BILLING_DETAILS_EMAIL: "billing_details.email",
    RANK_NONE: "none",
}


@dataclass(frozen=True, slots=True)
class Link:
    """An alias (`customer:cus_..` or `email:a@b.c`) known to belong to `user_id`, learned at `rank`."""

    alias: str
    user_id: str
    rank: int


@dataclass(frozen=True, slots=True)
class Identity:
    """The resolved user of one event, how it was found, and the aliases it names."""

    user_id: str | None
    rank: int
    customer: str | None
    aliases: tuple[str, ...]
    linked_from: str | None = None  # the alias whose link decided the user, if one did


def _text(value: Any) -> str | None:
    if isinstance(value, str):
        value = value.strip()
        return value or None
    if isinstance(value, int) and not isinstance(value, bool):
        return str(value)
    return None


def _email(value: Any) -> str | None:
    text = _text(value)
    return text.lower() if text and "@" in text else None


# JSON-decoded Stripe objects hold plain dicts: `isinstance(x, dict)` is several times cheaper than
# an abstract Mapping check on this per-event path.
def _candidates(obj: Mapping[str, Any]) -> list[tuple[int, str]]:
    metadata = obj.get("metadata")
    meta: Mapping[str, Any] = metadata if isinstance(metadata, dict) else {}
    raw_customer = obj.get("customer")
    customer_obj: Mapping[str, Any] = raw_customer if isinstance(raw_customer, dict) else {}
    details = obj.get("customer_details")
    billing = obj.get("billing_details")
    found: list[tuple[int, str | None]] = [
        (RANK_AMPLITUDE_ID, _text(meta.get("amplitude_id"))),
        (RANK_USER_ID, _text(meta.get("user_id"))),
        (RANK_CUSTOMER_EMAIL, _email(obj.get("customer_email"))),
        (RANK_EXPANDED_CUSTOMER_EMAIL, _email(customer_obj.get("email"))),
        (RANK_RECEIPT_EMAIL, _email(obj.get("receipt_email"))),
        (RANK_CUSTOMER, customer_id(obj)),
        (RANK_CUSTOMER_DETAILS_EMAIL, _email(details.get("email")) if isinstance(details, dict) else None),
        (RANK_BILLING_DETAILS_EMAIL, _email(billing.get("email")) if isinstance(billing, dict) else None),
    ]
    return [(rank, value) for rank, value in found if value]


def customer_id(obj: Mapping[str, Any]) -> str | None:
    """The Stripe customer id of an object, whether `customer` is an id or an expanded customer."""
    raw = obj.get("customer")
    if isinstance(raw, dict):
        return _text(raw.get("id"))
    return _text(raw)


def resolve(obj: Mapping[str, Any], links: Mapping[str, Link]) -> Identity:
    """Resolve the user of a Stripe object, preferring a stronger link of one of its aliases.

    Example: an invoice with `customer_email = "A@x.com"` and `customer = "cus_1"`, where `cus_1` was
    linked to `u1` by an earlier `metadata.user_id`: its own answer is rank 3 (`a@x.com`); the link
    has rank 2, so the invoice belongs to `u1`.
    """
    candidates = _candidates(obj)
    customer = customer_id(obj)
    aliases: list[str] = []
    if customer:
        aliases.append(f"customer:{customer}")
    for rank, value in candidates:
        if rank in (RANK_USER_ID, RANK_AMPLITUDE_ID, RANK_CUSTOMER):
            continue
        alias = f"email:{value}"
        if alias not in aliases:
            aliases.append(alias)
    user_id, rank = (candidates[0][1], candidates[0][0]) if candidates else (None, RANK_NONE)
    linked_from = None
    for alias in aliases:
        link = links.get(alias)
        if link is not None and link.rank < rank:
            user_id, rank, linked_from = link.user_id, link.rank, alias
    return Identity(user_id, rank, customer, tuple(aliases), linked_from)


def learned_links(identity: Identity) -> list[Link]:
    """Links an event teaches: each alias belongs to the event's user, at the event's rank.

    A customer id is its own user at rank 6, which teaches nothing; so is an e-mail that is the user.
    """
    if identity.user_id is None or identity.rank >= RANK_CUSTOMER:
        return []
    own = f"email:{identity.user_id}"
    return [Link(alias, identity.user_id, identity.rank) for alias in identity.aliases if alias != own]
