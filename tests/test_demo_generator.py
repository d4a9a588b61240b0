"""Tests of the demo event generator: shapes, determinism, flow consistency, identity spread and speed."""

from __future__ import annotations

import calendar
import json
import re
import time
import typing
from collections import Counter, defaultdict
from functools import lru_cache
from typing import Any

import pytest
from stripe._event import Event as StripeEvent  # stripe 10.x: its `type` Literal lists the 2024-06-20 types

from revlens.demo.generator import (
    NON_REVENUE_EVENT_TYPES,
    REVENUE_EVENT_TYPES,
    DemoConfig,
    generate_deliveries,
    generate_events,
)

Event = dict[str, Any]

ENVELOPE_KEYS = {
    "id",
    "object",
    "api_version",
    "created",
    "data",
    "livemode",
    "pending_webhooks",
    "request",
    "type",
}
ID_RE = re.compile(r"^[a-z]+_[0-9A-Za-z]{24}$")
OBJECT_PREFIX = {
    "charge": "ch_",
    "payment_intent": "pi_",
    "invoice": "in_",
    "refund": "re_",
    "checkout.session": "cs_",
    "subscription": "sub_",
    "customer": "cus_",
    "dispute": "dp_",
    "credit_note": "cn_",
    "payment_method": "pm_",
}
PRODUCT_NAMES = {"Starter plan", "Pro plan", "Team plan", "Design pack", "API credits", "Onboarding session"}


@lru_cache(maxsize=8)
def _cached(events: int, seed: int = 7) -> tuple[Event, ...]:
    # Shared by read-only tests to keep the suite fast; never mutate what this returns.
    return tuple(generate_events(DemoConfig(events=events, seed=seed)))


def big() -> tuple[Event, ...]:
    return _cached(20_000)


def by_type(events: typing.Iterable[Event], etype: str) -> list[Event]:
    return [e for e in events if e["type"] == etype]


def objects(events: typing.Iterable[Event], etype: str) -> list[dict[str, Any]]:
    return [e["data"]["object"] for e in events if e["type"] == etype]


def customers(events: typing.Iterable[Event]) -> dict[str, dict[str, Any]]:
    return {c["id"]: c for c in objects(events, "customer.created")}


# -- determinism, size, order ----------------------------------------------------------------------


def test_same_config_gives_byte_identical_json() -> None:
    config = DemoConfig(events=3000, seed=11)
    first = json.dumps(generate_events(config), sort_keys=True)
    second = json.dumps(generate_events(config), sort_keys=True)
    assert first == second
    deliveries = json.dumps(generate_deliveries(config), sort_keys=True)
    assert deliveries == json.dumps(generate_deliveries(config), sort_keys=True)


def test_different_seeds_give_different_events() -> None:
    a = generate_events(DemoConfig(events=500, seed=1))
    b = generate_events(DemoConfig(events=500, seed=2))
    assert {e["id"] for e in a}.isdisjoint({e["id"] for e in b})


@pytest.mark.parametrize("requested", [1, 9, 50, 2000, 7777])
def test_count_is_close_to_requested(requested: int) -> None:
    events = generate_events(DemoConfig(events=requested, seed=3))
    assert requested <= len(events) < requested + 10


def test_zero_events() -> None:
    assert generate_events(DemoConfig(events=0)) == []
    assert generate_deliveries(DemoConfig(events=0)) == []


def test_sorted_by_created_and_inside_default_window() -> None:
    events = _cached(5000)
    created = [e["created"] for e in events]
    assert created == sorted(created)
    end = calendar.timegm((2026, 11, 1, 0, 0, 0))
    assert end - 180 * 86_400 <= created[0]
    assert created[-1] <= end
    # Spread over the whole window, not bunched at one end.
    assert created[0] < end - 150 * 86_400
    assert created[-1] > end - 5 * 86_400


def test_custom_window_is_respected() -> None:
    end = 1_700_000_000
    events = generate_events(DemoConfig(events=3000, end=end, days=30, seed=5))
    assert all(end - 30 * 86_400 <= e["created"] <= end for e in events)
    assert max(e["created"] for e in events) > end - 2 * 86_400


# -- envelopes, types, ids -------------------------------------------------------------------------


