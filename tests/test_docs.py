"""Docs stay in step with the code: every setting, CLI command and route is documented."""

from __future__ import annotations

from pathlib import Path

import typer.main

from revlens.api.app import ROUTES
from revlens.cli import app
from revlens.settings import Settings

ROOT = Path(__file__).resolve().parents[1]


def _read(name: str) -> str:
    return (ROOT / name).read_text()


def test_every_setting_is_in_the_configuration_doc() -> None:
    doc = _read("docs/configuration.md")
    for name, field in Settings.model_fields.items():
        assert f"`{name}`" in doc and f"`REVLENS_{name.upper()}`" in doc, name
        assert field.description and field.description in doc, name


def _commands(group: typer.Typer, prefix: str = "") -> list[str]:
    command = typer.main.get_command(group)
    names: list[str] = []
    for name, sub in command.commands.items():  # type: ignore[attr-defined]
        if hasattr(sub, "commands"):
            names += [f"{prefix}{name} {child}" for child in sub.commands]
        else:
            names.append(f"{prefix}{name}")
    return names


def test_every_cli_command_is_in_the_readme() -> None:
    readme = _read("README.md")
    for name in _commands(app):
        assert f"revlens {name}" in readme or name.split()[-1] in readme, name


def test_every_route_is_in_the_api_doc() -> None:
    doc = _read("docs/api.md")
    for route in ROUTES:
        path = route.path.split("{")[0]
        assert path in doc, route.path


def test_readme_starts_with_the_two_commands() -> None:
    readme = _read("README.md")
    block = readme.split("```bash", 1)[1].split("```", 1)[0]
    assert "revlens demo" in block and "pytest" in block
    assert "pytest" in _read(".ci/run")
