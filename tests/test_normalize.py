"""Table-driven normalization: Stripe payload in, expected analytics event out. No mocks, no I/O."""

from __future__ import annotations

import calendar
from datetime import date, datetime
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from revlens.normalize import SUPPORTED_TYPES, Context, EnvelopeError, Link, normalize, parse_envelope
from revlens.normalize.events import AMPLITUDE_TYPES
from revlens.normalize.fx import rates_from_mapping
from stripe_fixtures import envelope, object_for_type, stripe_object

CTX = Context(currency="USD", endpoint_id="we_test")


def _ts(*parts: int) -> int:
    return calendar.timegm(datetime(*parts).timetuple())


@pytest.mark.parametrize("event_type", sorted(SUPPORTED_TYPES))
def test_every_supported_type_becomes_one_event(event_type: str) -> None:
    obj = object_for_type(event_type)
    event = envelope(event_type, obj, event_id="evt_abc", created=1_700_000_000, account="acct_1")
    result = normalize(event, CTX)
    assert result.event is not None
    out = result.event
    assert out.event_type == f"[Stripe] {event_type}"
    assert out.insert_id == "evt_abc"
    assert out.time == datetime(2023, 11, 14, 22, 13, 20)
    props = out.properties
    assert props["stripe_event_id"] == "evt_abc"
    assert props.get("stripe_object_id") == obj.get("id")
    assert props["stripe_endpoint"] == "we_test"
    assert props["stripe_account"] == "acct_1"
    assert props["livemode"] is False
    assert props["api_version"] == "2024-06-20"
    assert props["object"] == obj["object"]
    # Only the two revenue rules set $revenue; every other event keeps raw amounts only.
    if event_type not in ("payment_intent.succeeded", "charge.refunded"):
        assert "$revenue" not in props


def test_registry_covers_amplitudes_table() -> None:
    assert len(AMPLITUDE_TYPES) == 26
    assert {"issuing_authorization.created", "issuing_transaction.created"} <= SUPPORTED_TYPES
    assert {"refund.created", "refund.updated", "charge.refund.updated", "charge.dispute.closed"} <= SUPPORTED_TYPES
    assert {"credit_note.voided", "customer.subscription.deleted"} <= SUPPORTED_TYPES
    assert "customer.created" not in SUPPORTED_TYPES


def test_unsupported_type_gives_no_event() -> None:
    result = normalize(envelope("customer.created", stripe_object("customer")), CTX)
    assert result.event is None


def test_flattening_with_dots_and_nulls_dropped() -> None:
    obj = stripe_object(
        "checkout.session",
        customer_details={"email": "a@example.com", "address": {"country": "FR"}, "phone": None},
        metadata={"plan": "pro"},
    )
    props = normalize(envelope("checkout.session.completed", obj), CTX).event.properties  # type: ignore[union-attr]
    assert props["customer_details.email"] == "a@example.com"
    assert props["customer_details.address.country"] == "FR"
    assert props["metadata.plan"] == "pro"
    assert "customer_details.phone" not in props
    assert all(value is not None for value in props.values())


# --- user id resolution: every step of Amplitude's order ---------------------------------------------

FULL: dict[str, Any] = {
    "metadata": {"amplitude_id": "amp_1", "user_id": "user_1"},
    "customer_email": "Invoice@Example.com",
    "customer": {"id": "cus_X", "object": "customer", "email": "expanded@example.com"},
    "receipt_email": "receipt@example.com",
}


def _without(*keys: str) -> dict[str, Any]:
    obj: dict[str, Any] = {"id": "ch_1", "object": "charge", "metadata": dict(FULL["metadata"])}
    obj.update({k: v for k, v in FULL.items() if k != "metadata"})
    for key in keys:
        if key.startswith("metadata."):
            obj["metadata"].pop(key.split(".", 1)[1])
        elif key == "customer.email":
            obj["customer"] = "cus_X"
        else:
            obj.pop(key)
    return obj