def test_every_envelope_has_stripe_keys_and_version() -> None:
    for event in big():
        assert set(event) == ENVELOPE_KEYS, event["id"]
        assert event["object"] == "event"
        assert event["api_version"] == "2024-06-20"
        assert type(event["created"]) is int
        assert event["livemode"] is False
        assert event["pending_webhooks"] == 1
        assert set(event["request"]) == {"id", "idempotency_key"}
        assert event["request"]["id"] is None or event["request"]["id"].startswith("req_")
        assert event["id"].startswith("evt_") and ID_RE.match(event["id"])
        data = event["data"]
        assert isinstance(data["object"], dict)
        has_previous = event["type"].endswith(".updated") or event["type"] == "charge.refunded"
        assert ("previous_attributes" in data) == has_previous, event["type"]
        assert set(data) <= {"object", "previous_attributes"}


def test_api_version_is_configurable() -> None:
    events = generate_events(DemoConfig(events=20, api_version="2025-01-01"))
    assert {e["api_version"] for e in events} == {"2025-01-01"}


def test_emitted_types_are_exactly_the_declared_ones_and_real_stripe_types() -> None:
    emitted = {e["type"] for e in big()}
    assert REVENUE_EVENT_TYPES.isdisjoint(NON_REVENUE_EVENT_TYPES)
    assert emitted == REVENUE_EVENT_TYPES | NON_REVENUE_EVENT_TYPES
    stripe_types = set(typing.get_args(typing.get_type_hints(StripeEvent)["type"]))
    assert emitted <= stripe_types


def test_event_ids_unique_and_object_ids_stripe_like() -> None:
    events = big()
    assert len({e["id"] for e in events}) == len(events)
    for event in events:
        obj = event["data"]["object"]
        prefix = OBJECT_PREFIX[obj["object"]]
        assert obj["id"].startswith(prefix), obj["id"]
        assert ID_RE.match(obj["id"]), obj["id"]
    for line in (o["lines"]["data"][0] for o in objects(events, "invoice.paid")):
        assert ID_RE.match(line["price"]["id"]) and line["price"]["id"].startswith("price_")
        assert ID_RE.match(line["price"]["product"]) and line["price"]["product"].startswith("prod_")


# -- duplicates ------------------------------------------------------------------------------------


def test_deliveries_repeat_events_at_the_configured_rate() -> None:
    config = DemoConfig(events=5000, seed=9, duplicate_rate=0.02)
    events = generate_events(config)
    deliveries = generate_deliveries(config)
    counts = Counter(d["id"] for d in deliveries)
    repeated = [event_id for event_id, n in counts.items() if n > 1]
    assert set(counts) == {e["id"] for e in events}
    assert max(counts.values()) == 2
    assert len(repeated) == round(len(events) * 0.02)
    assert len(deliveries) == len(events) + len(repeated)


def test_duplicates_are_identical_and_later_in_the_stream() -> None:
    config = DemoConfig(events=5000, seed=9, duplicate_rate=0.05)
    originals = {e["id"]: e for e in generate_events(config)}
    seen: dict[str, int] = {}
    dupes = 0
    for position, delivery in enumerate(generate_deliveries(config)):
        assert delivery == originals[delivery["id"]]
        if delivery["id"] in seen:
            dupes += 1
            assert position > seen[delivery["id"]]
        else:
            seen[delivery["id"]] = position
    assert dupes == round(len(originals) * 0.05)


def test_duplicate_deliveries_are_independent_copies() -> None:
    deliveries = generate_deliveries(DemoConfig(events=2000, duplicate_rate=0.1))
    first: dict[str, Event] = {}
    for delivery in deliveries:
        if delivery["id"] in first:
            original = first[delivery["id"]]
            assert delivery is not original and delivery["data"] is not original["data"]
            delivery["data"]["object"]["mutated"] = True
            assert "mutated" not in original["data"]["object"]
            return
        first[delivery["id"]] = delivery
    pytest.fail("no duplicate delivery found")


def test_no_duplicates_when_rate_is_zero() -> None:
    config = DemoConfig(events=1000, duplicate_rate=0.0)
    assert generate_deliveries(config) == generate_events(config)


