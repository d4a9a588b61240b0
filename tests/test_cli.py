"""The CLI on a data folder with no server running (the server case is in test_end_to_end)."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from typer.testing import CliRunner

from revlens.cli import app

runner = CliRunner()


def _run(*args: str, env: dict[str, str] | None = None):  # type: ignore[no-untyped-def]
    return runner.invoke(app, list(args), env=env)


def test_create_project_and_endpoint_json_contract(tmp_path: Path) -> None:
    result = _run(
        "projects",
        "create",
        "acme",
        "--currency",
        "eur",
        "--timezone",
        "Europe/Paris",
        "--data-dir",
        str(tmp_path),
        "--json",
    )
    assert result.exit_code == 0, result.output
    project = orjson.loads(result.stdout)
    assert set(project) == {"id", "name", "api_key", "secret_key", "currency", "timezone"}
    assert project["currency"] == "EUR" and project["timezone"] == "Europe/Paris"
    result = _run(
        "stripe",
        "add-endpoint",
        "--project",
        "acme",
        "--signing-secret",
        "whsec_abcdef123456",
        "--data-dir",
        str(tmp_path),
        "--json",
    )
    assert result.exit_code == 0, result.output
    endpoint = orjson.loads(result.stdout)
    assert set(endpoint) == {"id", "project", "url_path"}
    assert endpoint["url_path"] == f"/webhooks/stripe/{endpoint['id']}"
    listed = orjson.loads(_run("projects", "list", "--data-dir", str(tmp_path), "--json").stdout)
    assert [p["name"] for p in listed] == ["acme"]
    assert "secret_key" not in listed[0] and "secret_hash" not in listed[0]


def test_human_output_shows_setup_steps(tmp_path: Path) -> None:
    _run("projects", "create", "acme", "--data-dir", str(tmp_path))
    result = _run(
        "stripe",
        "add-endpoint",
        "--project",
        "acme",
        "--signing-secret",
        "whsec_abcdef123456",
        "--data-dir",
        str(tmp_path),
    )
    assert result.exit_code == 0
    assert "/webhooks/stripe/we_" in result.stdout
    assert "2024-06-20" in result.stdout
    assert "payment_intent.succeeded" in result.stdout
    assert "whsec_abcdef123456" not in result.stdout  # secrets are never printed back


def test_data_dir_from_environment(tmp_path: Path) -> None:
    env = {"REVLENS_DATA_DIR": str(tmp_path / "elsewhere")}
    assert _run("projects", "create", "acme", env=env).exit_code == 0
    assert (tmp_path / "elsewhere" / "revlens.duckdb").exists()
    listed = orjson.loads(_run("projects", "list", "--json", env=env).stdout)
    assert listed[0]["name"] == "acme"


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("projects", "create", "acme"), "already exists"),
        (("projects", "create", "other", "--currency", "dollars"), "not a currency code"),
        (("projects", "create", "other", "--timezone", "Mars/Olympus"), "unknown time zone"),
        (("projects", "create", "bad name!"), "project name"),
        (("stripe", "add-endpoint", "--project", "nope", "--signing-secret", "whsec_abcdef123456"), "no project"),
        (("stripe", "add-endpoint", "--project", "acme", "--signing-secret", "sk_live_123"), "whsec_"),
    ],
)
def test_errors_are_clear_and_exit_nonzero(tmp_path: Path, args: tuple[str, ...], message: str) -> None:
    _run("projects", "create", "acme", "--data-dir", str(tmp_path))
    result = _run(*args, "--data-dir", str(tmp_path))
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_status_and_reprocess_on_an_empty_folder(tmp_path: Path) -> None:
    _run("projects", "create", "acme", "--data-dir", str(tmp_path))
    _run(
        "stripe",
        "add-endpoint",
        "--project",
        "acme",
        "--signing-secret",
        "whsec_abcdef123456",
        "--data-dir",
        str(tmp_path),
    )
    status = orjson.loads(_run("status", "--data-dir", str(tmp_path), "--json").stdout)
    assert status["endpoints"][0]["received"] == 0
    result = orjson.loads(_run("reprocess", "--data-dir", str(tmp_path), "--json").stdout)
    assert result == {"records": 0, "stored": 0, "duplicates": 0, "parked": 0, "failed": 0}


def test_query_commands_on_a_data_folder(tmp_path: Path) -> None:
    from apphelpers import SECRET, app_client, setup_project, stored, wait_for
    from stripe_fixtures import envelope, signed, stripe_object

    with app_client(tmp_path) as client:
        _, url = setup_project(client, "shop")
        for i, user in enumerate(["ann", "ann", "bob"]):
            pi = stripe_object("payment_intent", amount_received=6000, currency="usd", metadata={"user_id": user})
            body, headers = signed(
                envelope("payment_intent.succeeded", pi, created=1_709_550_000 + i * 86400, event_id=f"evt_q{i}"),
                SECRET,
            )
            assert client.post(url, content=body, headers=headers).status_code == 200
        wait_for(lambda: stored(client, "evt_q2"))
    base = ["--project", "shop", "--data-dir", str(tmp_path), "--json"]
    seg = _run(
        "query",
        "segmentation",
        "--event",
        "[Stripe] payment_intent.succeeded",
        "--metric",
        "totals",
        "--start",
        "20240304",
        "--end",
        "20240310",
        *base,
    )
    assert seg.exit_code == 0, seg.output
    assert orjson.loads(seg.stdout)["data"]["series"] == [[1, 1, 1, 0, 0, 0, 0]]
    ret = _run(
        "query",
        "retention",
        "--start-event",
        "[Stripe] payment_intent.succeeded",
        "--interval",
        "1",
        "--start",
        "20240304",
        "--end",
        "20240306",
        *base,
    )
    assert [c["count"] for c in orjson.loads(ret.stdout)["data"]["series"][0]["combined"]] == [2, 2, 1, 0]
    cohort = _run(
        "query",
        "cohort",
        "--definition",
        '{"performed": {"event_type": "[Stripe] payment_intent.succeeded", "measure": {"op": ">=", "value": 2}}}',
        *base,
    )
    assert orjson.loads(cohort.stdout)["data"] == {"size": 1, "members": ["ann"]}
    human = _run(
        "query",
        "segmentation",
        "--event",
        "[Stripe] payment_intent.succeeded",
        "--project",
        "shop",
        "--start",
        "20240304",
        "--end",
        "20240306",
        "--data-dir",
        str(tmp_path),
    )
    assert "whole range" in human.stdout and "2024-03-04" in human.stdout
    bad = _run("query", "segmentation", "--event", "x", "--start", "2024", *base)
    assert bad.exit_code == 1 and "parameter 'start'" in bad.output