@pytest.mark.parametrize(
    ("obj", "user_id", "source"),
    [
        (_without(), "amp_1", "metadata.amplitude_id"),
        (_without("metadata.amplitude_id"), "user_1", "metadata.user_id"),
        (_without("metadata.amplitude_id", "metadata.user_id"), "invoice@example.com", "customer_email"),
        (
            _without("metadata.amplitude_id", "metadata.user_id", "customer_email"),
            "expanded@example.com",
            "customer.email",
        ),
        (
            _without("metadata.amplitude_id", "metadata.user_id", "customer_email", "customer.email"),
            "receipt@example.com",
            "receipt_email",
        ),
        (
            _without("metadata.amplitude_id", "metadata.user_id", "customer_email", "customer.email", "receipt_email"),
            "cus_X",
            "customer",
        ),
        (
            {"id": "cs_1", "object": "checkout.session", "customer_details": {"email": "d@example.com"}},
            "d@example.com",
            "customer_details.email",
        ),
        (
            {"id": "ch_2", "object": "charge", "billing_details": {"email": "b@example.com"}},
            "b@example.com",
            "billing_details.email",
        ),
        ({"id": "ba_1", "object": "balance"}, None, "none"),
    ],
)
def test_user_id_order(obj: dict[str, Any], user_id: str | None, source: str) -> None:
    out = normalize(envelope("charge.succeeded", obj), CTX).event
    assert out is not None
    assert out.user_id == user_id
    assert out.properties["user_id_source"] == source


def test_links_make_one_person_one_user() -> None:
    first = normalize(
        envelope(
            "payment_intent.succeeded",
            {
                "id": "pi_1",
                "object": "payment_intent",
                "customer": "cus_9",
                "metadata": {"user_id": "u9"},
                "receipt_email": "p@example.com",
                "amount_received": 500,
                "currency": "usd",
            },
        ),
        CTX,
    )
    links = {link.alias: link for link in first.links}
    assert links["customer:cus_9"] == Link("customer:cus_9", "u9", 2)
    assert links["email:p@example.com"].user_id == "u9"
    ctx = Context(currency="USD", endpoint_id="we_test", links=links)
    later_charge = normalize(envelope("charge.succeeded", {"id": "ch_1", "object": "charge", "customer": "cus_9"}), ctx)
    assert later_charge.event is not None and later_charge.event.user_id == "u9"
    by_email = normalize(
        envelope("invoice.paid", {"id": "in_1", "object": "invoice", "customer_email": "P@example.com"}), ctx
    )
    assert by_email.event is not None and by_email.event.user_id == "u9"
    # An event's own stronger id still wins over a weaker link.
    own = normalize(
        envelope(
            "charge.succeeded",
            {"id": "ch_2", "object": "charge", "customer": "cus_9", "metadata": {"amplitude_id": "amp_9"}},
        ),
        ctx,
    )
    assert own.event is not None and own.event.user_id == "amp_9"
    # Without the link the same charge would belong to the customer id.
    alone = normalize(envelope("charge.succeeded", {"id": "ch_1", "object": "charge", "customer": "cus_9"}), CTX)
    assert alone.event is not None and alone.event.user_id == "cus_9" and alone.links == []


# --- revenue ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("amount", "currency", "revenue"),
    [(1999, "usd", Decimal("19.99")), (2000, "USD", Decimal("20.00"))],
)
def test_payment_intent_succeeded_is_revenue(amount: int, currency: str, revenue: Decimal) -> None:
    obj = stripe_object("payment_intent", amount=amount + 100, amount_received=amount, currency=currency)
    out = normalize(envelope("payment_intent.succeeded", obj), CTX).event
    assert out is not None
    assert out.revenue == revenue
    assert out.properties["$revenue"] == revenue
    assert out.properties["$currency"] == "USD"
    assert out.properties["$revenueType"] == "purchase"
    assert out.properties["amount_received"] == amount  # raw minor units kept


def test_refunds_count_once_as_the_newly_refunded_part() -> None:
    charge = stripe_object("charge", amount=5000, currency="usd", amount_refunded=2000, refunded=False)
    first = normalize(envelope("charge.refunded", charge, previous={"amount_refunded": 0, "refunded": False}), CTX)
    charge2 = stripe_object("charge", amount=5000, currency="usd", amount_refunded=5000, refunded=True)
    second = normalize(envelope("charge.refunded", charge2, previous={"amount_refunded": 2000}), CTX)
    assert first.event is not None and second.event is not None
    assert first.event.revenue == Decimal("-20.00")
    assert second.event.revenue == Decimal("-30.00")
    assert second.event.properties["$revenueType"] == "refund"
    # refund.created describes the same money: no $revenue there.
    refund = normalize(envelope("refund.created", stripe_object("refund", amount=3000)), CTX)
    assert refund.event is not None and refund.event.revenue is None


def test_refund_without_previous_attributes_counts_the_whole_refunded_amount() -> None:
    charge = stripe_object("charge", amount=5000, currency="usd", amount_refunded=1500)
    out = normalize(envelope("charge.refunded", charge), CTX).event
    assert out is not None and out.revenue == Decimal("-15.00")