# -- flows -----------------------------------------------------------------------------------------


def test_subscription_payment_flow_is_consistent() -> None:
    events = big()
    pis = {o["id"]: o for o in objects(events, "payment_intent.succeeded")}
    charges = {o["id"]: o for o in objects(events, "charge.succeeded")}
    subs = {o["id"]: o for o in objects(events, "customer.subscription.created")}
    invoice_events: dict[str, list[Event]] = defaultdict(list)
    for event in events:
        if event["type"].startswith("invoice."):
            invoice_events[event["data"]["object"]["id"]].append(event)
    product_names: dict[str, str] = {}
    paid = 0
    for invoice_id, flow in invoice_events.items():
        types = [e["type"] for e in flow]
        assert types[:2] == ["invoice.created", "invoice.finalized"], types
        created = [e["created"] for e in flow]
        assert created == sorted(created) and len(set(created)) == len(created)
        if "invoice.paid" not in types:
            continue
        paid += 1
        assert types[-2:] == ["invoice.paid", "invoice.payment_succeeded"]
        inv = flow[-1]["data"]["object"]
        assert inv["status"] == "paid" and inv["paid"] is True and inv["amount_remaining"] == 0
        pi, charge = pis[inv["payment_intent"]], charges[inv["charge"]]
        assert inv["amount_paid"] == inv["amount_due"] == inv["total"]
        assert inv["amount_paid"] == pi["amount_received"] == charge["amount"]
        assert pi["invoice"] == charge["invoice"] == invoice_id
        assert pi["latest_charge"] == charge["id"] and charge["payment_intent"] == pi["id"]
        assert inv["customer"] == pi["customer"] == charge["customer"]
        assert inv["currency"] == pi["currency"] == charge["currency"]
        line = inv["lines"]["data"][0]
        assert line["object"] == "line_item" and inv["lines"]["object"] == "list"
        assert line["amount"] == line["price"]["unit_amount"] * line["quantity"] == inv["amount_paid"]
        assert line["currency"] == line["price"]["currency"] == inv["currency"]
        assert line["description"] in PRODUCT_NAMES
        assert product_names.setdefault(line["price"]["product"], line["description"]) == line["description"]
        assert inv["subscription"] == line["subscription"]
        if inv["billing_reason"] == "subscription_create":
            sub = subs[inv["subscription"]]
            assert sub["latest_invoice"] == invoice_id
            assert sub["items"]["data"][0]["price"]["product"] == line["price"]["product"]
    assert paid > 500
    assert len(product_names) >= 3  # the recurring plans


def test_subscription_creation_emits_the_full_stripe_sequence() -> None:
    events = big()
    by_request: dict[str, list[str]] = defaultdict(list)
    for event in events:
        if event["request"]["id"] is not None:
            by_request[event["request"]["id"]].append(event["type"])
    creations = [types for types in by_request.values() if "customer.subscription.created" in types]
    assert creations
    expected = {
        "customer.subscription.created",
        "invoice.created",
        "invoice.finalized",
        "invoice.paid",
        "invoice.payment_succeeded",
        "payment_intent.succeeded",
        "charge.succeeded",
    }
    for types in creations:
        assert expected <= set(types)


def test_renewals_are_monthly_and_automatic() -> None:
    events = big()
    cycles: dict[str, list[int]] = defaultdict(list)
    for inv in objects(events, "invoice.paid"):
        cycles[inv["subscription"]].append(inv["lines"]["data"][0]["period"]["start"])
    paid = by_type(events, "invoice.paid")
    renewal_events = [e for e in paid if e["data"]["object"]["billing_reason"] == "subscription_cycle"]
    assert renewal_events and all(e["request"]["id"] is None for e in renewal_events)
    long_lived = [starts for starts in cycles.values() if len(starts) >= 3]
    assert long_lived
    for starts in long_lived:
        gaps = [b - a for a, b in zip(sorted(starts), sorted(starts)[1:], strict=False)]
        assert all(28 * 86_400 <= gap <= 31 * 86_400 for gap in gaps), gaps


