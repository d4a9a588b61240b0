"""Stripe event in, analytics event out: a pure function of the event and a context.

No I/O happens here. The loader hands in everything the result depends on (the project's reporting
currency and time zone, the rate table, the identity links it knows for the event's aliases), so the
same inputs always give the same analytics event, and tests are tables of payload -> expected event.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from revlens.normalize.events import event_name, is_supported
from revlens.normalize.fx import EMPTY_RATES, RateTable
from revlens.normalize.identity import RANK_NAMES, Link, learned_links, resolve
from revlens.normalize.product import products_of
from revlens.normalize.properties import flatten
from revlens.normalize.revenue import revenue_of


class EnvelopeError(ValueError):
    """A body that is JSON but not a Stripe event envelope."""


@dataclass(frozen=True, slots=True)
class Envelope:
    """The fields of a Stripe event envelope that routing needs, checked."""

    id: str
    type: str
    created: int
    api_version: str | None
    account: str | None
    livemode: bool


def parse_envelope(event: Any) -> Envelope:
    """Check that a decoded body is a Stripe event (`id`, `type`, `created`, `data.object`)."""
    if not isinstance(event, dict):
        raise EnvelopeError("body is not a JSON object")
    eid, etype, created = event.get("id"), event.get("type"), event.get("created")
    if not isinstance(eid, str) or not eid or len(eid) > 255:
        raise EnvelopeError("body is not a Stripe event: missing or invalid 'id'")
    if not isinstance(etype, str) or not etype or len(etype) > 255:
        raise EnvelopeError("body is not a Stripe event: missing or invalid 'type'")
    if isinstance(created, bool) or not isinstance(created, int) or not 0 <= created < 2**37:
        raise EnvelopeError("body is not a Stripe event: missing or invalid 'created'")
    data = event.get("data")
    if not isinstance(data, dict) or not isinstance(data.get("object"), dict):
        raise EnvelopeError("body is not a Stripe event: missing 'data.object'")
    version, account = event.get("api_version"), event.get("account")
    return Envelope(
        id=eid,
        type=etype,
        created=created,
        api_version=version if isinstance(version, str) else None,
        account=account if isinstance(account, str) else None,
        livemode=event.get("livemode") is True,
    )


@dataclass(frozen=True, slots=True)
class Context:
    """What normalization depends on besides the event itself."""

    currency: str = "USD"
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    endpoint_id: str = ""
    rates: RateTable = field(default_factory=lambda: EMPTY_RATES)
    links: Mapping[str, Link] = field(default_factory=dict)


@dataclass(slots=True)
class AnalyticsEvent:
    """One analytics event, Amplitude-shaped: type, time, user, properties, revenue."""

    insert_id: str
    event_type: str
    time: datetime  # UTC, naive
    local_time: datetime  # wall-clock time in the project's time zone, naive
    user_id: str | None
    user_rank: int
    customer: str | None
    revenue: Decimal | None
    product: str | None
    fx_missing: bool
    properties: dict[str, Any]


@dataclass(slots=True)
class Normalized:
    """The analytics event of a Stripe event (None for unsupported types) and the links it teaches."""

    event: AnalyticsEvent | None
    links: list[Link]
    aliases: tuple[str, ...] = ()


def local_date(created: int, tz: ZoneInfo) -> date:
    return datetime.fromtimestamp(created, UTC).astimezone(tz).date()


def normalize(event: Mapping[str, Any], ctx: Context) -> Normalized:
    """Turn one Stripe event into one analytics event under the revenue and identity policies."""
    env = parse_envelope(event)
    if not is_supported(env.type):
        return Normalized(None, [])
    data = event["data"]
    obj: Mapping[str, Any] = data["object"]
    previous = data.get("previous_attributes")
    prev: Mapping[str, Any] = previous if isinstance(previous, Mapping) else {}

    utc = datetime.fromtimestamp(env.created, UTC)
    local = utc.astimezone(ctx.timezone)
    identity = resolve(obj, ctx.links)
    product, products = products_of(obj)
    revenue = revenue_of(env.type, obj, prev, ctx.currency, local.date(), ctx.rates)

    props = flatten(obj)
    object_id = obj.get("id")
    props.update(
        {
            "stripe_event_id": env.id,
            "stripe_object_id": object_id if isinstance(object_id, str) else None,
            "stripe_endpoint": ctx.endpoint_id,
            "stripe_account": env.account,
            "livemode": env.livemode,
            "api_version": env.api_version,
            "user_id_source": RANK_NAMES[identity.rank],
        }
    )
    if product is not None:
        props["product"] = product
    if len(products) > 1:
        props["products"] = products
    if prev:
        props["previous_attributes"] = sorted(prev)
    if revenue is not None:
        props["original_revenue"] = revenue.original_amount
        props["original_currency"] = revenue.original_currency
        props["$revenueType"] = revenue.revenue_type
        if revenue.amount is not None:
            props["$revenue"] = revenue.amount
            props["$price"] = revenue.amount
            props["$quantity"] = 1
            props["$currency"] = ctx.currency
            props["fx_rate"] = revenue.rate
            if revenue.rate_date is not None:
                props["fx_date"] = revenue.rate_date.isoformat()
        else:
            props["fx_missing"] = True
    if product is not None:
        props["$productId"] = product
    props = {k: v for k, v in props.items() if v is not None}

    analytics = AnalyticsEvent(
        insert_id=env.id,
        event_type=event_name(env.type),
        time=utc.replace(tzinfo=None),
        local_time=local.replace(tzinfo=None),
        user_id=identity.user_id,
        user_rank=identity.rank,
        customer=identity.customer,
        revenue=revenue.amount if revenue is not None else None,
        product=product,
        fx_missing=revenue is not None and revenue.fx_missing,
        properties=props,
    )
    return Normalized(analytics, learned_links(identity), identity.aliases)
