"""The query API's doors and errors: credentials, project isolation, 400s that name the parameter."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from apphelpers import SECRET, app_client, setup_project, stored, wait_for
from stripe_fixtures import envelope, signed, stripe_object

PI = "[Stripe] payment_intent.succeeded"


@pytest.fixture(scope="module")
def two_projects(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[TestClient, dict[str, Any], dict[str, Any]]]:
    with app_client(Path(tmp_path_factory.mktemp("api")), auth_failures_per_minute=100_000) as client:
        a, url_a = setup_project(client, "alpha")
        b, _ = setup_project(client, "beta")
        event = envelope(
            "payment_intent.succeeded",
            stripe_object("payment_intent", amount_received=1234, currency="usd", metadata={"user_id": "ann"}),
            created=1_709_550_000,
            event_id="evt_alpha",
        )
        body, headers = signed(event, SECRET)
        assert client.post(url_a, content=body, headers=headers).status_code == 200
        wait_for(lambda: stored(client, "evt_alpha"))
        yield client, a, b


QUERY = {"e": json.dumps({"event_type": PI}), "m": "totals", "start": "20240301", "end": "20240331"}
ROUTES = [
    "/api/2/events/segmentation",
    "/api/2/retention",
    "/api/2/revenue/ltv",
    "/api/3/cohorts",
    "/api/cohorts",
    "/api/cohorts/1",
    "/api/cohorts/1/members",
]


@pytest.mark.parametrize("path", ROUTES)
def test_every_query_route_refuses_missing_and_wrong_credentials(two_projects, path: str) -> None:  # type: ignore[no-untyped-def]
    client, a, _ = two_projects
    client.headers.pop("Authorization", None)
    try:
        for auth in (None, (a["api_key"], "wrong"), ("nope", a["secret_key"]), ("", ""), (a["api_key"], "")):
            response = client.get(path, params=QUERY, auth=auth)  # type: ignore[arg-type]
            assert response.status_code == 401, (path, auth)
            assert response.json()["error"].startswith("invalid or missing credentials")
            assert response.headers["www-authenticate"] == 'Basic realm="revlens"'
        garbled = client.get(path, params=QUERY, headers={"Authorization": "Basic !!!"})
        assert garbled.status_code == 401
    finally:
        client.headers["Authorization"] = "Bearer test-admin-token"


def test_keys_only_reach_their_own_project(two_projects) -> None:  # type: ignore[no-untyped-def]
    client, a, b = two_projects
    own = client.get("/api/2/events/segmentation", params=QUERY, auth=(a["api_key"], a["secret_key"])).json()
    other = client.get("/api/2/events/segmentation", params=QUERY, auth=(b["api_key"], b["secret_key"])).json()
    assert own["data"]["seriesCollapsed"][0][0]["value"] == 1
    assert other["data"]["seriesCollapsed"][0][0]["value"] == 0
    revenue = client.get(
        "/api/2/events/segmentation",
        auth=(a["api_key"], a["secret_key"]),
        params={**QUERY, "m": "sums", "e": json.dumps({"event_type": PI, "group_by": [{"value": "$revenue"}]})},
    ).json()
    assert Decimal(str(revenue["data"]["seriesCollapsed"][0][0]["value"])) == Decimal("12.34")
    # A's cohort is invisible to B.
    made = client.post(
        "/api/cohorts",
        auth=(a["api_key"], a["secret_key"]),
        json={"name": "buyers", "definition": {"performed": {"event_type": PI}}},
    )
    assert made.status_code == 201 and made.json()["size"] == 1
    cohort = made.json()["id"]
    assert client.get(f"/api/cohorts/{cohort}", auth=(b["api_key"], b["secret_key"])).status_code == 404
    assert client.get("/api/3/cohorts", auth=(b["api_key"], b["secret_key"])).json() == {"cohorts": []}


@pytest.mark.parametrize(
    ("params", "param"),
    [
        ({"m": "totals", "start": "20240301", "end": "20240331"}, "e"),
        ({**QUERY, "e": "{not json"}, "e"),
        ({**QUERY, "e": json.dumps({"filters": []})}, "e"),
        ({**QUERY, "start": "2024-03-01"}, "start"),
        ({**QUERY, "end": "20240230"}, "end"),
        ({**QUERY, "end": "20240201"}, "end"),
        ({**QUERY, "m": "median"}, "m"),
        ({**QUERY, "i": "2"}, "i"),
        ({**QUERY, "limit": "0"}, "limit"),
        ({**QUERY, "limit": "abc"}, "limit"),
        ({**QUERY, "m": "sums"}, "e"),
        ({**QUERY, "m": "formula"}, "formula"),
        ({**QUERY, "m": "formula", "formula": "UNIQUES(A"}, "formula"),
        ({**QUERY, "m": "formula", "formula": "UNIQUES(B)"}, "formula"),
        ({**QUERY, "m": "formula", "formula": "MEDIAN(A)"}, "formula"),
        ({**QUERY, "s": json.dumps([{"prop": "userdata_cohort", "op": "is", "values": ["x"]}])}, "s"),
        ({**QUERY, "s": json.dumps([{"prop": "userdata_cohort", "op": "is", "values": ["999"]}])}, "s"),
        (
            {
                **QUERY,
                "e": json.dumps(
                    {
                        "event_type": PI,
                        "filters": [{"subprop_key": "amount", "subprop_op": "near", "subprop_value": [1]}],
                    }
                ),
            },
            "e",
        ),
        (
            {
                **QUERY,
                "e": json.dumps(
                    {
                        "event_type": PI,
                        "filters": [{"subprop_key": "amount", "subprop_op": "greater", "subprop_value": ["x"]}],
                    }
                ),
            },
            "e",
        ),
        ({**QUERY, "buckets": "[3, 1]", "m": "frequency"}, "buckets"),
        ({**QUERY, "g": "a", "g2": "b", "e": json.dumps({"event_type": PI, "group_by": [{"value": "c"}]})}, "g"),
        ({**QUERY, "i": "-3600000", "start": "20240101", "end": "20240331"}, "end"),
    ],
)
def test_bad_segmentation_parameters_name_the_parameter(two_projects, params: dict[str, str], param: str) -> None:  # type: ignore[no-untyped-def]
    client, a, _ = two_projects
    response = client.get("/api/2/events/segmentation", params=params, auth=(a["api_key"], a["secret_key"]))
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"parameter '{param}'"), response.json()


# Retention on any event over March 2024, the base of the bad-parameter cases below.
ANY_MARCH = {"se": "_all", "re": "_all", "start": "20240301", "end": "20240331"}


@pytest.mark.parametrize(
    ("path", "params", "param"),
    [
        ("/api/2/retention", {"re": "_all", "start": "20240301", "end": "20240331"}, "se"),
        (
            "/api/2/retention",
            {"se": "_new", "re": "_all", "start": "20240301", "end": "20240331", "rm": "weekly"},
            "rm",
        ),
        (
            "/api/2/retention",
            {"se": "_new", "re": "_all", "start": "20240301", "end": "20240331", "rm": "bracket"},
            "rb",
        ),
        (
            "/api/2/retention",
            {"se": "_new", "re": "_all", "start": "20240301", "end": "20240331", "rm": "bracket", "rb": "[[3,1]]"},
            "rb",
        ),
        ("/api/2/retention", {**ANY_MARCH, "rm": "bracket", "rb": "[[0,1000000]]"}, "rb"),
        (
            "/api/2/retention",
            {"se": "_all", "re": "_all", "start": "99991230", "end": "99991230", "rm": "rolling"},
            "end",
        ),
        ("/api/2/retention", {"se": "_all", "re": "_all", "start": "00010101", "end": "00010101"}, "start"),
        (
            "/api/2/retention",
            {
                "se": json.dumps(
                    {
                        "event_type": "_new",
                        "filters": [
                            {
                                "subprop_type": "event",
                                "subprop_key": "product",
                                "subprop_op": "is",
                                "subprop_value": ["x"],
                            }
                        ],
                    }
                ),
                "re": "_all",
                "start": "20240301",
                "end": "20240331",
            },
            "se",
        ),
        ("/api/2/retention", {**ANY_MARCH, "rm": "bracket", "rb": json.dumps([[0, 1]] * 121)}, "rb"),
        ("/api/2/retention", {"se": "_new", "re": "_all", "start": "20240301", "end": "20240331", "i": "14"}, "i"),
        (
            "/api/2/retention",
            {"se": "_new", "re": "_all", "start": "20240301", "end": "20240331", "calendar": "yes"},
            "calendar",
        ),
        ("/api/2/revenue/ltv", {"start": "20240301"}, "end"),
        ("/api/2/revenue/ltv", {"start": "20240301", "end": "20240331", "m": "7"}, "m"),
    ],
)
def test_bad_retention_and_ltv_parameters(two_projects, path: str, params: dict[str, str], param: str) -> None:  # type: ignore[no-untyped-def]
    client, a, _ = two_projects
    response = client.get(path, params=params, auth=(a["api_key"], a["secret_key"]))
    assert response.status_code == 400, response.text
    assert response.json()["error"].startswith(f"parameter '{param}'")


@pytest.mark.parametrize(
    "body",
    [
        b"{",
        b"[]",
        json.dumps({"name": "x"}).encode(),
        json.dumps({"name": "x", "definition": {"all": []}}).encode(),
        json.dumps(
            {"name": "x", "definition": {"performed": {"event_type": PI}, "not": {"performed": {"event_type": PI}}}}
        ).encode(),
        json.dumps({"name": "x", "definition": {"performed": {"event_type": PI, "measure": {"kind": "sum"}}}}).encode(),
        json.dumps(
            {"name": "x", "definition": {"performed": {"event_type": PI, "timing": {"kind": "during"}}}}
        ).encode(),
        json.dumps({"name": "", "definition": {"performed": {"event_type": PI}}}).encode(),
    ],
)
def test_bad_cohort_definitions_get_400(two_projects, body: bytes) -> None:  # type: ignore[no-untyped-def]
    client, a, _ = two_projects
    response = client.post("/api/cohorts", content=body, auth=(a["api_key"], a["secret_key"]))
    assert response.status_code == 400, response.text
    assert response.json()["ok"] is False


def test_three_currencies_converted_through_the_segmentation_api(tmp_path: Path) -> None:
    """Issue 4's end to end: signed webhooks in USD, EUR and JPY; the total comes back in USD."""
    with app_client(tmp_path) as client:
        project, url = setup_project(client, "fx", "USD", "UTC")
        rates = {
            "base": "EUR",
            "rates": [
                {"date": "2024-03-01", "currency": "USD", "rate": "1.10"},
                {"date": "2024-03-01", "currency": "JPY", "rate": "160"},
            ],
        }
        assert client.post("/-/rates", json=rates).status_code == 200
        payments = [(1000, "usd"), (2000, "eur"), (1000, "jpy")]
        for i, (amount, currency) in enumerate(payments):
            event = envelope(
                "payment_intent.succeeded",
                stripe_object("payment_intent", amount_received=amount, currency=currency),
                created=1_709_550_000 + i,
                event_id=f"evt_fx_{i}",
            )  # Monday 4 March 2024: Friday's rates
            body, headers = signed(event, SECRET)
            assert client.post(url, content=body, headers=headers).status_code == 200
        wait_for(lambda: stored(client, "evt_fx_2"))
        params = {
            "e": json.dumps({"event_type": PI, "group_by": [{"value": "$revenue"}]}),
            "m": "sums",
            "start": "20240304",
            "end": "20240304",
        }
        data = client.get(
            "/api/2/events/segmentation", params=params, auth=(project["api_key"], project["secret_key"])
        ).json()
        # 10.00 USD + 20.00 EUR * 1.10 = 22.00 + 1000 JPY / 160 * 1.10 = 6.875 -> 6.88 (half-even) = 38.88 USD
        assert Decimal(str(data["data"]["seriesCollapsed"][0][0]["value"])) == Decimal("38.88")
        by_currency = client.get(
            "/api/2/events/segmentation",
            auth=(project["api_key"], project["secret_key"]),
            params={
                **params,
                "e": json.dumps(
                    {"event_type": PI, "group_by": [{"value": "$revenue"}, {"value": "original_currency"}]}
                ),
            },
        ).json()
        totals = {
            label[1]: Decimal(str(c[0]["value"]))
            for label, c in zip(
                by_currency["data"]["seriesLabels"], by_currency["data"]["seriesCollapsed"], strict=True
            )
        }
        assert totals == {"USD": Decimal("10"), "EUR": Decimal("22"), "JPY": Decimal("6.88")}