def test_checkout_flow_is_consistent() -> None:
    events = big()
    custs = customers(events)
    pis = {o["id"]: o for o in objects(events, "payment_intent.succeeded")}
    charges = {o["id"]: o for o in objects(events, "charge.succeeded")}
    sessions = by_type(events, "checkout.session.completed")
    assert len(sessions) > 500
    for event in sessions:
        session = event["data"]["object"]
        assert session["payment_status"] == "paid" and session["status"] == "complete"
        assert session["mode"] == "payment"
        pi = pis[session["payment_intent"]]
        charge = charges[pi["latest_charge"]]
        assert session["amount_total"] == session["amount_subtotal"] == pi["amount_received"] == pi["amount"]
        assert charge["amount"] == charge["amount_captured"] == session["amount_total"]
        assert session["currency"] == pi["currency"] == charge["currency"]
        assert pi["description"] in PRODUCT_NAMES and pi["invoice"] is None
        assert session["customer"] == pi["customer"] == charge["customer"]
        assert session["customer_details"]["email"] == custs[session["customer"]]["email"]
        assert charge["created"] < event["created"]


def test_charge_refunded_previous_attributes_arithmetic() -> None:
    events = big()
    refunds_by_charge: dict[str, list[int]] = defaultdict(list)
    for refund in objects(events, "refund.created"):
        assert refund["status"] == "succeeded" and refund["amount"] > 0
        refunds_by_charge[refund["charge"]].append(refund["amount"])
    history: dict[str, list[Event]] = defaultdict(list)
    for event in by_type(events, "charge.refunded"):
        history[event["data"]["object"]["id"]].append(event)
    assert set(history) == set(refunds_by_charge)
    full = partial = twice = 0
    for charge_id, flow in history.items():
        cumulative = 0
        for event, refund_amount in zip(flow, refunds_by_charge[charge_id], strict=True):
            charge = event["data"]["object"]
            previous = event["data"]["previous_attributes"]
            assert previous["amount_refunded"] == cumulative
            cumulative += refund_amount
            assert charge["amount_refunded"] == cumulative <= charge["amount"]
            assert charge["refunded"] is (cumulative == charge["amount"])
            assert ("refunded" in previous) is charge["refunded"]
        full += flow[-1]["data"]["object"]["refunded"]
        partial += not flow[-1]["data"]["object"]["refunded"]
        twice += len(flow) >= 2
    assert full and partial and twice


def test_failed_payments() -> None:
    events = big()
    failed_charges = {o["id"]: o for o in objects(events, "charge.failed")}
    assert failed_charges
    for charge in failed_charges.values():
        assert charge["status"] == "failed" and charge["paid"] is False and charge["amount_captured"] == 0
        assert charge["failure_code"] == "card_declined"
    for pi in objects(events, "payment_intent.payment_failed"):
        assert pi["status"] == "requires_payment_method" and pi["amount_received"] == 0
        assert pi["last_payment_error"]["charge"] in failed_charges
    failed_invoices = objects(events, "invoice.payment_failed")
    assert failed_invoices
    for inv in failed_invoices:
        assert inv["amount_paid"] == 0 and inv["amount_remaining"] == inv["amount_due"] > 0
        assert inv["status"] == "open" and inv["attempt_count"] >= 1
        assert failed_charges[inv["charge"]]["payment_intent"] == inv["payment_intent"]


def test_cancellations_and_deletions() -> None:
    events = big()
    starts = by_type(events, "customer.subscription.created")
    created = {e["data"]["object"]["id"]: e["created"] for e in starts}
    updates = by_type(events, "customer.subscription.updated")
    cancel_requests = [u for u in updates if u["data"]["object"]["cancel_at_period_end"]]
    assert cancel_requests
    for update in cancel_requests:
        previous = update["data"]["previous_attributes"]
        if "cancel_at_period_end" in previous:
            assert previous["cancel_at_period_end"] is False
            assert update["data"]["object"]["cancellation_details"]["reason"] == "cancellation_requested"
    deletions = by_type(events, "customer.subscription.deleted")
    assert deletions
    reasons = Counter(d["data"]["object"]["cancellation_details"]["reason"] for d in deletions)
    assert set(reasons) == {"cancellation_requested", "payment_failed"}
    for deletion in deletions:
        sub = deletion["data"]["object"]
        assert sub["status"] == "canceled" and sub["ended_at"] is not None
        assert created[sub["id"]] < deletion["created"]


