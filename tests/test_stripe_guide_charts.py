"""Golden tests: the seven charts of Amplitude's Stripe guide, on a fixed data set sent as signed
webhook deliveries and read back through the Amplitude-compatible HTTP API. Expected values are
worked out by hand in the comments, not taken from the engine."""

from __future__ import annotations

import calendar
import json
import time
from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from apphelpers import SECRET, app_client, setup_project, stored, wait_for
from stripe_fixtures import envelope, signed, stripe_object

NOW = int(time.time())


def ts(y: int, mo: int, d: int, h: int = 10, mi: int = 0, s: int = 0) -> int:
    return calendar.timegm(datetime(y, mo, d, h, mi, s).timetuple())


def invoice_paid(user: str, customer: str, amount: int, product: str, when: int) -> dict[str, Any]:
    invoice = stripe_object(
        "invoice",
        customer=customer,
        customer_email=f"{user}@example.com",
        amount_paid=amount,
        amount_due=amount,
        currency="usd",
        metadata={"user_id": user},
    )
    invoice["lines"]["data"][0].update({"amount": amount, "description": product})
    invoice["lines"]["data"][0]["price"] = {**invoice["lines"]["data"][0]["price"], "product": product}
    return envelope("invoice.payment_succeeded", invoice, created=when)


def purchase(
    user: str | None, amount: int, description: str, when: int, *, customer: str | None = None, email: str | None = None
) -> dict[str, Any]:
    pi = stripe_object(
        "payment_intent",
        amount=amount,
        amount_received=amount,
        currency="usd",
        description=description,
        customer=customer,
        receipt_email=email,
        metadata={"user_id": user} if user else {},
    )
    return envelope("payment_intent.succeeded", pi, created=when)


def data_set() -> list[dict[str, Any]]:
    events = []
    # Ann renews Pro (20.00) on Mon 4, Mon 11 and Mon 25 March 2024 at 10:00.
    for day in (4, 11, 25):
        events.append(invoice_paid("ann", "cus_ann", 2000, "Pro plan", ts(2024, 3, day)))
        events.append(purchase("ann", 2000, "Pro plan", ts(2024, 3, day, 10, 0, 30), customer="cus_ann"))
    # Bob: Team (50.00) on Tue 5 and Tue 12 at 9:00, and a Design pack (90.00) on Wed 6.
    for day in (5, 12):
        events.append(invoice_paid("bob", "cus_bob", 5000, "Team plan", ts(2024, 3, day, 9)))
        events.append(purchase("bob", 5000, "Team plan", ts(2024, 3, day, 9, 0, 30), customer="cus_bob"))
    events.append(purchase("bob", 9000, "Design pack", ts(2024, 3, 6, 9), customer="cus_bob"))
    # Cat (known only by receipt e-mail) buys a Design pack (30.00) on Wed 6; 10.00 refunded on Thu 7.
    events.append(purchase(None, 3000, "Design pack", ts(2024, 3, 6, 12), email="cat@example.com"))
    charge = stripe_object(
        "charge",
        amount=3000,
        amount_refunded=1000,
        currency="usd",
        customer=None,
        receipt_email="cat@example.com",
        refunded=False,
    )
    events.append(envelope("charge.refunded", charge, created=ts(2024, 3, 7), previous={"amount_refunded": 0}))
    # Dan: Pro on Wed 13 and API credits (120.00) on Thu 14.
    events.append(invoice_paid("dan", "cus_dan", 2000, "Pro plan", ts(2024, 3, 13)))
    events.append(purchase("dan", 2000, "Pro plan", ts(2024, 3, 13, 10, 0, 30), customer="cus_dan"))
    events.append(purchase("dan", 12000, "API credits", ts(2024, 3, 14)))
    # Eve: new five days ago, spends 150.00 (for the "last 30 days" cohort).
    events.append(purchase("eve", 15000, "API credits", NOW - 5 * 86400))
    return events


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, tuple[str, str]]]:
    with app_client(Path(tmp_path_factory.mktemp("guide"))) as client:
        project, url = setup_project(client, "guide", "USD", "UTC")
        events = data_set()
        for event in events:
            body, headers = signed(event, SECRET)
            assert client.post(url, content=body, headers=headers).status_code == 200
        wait_for(lambda: stored(client, events[-1]["id"]))
        yield client, (project["api_key"], project["secret_key"])


