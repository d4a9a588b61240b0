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