def test_disputes_and_credit_notes() -> None:
    events = big()
    charges = {o["id"]: o for o in objects(events, "charge.succeeded")}
    disputes = objects(events, "charge.dispute.created")
    assert disputes
    for dispute in disputes:
        assert dispute["amount"] == charges[dispute["charge"]]["amount"]
        assert dispute["payment_intent"] == charges[dispute["charge"]]["payment_intent"]
    invoices = {o["id"]: o for o in objects(events, "invoice.paid")}
    notes = objects(events, "credit_note.created")
    assert notes
    for note in notes:
        inv = invoices[note["invoice"]]
        assert 0 < note["amount"] == note["total"] <= inv["amount_paid"]
        assert note["customer"] == inv["customer"] and note["currency"] == inv["currency"]
        assert note["lines"]["data"][0]["invoice_line_item"] == inv["lines"]["data"][0]["id"]


def test_created_increases_along_each_request_flow() -> None:
    flows: dict[str, list[Event]] = defaultdict(list)
    for event in big():
        if event["request"]["id"] is not None:
            flows[event["request"]["id"]].append(event)
    multi = [flow for flow in flows.values() if len(flow) > 2]
    assert multi
    for flow in multi:
        created = [e["created"] for e in flow]
        assert len(set(created)) == len(created)
        assert created[-1] - created[0] < 120


def _matches(previous: Any, seen: Any) -> bool:
    # Stripe's previous_attributes hold only the changed sub-fields of nested objects.
    if isinstance(previous, dict) and isinstance(seen, dict):
        return all(key in seen and _matches(value, seen[key]) for key, value in previous.items())
    return bool(previous == seen)


def test_previous_attributes_match_the_state_last_sent() -> None:
    last: dict[str, dict[str, Any]] = {}
    checked: Counter[str] = Counter()
    for event in big():
        obj = event["data"]["object"]
        previous = event["data"].get("previous_attributes")
        if previous is not None and obj["id"] in last:
            assert _matches(previous, last[obj["id"]]), (event["type"], previous)
            assert not _matches(previous, obj), (event["type"], previous)
            checked[event["type"]] += 1
        last[obj["id"]] = obj
    assert set(checked) == {"charge.refunded", "customer.subscription.updated", "customer.updated"}


# -- money -----------------------------------------------------------------------------------------

AMOUNT_KEY = re.compile(r"^(amount(_\w+)?|unit_amount|total|subtotal(_excluding_tax)?|total_excluding_tax)$")


def _amounts(node: Any) -> typing.Iterator[tuple[str | None, int]]:
    if isinstance(node, dict):
        currency = node.get("currency")
        for key, value in node.items():
            if AMOUNT_KEY.match(key) and isinstance(value, int) and not isinstance(value, bool):
                yield currency, value
            elif isinstance(value, dict | list):
                yield from _amounts(value)
    elif isinstance(node, list):
        for item in node:
            yield from _amounts(item)


def test_amounts_are_minor_unit_integers_and_kwd_ends_in_zero() -> None:
    seen: Counter[str | None] = Counter()
    for event in big():
        for currency, amount in _amounts(event["data"]):
            assert amount >= 0
            seen[currency] += 1
            if currency == "kwd":
                assert amount % 10 == 0, (event["id"], amount)
    assert seen["kwd"] > 0 and seen["jpy"] > 0


def test_currencies_are_lowercase_and_configured() -> None:
    config = DemoConfig(events=3000, currencies=("usd", "bhd", "krw"))
    events = generate_events(config)
    used = {o["currency"] for o in objects(events, "payment_intent.succeeded")}
    assert used == {"usd", "bhd", "krw"}
    for event in events:
        for currency, amount in _amounts(event["data"]):
            assert currency in {"usd", "bhd", "krw", None}
            if currency == "bhd":
                assert amount % 10 == 0


# -- people ----------------------------------------------------------------------------------------


