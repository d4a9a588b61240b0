"""The webhook route's answers for every kind of input, in-process against a real data folder."""

from __future__ import annotations

import json
import time
from pathlib import Path

import duckdb
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from apphelpers import SECRET, app_client, setup_project, stored, wait_for
from revlens.webhook.signature import sign
from stripe_fixtures import envelope, signed, stripe_object


def _status(client, event_id: str):  # type: ignore[no-untyped-def]
    return wait_for(lambda: stored(client, event_id))


def test_accepts_stores_and_deduplicates(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        _, url = setup_project(client)
        pi = stripe_object("payment_intent", amount_received=1999, currency="usd", metadata={"user_id": "u1"})
        event = envelope("payment_intent.succeeded", pi, event_id="evt_dup_1")
        body, headers = signed(event, SECRET)
        first = client.post(url, content=body, headers=headers)
        assert first.status_code == 200 and first.json()["status"] == "accepted"
        # Stripe retries with a new signature timestamp; same event id.
        body, headers = signed(event, SECRET, int(time.time()) + 1)
        assert client.post(url, content=body, headers=headers).status_code == 200
        delivery = _status(client, "evt_dup_1")
        assert delivery["status"] == "stored" and delivery["queryable"] is True
        wait_for(lambda: stored(client, "evt_dup_1")["attempts"] == 2)  # type: ignore[index]
        status = client.get("/-/status").json()["endpoints"][0]
        assert status["stored"] == 1 and status["duplicates"] == 1 and status["received"] == 2
    con = duckdb.connect(str(tmp_path / "revlens.duckdb"), read_only=True)
    rows = con.execute("SELECT insert_id, user_id, revenue FROM events").fetchall()
    assert [(r[0], r[1], str(r[2])) for r in rows] == [("evt_dup_1", "u1", "19.990")]


def test_answers_for_bad_input(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        _, url = setup_project(client)
        good = envelope("charge.succeeded", stripe_object("charge"))
        body, headers = signed(good, SECRET)
        cases = [
            ("/webhooks/stripe/we_nope", body, headers, 404),
            (url, body, {}, 400),  # no signature
            (url, body, {"Stripe-Signature": sign(body, "whsec_wrong_secret")}, 400),
            (url, body, {"Stripe-Signature": sign(body, SECRET, int(time.time()) - 301)}, 400),  # stale
            (url, b"{not json", {"Stripe-Signature": sign(b"{not json", SECRET)}, 400),
            (url, b"[1, 2]", {"Stripe-Signature": sign(b"[1, 2]", SECRET)}, 400),
            (url, b'{"id": "evt_x"}', {"Stripe-Signature": sign(b'{"id": "evt_x"}', SECRET)}, 400),
            (url, b"x" * (1024 * 1024 + 1), {"Stripe-Signature": "t=1,v1=00"}, 413),
        ]
        for path, data, hdrs, expected in cases:
            response = client.post(path, content=data, headers=hdrs)
            assert response.status_code == expected, (path, data[:30], response.text)
            assert response.json()["ok"] is False and response.json()["status"] == expected
        assert client.get(url).status_code == 405
        status = client.get("/-/status").json()["endpoints"][0]
        assert status["rejected_signatures"] == 3
        assert status["invalid"] == 4
        assert status["stored"] == 0


def test_ignored_and_parked(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        _, url = setup_project(client)
        ignored = envelope("customer.created", stripe_object("customer"), event_id="evt_ign")
        response = client.post(url, content=signed(ignored, SECRET)[0], headers=signed(ignored, SECRET)[1])
        assert response.status_code == 200 and response.json()["status"] == "ignored"
        newer = envelope(
            "charge.succeeded", stripe_object("charge"), event_id="evt_new", api_version="2025-03-31.basil"
        )
        body, headers = signed(newer, SECRET)
        response = client.post(url, content=body, headers=headers)
        assert response.status_code == 200 and response.json()["status"] == "parked"
        assert _status(client, "evt_new")["status"] == "parked"
        assert stored(client, "evt_ign") is None
        status = wait_for(lambda: (s := client.get("/-/status").json()["endpoints"][0])["ignored"] == 1 and s)
        assert status["parked"] == 1 and status["stored"] == 0


def test_storage_unavailable_answers_503_and_stores_nothing(tmp_path: Path) -> None:
    import os

    with app_client(tmp_path) as client:
        _, url = setup_project(client)
        log = client.app.runtime.log  # type: ignore[attr-defined]
        fd = log._fd
        os.close(fd)
        log._fd = os.open(os.devnull, os.O_RDONLY)  # every write now fails, as on a dead disk
        event = envelope("charge.succeeded", stripe_object("charge"), event_id="evt_503")
        body, headers = signed(event, SECRET)
        response = client.post(url, content=body, headers=headers)
        assert response.status_code == 503
        assert response.json()["error"].startswith("storage unavailable")
        time.sleep(0.2)
        assert stored(client, "evt_503") is None


def test_two_endpoints_of_one_project_never_double_count(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        _, url_a = setup_project(client)
        url_b = client.post(
            "/-/endpoints", json={"project": "acme", "signing_secrets": ["whsec_other_account"]}
        ).json()["url_path"]
        event = envelope(
            "payment_intent.succeeded",
            stripe_object("payment_intent", amount_received=100),
            event_id="evt_both",
            account="acct_A",
        )
        body = json.dumps(event).encode()
        assert client.post(url_a, content=body, headers={"Stripe-Signature": sign(body, SECRET)}).status_code == 200
        assert (
            client.post(
                url_b, content=body, headers={"Stripe-Signature": sign(body, "whsec_other_account")}
            ).status_code
            == 200
        )
        wait_for(lambda: stored(client, "evt_both"))
        totals = wait_for(
            lambda: (s := client.get("/-/status").json()["endpoints"]) and sum(e["received"] for e in s) == 2 and s
        )
        assert sum(e["stored"] for e in totals) == 1
        assert sum(e["duplicates"] for e in totals) == 1


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
envelope_like = st.fixed_dictionaries(
    {
        "id": st.one_of(st.text(max_size=30), st.integers(), st.none()),
        "type": st.sampled_from(["payment_intent.succeeded", "charge.refunded", "invoice.paid", "x", ""])
        | st.text(max_size=10),
        "created": st.one_of(st.integers(min_value=-10, max_value=2**40), st.text(max_size=5)),
        "api_version": st.sampled_from(["2024-06-20", None, "2099-01-01"]),
        "data": st.one_of(
            json_values,
            st.fixed_dictionaries({"object": json_values}),
            st.fixed_dictionaries(
                {
                    "object": st.dictionaries(
                        st.sampled_from(
                            [
                                "amount_received",
                                "currency",
                                "customer",
                                "metadata",
                                "amount_refunded",
                                "lines",
                                "receipt_email",
                                "description",
                            ]
                        ),
                        json_values,
                    )
                },
                optional={"previous_attributes": json_values},
            ),
        ),
    }
)


@pytest.fixture(scope="module")
def shared_client(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    with app_client(tmp_path_factory.mktemp("fuzz")) as client:
        _, url = setup_project(client)
        yield client, url


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(json_values, envelope_like))
def test_no_signed_json_body_makes_the_server_answer_500(shared_client, body) -> None:  # type: ignore[no-untyped-def]
    client, url = shared_client
    raw = json.dumps(body).encode()
    response = client.post(url, content=raw, headers={"Stripe-Signature": sign(raw, SECRET)})
    assert response.status_code in (200, 400)
    assert client.get("/-/health").status_code == 200


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raw=st.binary(max_size=200), header=st.text(max_size=60))
def test_no_raw_body_or_header_makes_the_server_answer_500(shared_client, raw, header) -> None:  # type: ignore[no-untyped-def]
    client, url = shared_client
    try:
        response = client.post(url, content=raw, headers={"Stripe-Signature": header})
    except UnicodeEncodeError:
        return  # not sendable as an HTTP header at all
    assert response.status_code == 400


def test_loader_reads_from_the_log_when_it_falls_behind(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the in-memory bound, records stay on disk only and are loaded from the log: none is lost."""
    from revlens.ingest import loader

    monkeypatch.setattr(loader, "MAX_QUEUED_BATCHES", 0)  # every batch overflows
    with app_client(tmp_path) as client:
        _, url = setup_project(client)
        for i in range(30):
            event = envelope("charge.succeeded", stripe_object("charge"), event_id=f"evt_behind_{i}")
            body, headers = signed(event, SECRET)
            assert client.post(url, content=body, headers=headers).status_code == 200
        wait_for(lambda: stored(client, "evt_behind_29"))
        status = wait_for(lambda: (s := client.get("/-/status").json()["endpoints"][0])["stored"] == 30 and s)
        assert status["duplicates"] == 0


def test_deeply_nested_and_huge_bodies_get_4xx(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        _, url = setup_project(client)
        deep = b"[" * 5000 + b"]" * 5000
        response = client.post(url, content=deep, headers={"Stripe-Signature": sign(deep, SECRET)})
        assert response.status_code == 400
        nested_event = envelope("charge.succeeded", {"id": "ch_1", "object": "charge"}, event_id="evt_deep")
        inner: dict[str, object] = {}
        nested_event["data"]["object"]["metadata"] = inner
        for _ in range(200):  # deep but valid JSON: flattening stops at its depth bound
            inner["x"] = {}
            inner = inner["x"]  # type: ignore[assignment]
        body, headers = signed(nested_event, SECRET)
        assert client.post(url, content=body, headers=headers).status_code == 200
        assert wait_for(lambda: stored(client, "evt_deep"))["status"] == "stored"
        huge = b"{" + b" " * (2 * 1024 * 1024) + b"}"
        assert client.post(url, content=huge, headers={"Stripe-Signature": sign(huge, SECRET)}).status_code == 413