RATES = rates_from_mapping(
    "EUR",
    {
        "USD": {date(2024, 3, 1): Decimal("1.08"), date(2024, 3, 4): Decimal("1.10")},
        "JPY": {date(2024, 3, 1): Decimal("160")},
        "KWD": {date(2024, 3, 1): Decimal("0.33")},
    },
)


@pytest.mark.parametrize(
    ("amount", "currency", "created", "expected", "rate_day"),
    [
        # 1000 JPY on Friday 2024-03-01: 1000 / 160 * 1.08 = 6.75 USD
        (1000, "jpy", _ts(2024, 3, 1, 12), Decimal("6.75"), "2024-03-01"),
        # 5.120 KWD: 5.12 / 0.33 * 1.08 = 16.7563... -> 16.76
        (5120, "kwd", _ts(2024, 3, 1, 12), Decimal("16.76"), "2024-03-01"),
        # 10.00 EUR on Sunday 2024-03-03 uses Friday's rate: 10.80 USD
        (1000, "eur", _ts(2024, 3, 3, 12), Decimal("10.80"), "2024-03-01"),
        # Monday has its own rate
        (1000, "eur", _ts(2024, 3, 4, 12), Decimal("11.00"), "2024-03-04"),
    ],
)
def test_revenue_is_converted_at_the_event_days_rate(
    amount: int, currency: str, created: int, expected: Decimal, rate_day: str
) -> None:
    ctx = Context(currency="USD", rates=RATES, timezone=ZoneInfo("UTC"))
    obj = stripe_object("payment_intent", amount_received=amount, currency=currency)
    out = normalize(envelope("payment_intent.succeeded", obj, created=created), ctx).event
    assert out is not None
    assert out.revenue == expected
    assert out.properties["original_currency"] == currency.upper()
    assert out.properties["fx_date"] == rate_day
    assert not out.fx_missing


def test_missing_rate_keeps_the_original_amount_and_flags_it() -> None:
    obj = stripe_object("payment_intent", amount_received=1000, currency="chf")
    out = normalize(envelope("payment_intent.succeeded", obj, created=1_709_294_400), Context(rates=RATES)).event
    assert out is not None
    assert out.revenue is None
    assert out.fx_missing
    assert "$revenue" not in out.properties
    assert out.properties["original_revenue"] == Decimal("10.00")
    assert out.properties["fx_missing"] is True


def test_event_day_is_taken_in_the_project_time_zone() -> None:
    # 2024-03-04 02:00 UTC is still Sunday 2024-03-03 in New York: Friday's rate applies.
    created = _ts(2024, 3, 4, 2)
    ctx = Context(currency="USD", rates=RATES, timezone=ZoneInfo("America/New_York"))
    obj = stripe_object("payment_intent", amount_received=1000, currency="eur")
    out = normalize(envelope("payment_intent.succeeded", obj, created=created), ctx).event
    assert out is not None
    assert out.revenue == Decimal("10.80")
    assert out.local_time.day == 3


# --- product -----------------------------------------------------------------------------------------


def test_product_from_invoice_lines_else_description() -> None:
    invoice = stripe_object("invoice")
    line = invoice["lines"]["data"][0]
    out = normalize(envelope("invoice.payment_succeeded", invoice), CTX).event
    assert out is not None and out.product == line["price"]["product"]
    invoice["lines"]["data"].append({"amount": 10**9, "description": "Big add-on", "price": None})
    out = normalize(envelope("invoice.payment_succeeded", invoice), CTX).event
    assert out is not None and out.product == "Big add-on"
    assert out.properties["products"] == [line["price"]["product"], "Big add-on"]
    pi = stripe_object("payment_intent", description="Pro plan")
    out = normalize(envelope("payment_intent.succeeded", pi), CTX).event
    assert out is not None and out.product == "Pro plan"


# --- envelopes ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        [],
        "evt",
        {"type": "charge.succeeded", "created": 1, "data": {"object": {}}},
        {"id": "evt_1", "created": 1, "data": {"object": {}}},
        {"id": "evt_1", "type": "charge.succeeded", "data": {"object": {}}},
        {"id": "evt_1", "type": "charge.succeeded", "created": "1", "data": {"object": {}}},
        {"id": "evt_1", "type": "charge.succeeded", "created": True, "data": {"object": {}}},
        {"id": "evt_1", "type": "charge.succeeded", "created": 1, "data": {}},
        {"id": "evt_1", "type": "charge.succeeded", "created": 1, "data": {"object": []}},
    ],
)
def test_non_events_are_refused(body: Any) -> None:
    with pytest.raises(EnvelopeError):
        parse_envelope(body)
