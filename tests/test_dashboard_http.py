"""The dashboard over HTTP, in-process: nothing without a session, CSRF on every write, sessions
scoped to one project, logout, and the chart definitions answered by the query API."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from starlette.routing import Route
from starlette.testclient import TestClient

from apphelpers import TOKEN, app_client, setup_project
from revlens.web import routes as web_routes
from revlens.web.charts import Chart, requests, rows
from revlens.web.render import ChartError, chart_spec, pick_chart
from revlens.web.starter import starter_charts

HTML = {"Accept": "text/html"}


def _concrete(path: str) -> str:
    return path.replace("{project}", "acme").replace("{board_id}", "1").replace("{name}", "app.js")


def _sign_in(client: TestClient, **fields: str) -> TestClient:
    page = client.get("/", headers=HTML)
    token = re.search(r'name="login_token" value="([^"]+)"', page.text)
    assert token, page.text
    response = client.post(
        "/login", data={"login_token": token.group(1), "next": "/", **fields}, headers=HTML, follow_redirects=False
    )
    assert response.status_code == 303, response.text
    return client


def _csrf(client: TestClient, project: str = "acme") -> str:
    page = client.get(f"/p/{project}", headers=HTML)
    assert page.status_code == 200, page.text
    found = re.search(r'name="csrf-token" content="([^"]+)"', page.text)
    assert found
    return found.group(1)


@pytest.fixture
def client(tmp_path: Path) -> Any:
    with app_client(tmp_path, auth_failures_per_minute=100_000) as client:
        project, _ = setup_project(client)
        other, _ = setup_project(client, "other")
        client.headers.pop("Authorization")
        client.project, client.other = project, other  # type: ignore[attr-defined]
        yield client


def test_every_dashboard_route_refuses_without_a_session(client: TestClient) -> None:
    checked = 0
    for route in web_routes.ROUTES:
        assert isinstance(route, Route)
        for method in sorted((route.methods or {"GET"}) - {"HEAD"}):
            path = _concrete(route.path)
            response = client.request(method, path, content=b"{}")
            assert response.status_code == 401, (method, path, response.status_code)
            assert response.json()["ok"] is False
            checked += 1
    assert checked >= 15
    # A browser gets the sign-in form instead of JSON, and no project data.
    page = client.get("/p/acme", headers=HTML)
    assert page.status_code == 401 and 'action="/login"' in page.text
    assert "acme" not in page.text.replace('value="/p/acme"', "")
    # A made-up or expired cookie is no session either.
    client.cookies.set("revlens_session", "forged")
    assert client.get("/p/acme/boards").status_code == 401


def test_sign_in_with_keys_sees_only_that_project(client: TestClient) -> None:
    project = client.project  # type: ignore[attr-defined]
    _sign_in(client, api_key=project["api_key"], secret_key=project["secret_key"])
    assert client.get("/", headers=HTML, follow_redirects=False).headers["location"] == "/p/acme"
    boards = client.get("/p/acme/boards").json()["dashboards"]
    assert [b["name"] for b in boards] == ["Revenue"] and boards[0]["charts"] == 7
    assert client.get("/p/other/boards").status_code == 404
    assert client.get("/p/other", headers=HTML).status_code == 404
    # The query API accepts the session (GET needs no CSRF token) for its own project only.
    assert client.get("/api/cohorts", params={"project": "acme"}).status_code == 200
    assert client.get("/api/cohorts", params={"project": "other"}).status_code == 404
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/nope.js").status_code == 404


def test_wrong_credentials_and_forged_sign_in_forms(client: TestClient) -> None:
    project = client.project  # type: ignore[attr-defined]
    page = client.get("/", headers=HTML)
    token = re.search(r'name="login_token" value="([^"]+)"', page.text).group(1)  # type: ignore[union-attr]
    wrong = client.post(
        "/login", data={"login_token": token, "api_key": project["api_key"], "secret_key": "x"}, headers=HTML
    )
    assert wrong.status_code == 401 and "do not match" in wrong.text
    assert client.post("/login", data={"login_token": token, "admin_token": "nope"}).status_code == 401
    # Right keys but no sign-in form token (a cross-site form post): refused.
    client.cookies.clear()
    forged = client.post("/login", data={"api_key": project["api_key"], "secret_key": project["secret_key"]})
    assert forged.status_code == 403
    assert "revlens_session" not in client.cookies


def test_csrf_is_enforced_on_every_write(client: TestClient) -> None:
    _sign_in(client, admin_token=TOKEN)
    csrf = _csrf(client)
    board = client.get("/p/acme/boards/1").json()
    charts = board["charts"][:2]
    assert client.put("/p/acme/boards/1", json={"charts": charts}).status_code == 403
    assert client.put("/p/acme/boards/1", json={"charts": charts}, headers={"X-CSRF-Token": "wrong"}).status_code == 403
    saved = client.put("/p/acme/boards/1", json={"name": "Mine", "charts": charts}, headers={"X-CSRF-Token": csrf})
    assert saved.status_code == 200 and saved.json()["name"] == "Mine" and len(saved.json()["items"]) == 2
    assert client.post("/p/acme/boards", json={"name": "x"}).status_code == 403
    assert client.post("/p/acme/preview", json={"chart": charts[0]}).status_code == 403
    definition = {"name": "c", "definition": {"performed": {"event_type": "_all"}}}
    assert client.post("/api/cohorts", params={"project": "acme"}, json=definition).status_code == 403
    made = client.post("/api/cohorts", params={"project": "acme"}, json=definition, headers={"X-CSRF-Token": csrf})
    assert made.status_code == 201
    assert client.delete(f"/api/cohorts/{made.json()['id']}", params={"project": "acme"}).status_code == 403
    assert client.post("/logout").status_code == 403
    # Admin sessions read every project, and must name it on the query API.
    assert client.get("/p/other/boards").status_code == 200
    assert client.get("/api/cohorts").status_code == 400


def test_logout_ends_the_session_even_for_a_copied_cookie(client: TestClient) -> None:
    _sign_in(client, admin_token=TOKEN)
    csrf = _csrf(client)
    copied = client.cookies.get("revlens_session")
    out = client.post("/logout", data={"csrf": csrf}, follow_redirects=False)
    assert out.status_code == 303
    client.cookies.set("revlens_session", copied or "")
    assert client.get("/p/acme/boards").status_code == 401
    assert client.get("/api/cohorts", params={"project": "acme"}).status_code == 401


def test_dashboards_are_saved_renamed_and_removed(client: TestClient) -> None:
    _sign_in(client, admin_token=TOKEN)
    headers = {"X-CSRF-Token": _csrf(client)}
    chart = {"id": "weekly", "title": "Weekly buyers", "measure": "uniques", "view": "table"}
    made = client.post("/p/acme/boards", json={"name": "Mine", "charts": [chart]}, headers=headers)
    assert made.status_code == 201
    board_id = made.json()["id"]
    assert made.json()["items"][0]["requests"][0]["path"] == "/api/2/events/segmentation"
    bad = client.put(f"/p/acme/boards/{board_id}", json={"charts": [{**chart, "measure": "nope"}]}, headers=headers)
    assert bad.status_code == 400 and "measure" in str(bad.json())
    renamed = client.put(f"/p/acme/boards/{board_id}", json={"name": "Renamed"}, headers=headers).json()
    assert renamed["name"] == "Renamed" and renamed["charts"][0]["title"] == "Weekly buyers"
    assert client.delete(f"/p/acme/boards/{board_id}", headers=headers).status_code == 200
    assert client.get(f"/p/acme/boards/{board_id}").status_code == 404
    assert client.get("/p/acme/boards/abc").status_code == 404


def test_starter_charts_are_answered_by_the_query_api(client: TestClient) -> None:
    """Every starter chart's requests are valid API calls, and their answers become rows."""
    _sign_in(client, admin_token=TOKEN)
    board = client.get("/p/acme/boards/1").json()
    assert [i["chart"]["title"] for i in board["items"]][:2] == ["Total revenue", "Average purchases per user"]
    for item in board["items"]:
        chart = Chart.model_validate(item["chart"])
        answers = []
        for request in item["requests"]:
            response = client.get(request["path"], params={**request["params"], "project": "acme"})
            assert response.status_code == 200, (chart.id, response.text)
            body = response.json()
            answers.append(body.get("data", body))
        assert isinstance(rows(chart, answers), list)
        assert item["spec"]["data"] == {"name": "rows"}


def test_cli_chart_spec_and_names() -> None:
    charts = {c.id: c for c in starter_charts("USD", 3)}
    big = requests(charts["big-spenders"], date(2026, 11, 25))
    assert big[1]["params"]["s"] == '[{"prop": "userdata_cohort", "op": "is", "values": ["3"]}]'
    assert requests(charts["revenue"], date(2026, 11, 25))[0]["params"]["start"] == "20260530"
    with pytest.raises(ChartError):
        pick_chart("big-spenders", None)
    with pytest.raises(ChartError):
        pick_chart("nothing", None)
    frequency = pick_chart("Purchase frequency", None)
    answer = {"xValues": ["1", "2"], "series": [[3, 1]], "seriesLabels": [0]}
    spec = chart_spec(frequency, lambda kind, params: answer, date(2026, 11, 25))
    assert spec["datasets"]["rows"] == [
        {"x": "1", "order": 0, "series": "Users by number of events", "value": 3.0},
        {"x": "2", "order": 1, "series": "Users by number of events", "value": 1.0},
    ]
    assert spec["mark"]["type"] == "bar" and spec["title"] == "Purchase frequency"