def get(api: tuple[TestClient, tuple[str, str]], path: str, **params: Any) -> Any:
    client, auth = api
    query = {k: json.dumps(v) if isinstance(v, dict | list) else str(v) for k, v in params.items()}
    response = client.get(path, params=query, auth=auth)
    assert response.status_code == 200, response.text
    return response.json()["data"]


MARCH = {"start": "20240304", "end": "20240331"}
PI = "[Stripe] payment_intent.succeeded"
INVOICE = "[Stripe] invoice.payment_succeeded"


def test_total_revenue(api) -> None:  # type: ignore[no-untyped-def]
    # Weeks of 4, 11, 18, 25 March: 20+50 = 70.00; 20+50+20 = 90.00; 0; 20.00 -> in cents, as Stripe sends.
    data = get(
        api,
        "/api/2/events/segmentation",
        e={"event_type": INVOICE, "group_by": [{"type": "event", "value": "amount_paid"}]},
        m="sums",
        i=7,
        **MARCH,
    )
    assert data["xValues"] == ["2024-03-04", "2024-03-11", "2024-03-18", "2024-03-25"]
    assert data["series"] == [[7000, 9000, 0, 2000]]
    assert data["seriesCollapsed"] == [[{"setId": "", "value": 18000}]]


def test_average_purchases_per_user(api) -> None:  # type: ignore[no-untyped-def]
    # Week 4: Ann 1, Bob 2, Cat 1 = 4 / 3 users; week 11: Ann 1, Bob 1, Dan 2 = 4 / 3; week 25: Ann 1 / 1.
    # Whole month: 9 purchases / 4 users = 2.25.
    data = get(api, "/api/2/events/segmentation", e={"event_type": PI}, m="average", i=7, **MARCH)
    assert data["series"] == [[4 / 3, 4 / 3, 0, 1.0]]
    assert data["seriesCollapsed"][0][0]["value"] == 2.25


def test_purchase_frequency_distribution(api) -> None:  # type: ignore[no-untyped-def]
    # Ann 3, Bob 3, Cat 1, Dan 2 purchases.
    data = get(api, "/api/2/events/segmentation", e={"event_type": PI}, m="frequency", buckets=[1, 2, 3, 5], **MARCH)
    assert data["xValues"] == ["1", "2", "3-4", "5+"]
    assert data["series"] == [[1, 1, 2, 0]]
    same = get(
        api,
        "/api/2/events/segmentation",
        e={"event_type": PI},
        m="formula",
        formula="HIST(A)",
        buckets=[1, 2, 3, 5],
        **MARCH,
    )
    assert same["series"] == data["series"]


def test_n_week_retention_return_on(api) -> None:  # type: ignore[no-untyped-def]
    # Start = return = invoice paid. Cohort week of 4 March: Ann (Mon 10:00) and Bob (Tue 9:00).
    # Ann returns exactly 7 days later (week 1) and 21 days later (week 3); Bob 7 days later (week 1).
    # Cohort week of 11 March: Dan, who never returns. The start event counts in week 0.
    data = get(
        api, "/api/2/retention", se={"event_type": INVOICE}, re={"event_type": INVOICE}, rm="n-day", i=7, **MARCH
    )
    series = data["series"][0]
    assert series["dates"] == ["2024-03-11", "2024-03-04"]
    assert [c["count"] for c in series["values"]["2024-03-04"]] == [2, 2, 2, 0, 1]
    assert [c["count"] for c in series["values"]["2024-03-11"]] == [1, 1, 0, 0, 0]
    assert all(c["outof"] == 2 for c in series["values"]["2024-03-04"])
    assert [c["count"] for c in series["combined"]] == [3, 3, 2, 0, 1]
    assert not any(c["incomplete"] for c in series["combined"])