def test_identity_fields_are_spread_and_stable() -> None:
    events = big()
    custs = customers(events)
    pis = objects(events, "payment_intent.succeeded") + objects(events, "payment_intent.payment_failed")
    with_user = [pi for pi in pis if "user_id" in pi["metadata"]]
    assert 0.30 <= len(with_user) / len(pis) <= 0.50
    assert any("amplitude_id" in pi["metadata"] for pi in pis)
    only_customer = [pi for pi in pis if not pi["metadata"] and pi["receipt_email"] is None]
    assert only_customer and all(pi["customer"] in custs for pi in only_customer)

    user_of: dict[str, str] = {}
    customer_of: dict[str, str] = {}
    amplitude_of: dict[str, str] = {}
    for pi in pis:
        cus = pi["customer"]
        if "user_id" in pi["metadata"]:
            user = pi["metadata"]["user_id"]
            assert re.match(r"^user_\d{5}$", user)
            assert user_of.setdefault(cus, user) == user
            assert customer_of.setdefault(user, cus) == cus
        if "amplitude_id" in pi["metadata"]:
            amplitude_id = pi["metadata"]["amplitude_id"]
            assert amplitude_of.setdefault(cus, amplitude_id) == amplitude_id
        if pi["receipt_email"] is not None:
            assert pi["receipt_email"] == custs[cus]["email"]

    for inv in objects(events, "invoice.paid"):
        assert inv["customer_email"] == custs[inv["customer"]]["email"]
    charges = objects(events, "charge.succeeded")
    with_receipt = [c for c in charges if c["receipt_email"] is not None]
    assert 0.7 <= len(with_receipt) / len(charges) < 1.0
    assert all(c["receipt_email"] == custs[c["customer"]]["email"] for c in with_receipt)
    assert len({c["email"] for c in custs.values()}) == len(custs)


def test_customer_population_looks_real() -> None:
    events = big()
    custs = customers(events)
    assert len(events) / 25 <= len(custs) <= len(events) / 8
    payments: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for pi in objects(events, "payment_intent.succeeded"):
        payments[pi["customer"]].append(pi)
    counts = Counter(len(p) for p in payments.values())
    assert counts[1] > 0.15 * len(payments)  # one-time buyers
    assert sum(n for k, n in counts.items() if k >= 5) > 0.1 * len(payments)  # loyal repeat buyers
    spans = [max(p["created"] for p in ps) - min(p["created"] for p in ps) for ps in payments.values()]
    assert sum(span > 90 * 86_400 for span in spans) > 0.05 * len(payments)
    # Each customer pays mostly in one currency.
    shares = [Counter(p["currency"] for p in ps).most_common(1)[0][1] / len(ps) for ps in payments.values()]
    assert sum(shares) / len(shares) > 0.9
    # Sign-ups are spread over the window.
    first_seen = sorted(c["created"] for c in custs.values())
    assert first_seen[len(first_seen) // 4] < first_seen[3 * len(first_seen) // 4] - 30 * 86_400


def test_catalogue_has_products_with_prices_per_currency() -> None:
    events = big()
    prices: dict[tuple[str, str], int] = {}
    names: dict[str, str] = {}
    for inv in objects(events, "invoice.paid"):
        line = inv["lines"]["data"][0]
        names[line["price"]["product"]] = line["description"]
        key = (line["price"]["product"], line["currency"])
        assert prices.setdefault(key, line["price"]["unit_amount"]) == line["price"]["unit_amount"]
    succeeded = objects(events, "payment_intent.succeeded")
    one_off = {pi["description"] for pi in succeeded if pi["invoice"] is None}
    assert len(set(names.values()) | one_off) >= 5
    assert len({currency for _, currency in prices}) == 5


# -- config and speed ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "config",
    [
        DemoConfig(events=-1),
        DemoConfig(days=0),
        DemoConfig(duplicate_rate=1.5),
        DemoConfig(currencies=()),
        DemoConfig(currencies=("USD",)),
    ],
)
def test_bad_config_is_rejected(config: DemoConfig) -> None:
    with pytest.raises(ValueError):
        generate_events(config)


def test_generation_is_fast() -> None:
    start = time.perf_counter()
    events = generate_events(DemoConfig(events=50_000, seed=1))
    elapsed = time.perf_counter() - start
    assert len(events) >= 50_000
    assert elapsed < 20, f"{len(events) / elapsed:.0f} events/s"
