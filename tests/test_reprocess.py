"""Reprocess rebuilds everything from the raw deliveries: no duplicates, links applied backwards,
new rates and a new reporting currency applied."""

from __future__ import annotations

from pathlib import Path

import duckdb

from apphelpers import SECRET, app_client, setup_project, stored, wait_for
from revlens.admin import LocalAdmin
from revlens.store.duckdb_store import DuckDBStore
from stripe_fixtures import envelope, signed


def _post(client, url, event):  # type: ignore[no-untyped-def]
    body, headers = signed(event, SECRET)
    assert client.post(url, content=body, headers=headers).status_code == 200


SQL = "SELECT insert_id, user_id, CAST(revenue AS VARCHAR) FROM events ORDER BY time"


def _events(where: Path | object) -> list[tuple[str, str, str | None]]:
    """Events from a closed data folder, or from a running test client's store."""
    if isinstance(where, Path):
        con = duckdb.connect(str(where / "revlens.duckdb"), read_only=True)
        rows = con.execute(SQL).fetchall()
        con.close()
        return rows
    return where.app.runtime.store.execute(SQL)  # type: ignore[attr-defined,no-any-return]


def test_reprocess_links_earlier_events_and_applies_new_settings(tmp_path: Path) -> None:
    charge_first = envelope(
        "charge.succeeded",
        {"id": "ch_1", "object": "charge", "customer": "cus_A", "amount": 1000, "currency": "eur"},
        event_id="evt_1",
        created=1_709_290_000,
    )
    pi_later = envelope(
        "payment_intent.succeeded",
        {
            "id": "pi_1",
            "object": "payment_intent",
            "customer": "cus_A",
            "metadata": {"user_id": "user_A"},
            "amount_received": 1000,
            "currency": "eur",
        },
        event_id="evt_2",
        created=1_709_290_100,
    )
    with app_client(tmp_path) as client:
        _, url = setup_project(client)
        for event in (charge_first, pi_later, pi_later):
            _post(client, url, event)
        wait_for(lambda: (d := stored(client, "evt_2")) and d["attempts"] == 2)
        # Live: the charge came before the link was known, so it belongs to the customer id.
        assert _events(client) == [("evt_1", "cus_A", None), ("evt_2", "user_A", None)]
        # No EUR rate yet: the purchase waits for one, flagged, never converted 1:1.
        assert client.get("/-/status").json()["endpoints"][0]["fx_missing"] == 1
        rates = {"base": "EUR", "rates": [{"date": "2024-02-29", "currency": "USD", "rate": "1.0850"}]}
        result = client.post("/-/rates", json=rates).json()
        assert result["reconverted"] == {"events": 1, "still_missing": 0}
        assert _events(client)[1] == ("evt_2", "user_A", "10.850")
        # Reprocess applies the link to the earlier charge, without duplicating anything.
        summary = client.post("/-/reprocess").json()
        assert summary == {"records": 3, "stored": 2, "duplicates": 1, "parked": 0, "failed": 0}
        assert _events(client) == [("evt_1", "user_A", None), ("evt_2", "user_A", "10.850")]
        assert client.get("/-/status").json()["endpoints"][0]["duplicates"] == 1
        # A new reporting currency takes effect on reprocess.
        assert client.patch("/-/projects/acme", json={"currency": "EUR"}).status_code == 200
        client.post("/-/reprocess")
        assert _events(client)[1] == ("evt_2", "user_A", "10.000")


def test_offline_reprocess_matches_live_result(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        _, url = setup_project(client)
        for i in range(20):
            event = envelope(
                "payment_intent.succeeded",
                {
                    "id": f"pi_{i}",
                    "object": "payment_intent",
                    "customer": f"cus_{i % 3}",
                    "amount_received": 100 * i,
                    "currency": "usd",
                },
                event_id=f"evt_{i}",
                created=1_709_290_000 + i,
            )
            _post(client, url, event)
        wait_for(lambda: stored(client, "evt_19"))
    before = _events(tmp_path)
    store = DuckDBStore(tmp_path)
    try:
        result = LocalAdmin(store, tmp_path / "log").reprocess()
    finally:
        store.close()
    assert result["stored"] == 20 and result["duplicates"] == 0
    assert _events(tmp_path) == before