def test_revenue_by_product(api) -> None:  # type: ignore[no-untyped-def]
    # $revenue on purchases: Design pack 90+30 = 120, API credits 120, Team plan 50+50 = 100, Pro plan 20*3+20 = 80.
    data = get(
        api,
        "/api/2/events/segmentation",
        e={
            "event_type": PI,
            "group_by": [{"type": "event", "value": "$revenue"}, {"type": "event", "value": "product"}],
        },
        m="sums",
        **MARCH,
    )
    result = {
        label[1]: Decimal(str(c[0]["value"]))
        for label, c in zip(data["seriesLabels"], data["seriesCollapsed"], strict=True)
    }
    assert result == {"API credits": 120, "Design pack": 120, "Team plan": 100, "Pro plan": 80}
    assert [label[1] for label in data["seriesLabels"]] == ["API credits", "Design pack", "Team plan", "Pro plan"]


def test_orders_by_product(api) -> None:  # type: ignore[no-untyped-def]
    # Unique buyers per description: Pro plan Ann+Dan, Design pack Bob+Cat, Team plan Bob, API credits Dan.
    data = get(
        api,
        "/api/2/events/segmentation",
        e={"event_type": PI, "group_by": [{"type": "event", "value": "description"}]},
        m="uniques",
        **MARCH,
    )
    result = {label[1]: c[0]["value"] for label, c in zip(data["seriesLabels"], data["seriesCollapsed"], strict=True)}
    assert result == {"Pro plan": 2, "Design pack": 2, "Team plan": 1, "API credits": 1}


def _cohort(api, timing: dict[str, Any]) -> tuple[int, list[str]]:  # type: ignore[no-untyped-def]
    client, auth = api
    definition = {
        "performed": {
            "event_type": PI,
            "measure": {"kind": "sum", "property": "$revenue", "op": ">", "value": 100},
            "timing": timing,
        }
    }
    created = client.post(
        "/api/cohorts", json={"name": f"big spenders {timing['kind']}", "definition": definition}, auth=auth
    )
    assert created.status_code == 201, created.text
    cohort_id = created.json()["id"]
    members = client.get(f"/api/cohorts/{cohort_id}/members", auth=auth).json()
    assert members["size"] == created.json()["size"]
    return cohort_id, members["members"]


def test_cohort_spent_over_100_in_first_seven_days(api) -> None:  # type: ignore[no-untyped-def]
    # Within 7 days of the first event: Ann 20 (her 11 March purchase is exactly 7 days later: out),
    # Bob 50+90 = 140, Cat 30, Dan 20+120 = 140, Eve 150.
    cohort_id, members = _cohort(api, {"kind": "within_first_days", "days": 7})
    assert members == ["bob", "dan", "eve"]
    # Usable as a segment: purchases in March by cohort members only (Bob 3, Dan 2).
    data = get(
        api,
        "/api/2/events/segmentation",
        e={"event_type": PI},
        m="totals",
        s=[{"prop": "userdata_cohort", "op": "is", "values": [str(cohort_id)]}],
        **MARCH,
    )
    assert data["seriesCollapsed"][0][0]["value"] == 5
    listed = get_raw(api, "/api/3/cohorts")["cohorts"]
    assert {c["name"]: c["size"] for c in listed}["big spenders within_first_days"] == 3
    csv_text = api[0].get(f"/api/cohorts/{cohort_id}/members", params={"format": "csv"}, auth=api[1]).text
    assert csv_text.splitlines() == ["user_id", "bob", "dan", "eve"]


def test_cohort_spent_over_100_in_the_last_30_days(api) -> None:  # type: ignore[no-untyped-def]
    _, members = _cohort(api, {"kind": "last_days", "days": 30})
    assert members == ["eve"]


def get_raw(api, path: str) -> Any:  # type: ignore[no-untyped-def]
    client, auth = api
    response = client.get(path, auth=auth)
    assert response.status_code == 200
    return response.json()
