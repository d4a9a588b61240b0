"""Every route that is not public refuses missing, wrong and other-project credentials; metrics,
headers and the failed-authentication limit."""

from __future__ import annotations

import json
from pathlib import Path

from starlette.routing import Route

from apphelpers import TOKEN, app_client, setup_project
from revlens.api.app import ROUTES

PUBLIC = {"/-/health", "/-/openapi.json"}


def _concrete(path: str) -> str:
    return path.replace("{event_id:str}", "evt_1").replace("{name:str}", "acme").replace("{cohort_id}", "1")


def test_every_non_public_route_refuses_missing_and_wrong_credentials(tmp_path: Path) -> None:
    with app_client(tmp_path, auth_failures_per_minute=100_000) as client:
        project, _ = setup_project(client)
        other, _ = setup_project(client, "other")
        client.headers.pop("Authorization")
        checked = 0
        for route in ROUTES:
            assert isinstance(route, Route)
            if route.path in PUBLIC:
                continue
            path = _concrete(route.path)
            for method in sorted(route.methods or {"GET"}):
                if method == "HEAD":
                    continue
                for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic Zm9vOmJhcg=="}):
                    response = client.request(method, path, headers=headers, content=b"{}")
                    assert response.status_code == 401, (method, path, headers, response.status_code)
                    assert response.json()["ok"] is False
                checked += 1
        assert checked >= 15
        # Project routes also refuse another project's keys for that project's things.
        made = client.post(
            "/api/cohorts",
            auth=(project["api_key"], project["secret_key"]),
            json={"name": "c", "definition": {"performed": {"event_type": "_all"}}},
        )
        assert made.status_code == 201
        stolen = client.get(f"/api/cohorts/{made.json()['id']}", auth=(other["api_key"], other["secret_key"]))
        assert stolen.status_code == 404
        # Admin routes refuse project keys.
        assert client.get("/-/status", auth=(project["api_key"], project["secret_key"])).status_code == 401


def test_secrets_never_appear_in_answers(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        project, _ = setup_project(client)
        bodies = [client.get(path).text for path in ("/-/status", "/-/projects", "/-/endpoints", "/metrics")]
        bodies.append(client.get("/api/3/cohorts", auth=(project["api_key"], project["secret_key"])).text)
        for body in bodies:
            assert "whsec_" not in body
            assert project["secret_key"] not in body


def test_metrics_headers_and_request_ids(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        _, url = setup_project(client)
        client.post(url, content=b"{}", headers={"Stripe-Signature": "t=1,v1=00"})
        metrics = client.get("/metrics")
        assert metrics.status_code == 200
        text = metrics.text
        assert 'revlens_deliveries_total{outcome="rejected"} 1.0' in text
        assert "revlens_log_commit_seconds_bucket" in text
        assert "revlens_loader_queue_batches" in text
        assert 'revlens_store_memory_bytes{tag="' in text  # read from the running store
        assert "process_resident_memory_bytes" in text
        assert "revlens_python_allocated_blocks" in text
        response = client.get("/-/status", headers={"x-request-id": "abc123"})
        assert response.headers["x-request-id"] == "abc123"
        assert response.headers["x-content-type-options"] == "nosniff"
        assert response.headers["x-frame-options"] == "DENY"
        assert "default-src 'self'" in response.headers["content-security-policy"]
        assert "access-control-allow-origin" not in response.headers
        preflight = client.options(
            "/-/status", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
        )
        assert "access-control-allow-origin" not in preflight.headers


def test_repeated_failed_authentication_is_limited(tmp_path: Path) -> None:
    with app_client(tmp_path) as client:
        project, _ = setup_project(client)
        params = {"e": json.dumps({"event_type": "_all"}), "start": "20240101", "end": "20240102"}
        statuses = [
            client.get("/api/2/events/segmentation", params=params, auth=(project["api_key"], f"guess{i}")).status_code
            for i in range(25)
        ]
        assert statuses[:20] == [401] * 20
        assert set(statuses[20:]) == {429}
        # Even the right key waits out the block, and so does the admin token from that address.
        right = client.get(
            "/api/2/events/segmentation", params=params, auth=(project["api_key"], project["secret_key"])
        )
        assert right.status_code == 429
        assert client.get("/-/status", headers={"Authorization": f"Bearer {TOKEN}"}).status_code == 429
