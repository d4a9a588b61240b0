"""The dashboard in a real headless Chromium (Debian's package, driven by Playwright) against a real
`revlens serve` with demo data: sign in, the starter dashboard drawn, a chart edited, retention,
cohorts, setup, phone width, logout. Screenshots go to test-artifacts/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from benchload import load_bench
from revlens.web.charts import Chart, rows

_ingest = load_bench("ingest")
HOST, Server, free_port = _ingest.HOST, _ingest.Server, _ingest.free_port

CHROMIUM = os.environ.get("REVLENS_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
MARKS = "svg path.mark-rect, svg g.mark-rect path, svg path.mark-line, svg g.mark-symbol path, svg .mark-rect path"

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason=f"no Chromium at {CHROMIUM} (apt-get install chromium)"
)


def _revlens(*args: str, data_dir: Path) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "revlens", *args, "--data-dir", str(data_dir)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return done.stdout


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    data_dir = tmp_path_factory.mktemp("dashboard")
    keys = json.loads(_revlens("projects", "create", "demo", "--json", data_dir=data_dir))
    _revlens("demo", "--events", "3000", "--no-serve", "--port", str(free_port()), data_dir=data_dir)
    server = Server(sys.executable, dict(os.environ), data_dir, free_port(), pin=False)
    try:
        server.wait_healthy()
        yield {"base": f"http://{HOST}:{server.port}", "keys": keys, "data_dir": data_dir}
    finally:
        server.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield launched
        launched.close()


def _shot(page: Any, name: str) -> None:
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"dashboard-{name}.png"), full_page=True)


def _wait_board(page: Any) -> list[dict[str, Any]]:
    page.wait_for_selector("#board[data-ready=true]", state="attached", timeout=30_000)
    return page.evaluate(
        """(marks) => [...document.querySelectorAll('.chart-card')].map(c => ({
            id: c.dataset.chart, state: c.dataset.state, title: c.querySelector('h2').textContent,
            marks: c.querySelectorAll(marks).length, rows: c.rows, answers: c.answers}))""",
        MARKS,
    )


def test_the_dashboard_in_a_real_browser(server: dict[str, Any], browser: Any) -> None:
    errors: list[str] = []
    context = browser.new_context(viewport={"width": 1280, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.on("pageerror", lambda exc: errors.append(str(exc)))

    # Nothing without signing in: the sign-in form, then the project's keys.
    page.goto(server["base"] + "/")
    assert page.locator("form#signin").is_visible()
    _shot(page, "1-sign-in")
    page.fill("#api_key", server["keys"]["api_key"])
    page.fill("#secret_key", "wrong")
    page.click("form#signin button[type=submit]")
    assert "do not match" in page.locator(".error").text_content()
    page.fill("#api_key", server["keys"]["api_key"])
    page.fill("#secret_key", server["keys"]["secret_key"])
    page.click("form#signin button[type=submit]")
    page.wait_for_url("**/p/demo")

    # The starter dashboard: seven charts, each drawn with marks from the demo data.
    cards = _wait_board(page)
    assert [c["id"] for c in cards] == [
        "revenue",
        "avg-purchases",
        "frequency",
        "retention",
        "revenue-by-product",
        "orders-by-product",
        "big-spenders",
    ]
    for card in cards:
        assert card["state"] == "ready" and card["marks"] > 0, card["id"]
    assert int(page.get_attribute(".big-number", "data-size") or 0) > 0
    # The browser's rows are the CLI's rows for the same answers.
    board = page.evaluate("fetch('/p/demo/boards/1').then(r => r.json())")
    for item, card in zip(board["items"], cards, strict=True):
        assert rows(Chart.model_validate(item["chart"]), card["answers"]) == card["rows"], card["id"]
    # Tooltips with exact values.
    page.hover(
        ".chart-card[data-chart=revenue-by-product] svg path.mark-rect, .chart-card[data-chart=revenue-by-product] svg .mark-rect path >> nth=0"
    )
    page.wait_for_selector("#vg-tooltip-element.visible", timeout=5000)
    assert "product" in page.locator("#vg-tooltip-element").text_content()
    _shot(page, "2-starter")

    # Edit a chart in the builder: new title, bar view; it is saved in the store.
    page.click(".chart-card[data-chart=avg-purchases] a:text('Edit')")
    page.wait_for_selector("#preview[data-state=ready]", timeout=20_000)
    page.fill("#chart-form input[name=title]", "Purchases per buyer")
    page.select_option("#chart-form select[name=view]", "bar")
    page.wait_for_function("document.getElementById('definition').textContent.includes('Purchases per buyer')")
    _shot(page, "3-builder")
    page.click("#save-chart")
    page.wait_for_url("**/p/demo?board=1")
    cards = _wait_board(page)
    edited = next(c for c in cards if c["id"] == "avg-purchases")
    assert edited["title"] == "Purchases per buyer" and edited["state"] == "ready" and edited["marks"] > 0

    # Rename and remove from the dashboard itself.
    page.once("dialog", lambda dialog: dialog.accept("Weekly revenue"))
    page.click(".chart-card[data-chart=revenue] button:text('Rename')")
    page.wait_for_selector(".chart-card[data-chart=revenue] h2:text('Weekly revenue')")
    _wait_board(page)
    page.once("dialog", lambda dialog: dialog.accept())
    page.click(".chart-card[data-chart=frequency] button:text('Remove')")
    page.wait_for_function("document.querySelectorAll('.chart-card').length === 6")
    assert len(_wait_board(page)) == 6

    # Phone width: one column, nothing wider than the screen.
    page.set_viewport_size({"width": 390, "height": 844})
    page.wait_for_timeout(300)
    assert page.evaluate("document.documentElement.scrollWidth") <= 400
    _shot(page, "4-phone")
    page.set_viewport_size({"width": 1280, "height": 900})

    # Retention: a heat-coloured table and a curve.
    page.click("nav a:text('Retention')")
    page.wait_for_selector("#retention-curve[data-state=ready]", timeout=20_000)
    page.wait_for_selector("#retention-table tbody tr")
    assert page.locator("#retention-curve").locator("svg path").count() > 0
    page.select_option("#retention-form select[name=mode]", "bracket")
    page.wait_for_selector("#retention-table th:text('Day 1-3')", timeout=20_000)
    _shot(page, "5-retention")

    # Cohorts: the starter cohort with its size, a new one, the members download.
    page.click("nav a:text('Cohorts')")
    page.wait_for_selector("#cohort-list tbody tr td.size:not(:text('…'))", timeout=20_000)
    page.fill("#cohort-form input[name=name]", "Bought twice")
    page.select_option("#cohort-form select[name=timing]", "last_days")
    page.fill("#cohort-form input[name=days]", "365")
    page.select_option("#cohort-form select[name=kind]", "count")
    page.fill("#cohort-form input[name=value]", "2")
    page.select_option("#cohort-form select[name=op]", ">=")
    page.click("#cohort-form button[type=submit]")
    page.wait_for_function("!document.getElementById('cohort-message').textContent.startsWith('Creating')")
    message = page.locator("#cohort-message").text_content() or ""
    assert message.startswith("Created"), message
    page.wait_for_selector("#cohort-list td:text('Bought twice')")
    with page.expect_download() as download:
        page.click("#cohort-list tbody tr >> nth=0 >> a:text('Download members')")
    members = Path(download.value.path()).read_text().splitlines()
    assert members[0] == "user_id" and len(members) > 1
    _shot(page, "6-cohorts")

    # Setup: the webhook URL, the Stripe steps and what has arrived.
    page.click("nav a:text('Setup')")
    assert "/webhooks/stripe/we_" in page.locator("code.url").first.text_content()
    assert "2024-06-20" in page.content()
    page.wait_for_selector("#status-table td[data-key=stored]")
    assert int(page.locator("#status-table td[data-key=stored]").first.text_content().replace(",", "")) > 0
    _shot(page, "7-setup")

    # Sign out: the session is gone, the sign-in form is back.
    page.click("#logout")
    page.wait_for_selector("form#signin")
    page.goto(server["base"] + "/p/demo")
    assert page.locator("form#signin").is_visible()
    assert errors == []
    context.close()


def test_chart_command_renders_the_same_chart_to_png(server: dict[str, Any], tmp_path: Path) -> None:
    """`revlens chart` goes through the running server's admin query path and writes a real PNG."""
    output = tmp_path / "revenue.png"
    printed = _revlens(
        "chart", "--project", "demo", "--chart", "revenue", "-o", str(output), data_dir=server["data_dir"]
    )
    assert "wrote" in printed
    assert output.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and output.stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(output, ARTIFACTS / "cli-revenue.png")
