"""The `revlens` command. Each command is a thin wrapper over an admin or library function.

Commands work on the data folder directly when no server runs; when `revlens serve` holds it, they
talk to that server's admin API instead (found through <data_dir>/server.json), with the same result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from rich.console import Console
from rich.table import Table

from revlens.admin import Admin, AdminError, LocalAdmin, RemoteAdmin
from revlens.settings import DEFAULT_DATA_DIR, ENV_DATA_DIR, Settings
from revlens.store.duckdb_store import DuckDBStore, StoreError, StoreLockedError

app = typer.Typer(help="Self-hosted revenue analytics for Stripe.", no_args_is_help=True, add_completion=False)
projects_app = typer.Typer(help="Create and list projects.", no_args_is_help=True)
stripe_app = typer.Typer(help="Connect Stripe accounts (webhook endpoints).", no_args_is_help=True)
app.add_typer(projects_app, name="projects")
rates_app = typer.Typer(help="Exchange rates for converting revenue to each project's currency.", no_args_is_help=True)
app.add_typer(stripe_app, name="stripe")
app.add_typer(rates_app, name="rates")

console = Console()
err = Console(stderr=True)

DataDir = Annotated[
    Path,
    typer.Option("--data-dir", envvar=ENV_DATA_DIR, help="Data folder (database and delivery log)."),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]


def _print_json(data: Any) -> None:
    sys.stdout.write(orjson.dumps(data, option=orjson.OPT_INDENT_2, default=str).decode() + "\n")


@contextlib.contextmanager
def open_admin(data_dir: Path) -> Iterator[Admin]:
    """Admin on the data folder, or on the server that holds it."""
    settings = Settings.from_env(data_dir=data_dir)
    try:
        store = DuckDBStore(settings.data_dir)
    except StoreLockedError:
        info = _server_info(settings)
        if info is None:
            raise
        yield RemoteAdmin(info[0], info[1])
        return
    try:
        yield LocalAdmin(store, settings.log_dir)
    finally:
        store.close()


def _server_info(settings: Settings) -> tuple[str, str] | None:
    try:
        server = json.loads(settings.server_file.read_text())
        token = settings.admin_token or settings.admin_token_path.read_text().strip()
    except (OSError, ValueError):
        return None
    return str(server["url"]), token


def _fail(message: str) -> typer.Exit:
    err.print(f"[red]error:[/red] {message}")
    return typer.Exit(1)


@contextlib.contextmanager
def _errors() -> Iterator[None]:
    try:
        yield
    except (AdminError, StoreError) as exc:
        raise _fail(str(exc)) from None


@projects_app.command("create")
def projects_create(
    name: Annotated[str, typer.Argument(help="Project name, e.g. acme.")],
    currency: Annotated[str, typer.Option(help="Reporting currency (ISO 4217).")] = "USD",
    timezone: Annotated[str, typer.Option(help="IANA time zone for days and weeks.")] = "UTC",
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: JsonFlag = False,
) -> None:
    """Create a project and print its id, API key and secret key (shown once)."""
    with _errors(), open_admin(data_dir) as admin:
        created = admin.create_project(name, currency, timezone)
    if as_json:
        _print_json(created)
        return
    console.print(f"Created project [bold]{created['name']}[/bold] ({created['currency']}, {created['timezone']})")
    console.print(f"  id:         {created['id']}")
    console.print(f"  api key:    {created['api_key']}")
    console.print(f"  secret key: {created['secret_key']}  [dim](shown once; keep it safe)[/dim]")


@projects_app.command("set")
def projects_set(
    name: Annotated[str, typer.Argument(help="Project name or id.")],
    currency: Annotated[str | None, typer.Option(help="New reporting currency.")] = None,
    timezone: Annotated[str | None, typer.Option(help="New time zone.")] = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: JsonFlag = False,
) -> None:
    """Change a project's reporting currency or time zone (then run `revlens reprocess`)."""
    with _errors(), open_admin(data_dir) as admin:
        updated = admin.update_project(name, currency, timezone)
    if as_json:
        _print_json(updated)
        return
    console.print(f"Project {updated['name']}: {updated['currency']}, {updated['timezone']}. {updated['note']}.")


@projects_app.command("list")
def projects_list(data_dir: DataDir = Path(DEFAULT_DATA_DIR), as_json: JsonFlag = False) -> None:
    """List projects."""
    with _errors(), open_admin(data_dir) as admin:
        found = admin.list_projects()
    if as_json:
        _print_json(found)
        return
    table = Table("name", "id", "currency", "timezone", "api key")
    for p in found:
        table.add_row(p["name"], p["id"], p["currency"], p["timezone"], p["api_key"])
    console.print(table)


@stripe_app.command("add-endpoint")
def stripe_add_endpoint(
    project: Annotated[str, typer.Option(help="Project name or id.")],
    signing_secret: Annotated[
        list[str], typer.Option(help="The endpoint's whsec_ signing secret (repeat while rolling secrets).")
    ],
    account: Annotated[str | None, typer.Option(help="Stripe account id (acct_...), for your records.")] = None,
    description: Annotated[str | None, typer.Option(help="A note, e.g. 'EU account'.")] = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: JsonFlag = False,
) -> None:
    """Register one Stripe account's webhook endpoint and print its URL path and the Stripe setup steps."""
    with _errors(), open_admin(data_dir) as admin:
        created = admin.add_endpoint(project, signing_secret, account, description)
    if as_json:
        _print_json({"id": created["id"], "project": created["project"], "url_path": created["url_path"]})
        return
    console.print(f"Endpoint [bold]{created['id']}[/bold] for project {created['project']}")
    console.print(f"  URL path: [bold]{created['url_path']}[/bold]")
    console.print("Set it up in Stripe:")
    for i, step in enumerate(created.get("setup", []), 1):
        console.print(f"  {i}. {step}")


@stripe_app.command("endpoints")
def stripe_endpoints(
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: JsonFlag = False,
) -> None:
    """List webhook endpoints."""
    with _errors(), open_admin(data_dir) as admin:
        found = admin.list_endpoints(project)
    if as_json:
        _print_json(found)
        return
    table = Table("id", "project", "url path", "account", "secrets")
    for e in found:
        table.add_row(e["id"], e["project"], e["url_path"], e["account"] or "", str(e["signing_secrets"]))
    console.print(table)


@app.command()
def status(
    project: Annotated[str | None, typer.Option(help="Only this project.")] = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: JsonFlag = False,
) -> None:
    """Show per-endpoint ingestion figures."""
    with _errors(), open_admin(data_dir) as admin:
        result = admin.status(project)
    if as_json:
        _print_json(result)
        return
    table = Table(
        "project",
        "endpoint",
        "received",
        "stored",
        "duplicates",
        "ignored",
        "rejected sig.",
        "parked",
        "failed",
        "no fx rate",
        "last event",
    )
    for e in result["endpoints"]:
        table.add_row(
            e["project"],
            e["endpoint"],
            *(
                str(e[k])
                for k in (
                    "received",
                    "stored",
                    "duplicates",
                    "ignored",
                    "rejected_signatures",
                    "parked",
                    "failed",
                    "fx_missing",
                )
            ),
            e["last_event_at"] or "-",
        )
    console.print(table)


@app.command()
def reprocess(data_dir: DataDir = Path(DEFAULT_DATA_DIR), as_json: JsonFlag = False) -> None:
    """Rebuild all analytics events from the raw deliveries (after a rule, rate or identity change)."""
    with _errors(), open_admin(data_dir) as admin:
        result = admin.reprocess()
    if as_json:
        _print_json(result)
        return
    console.print(
        f"Reprocessed {result['records']} deliveries: {result['stored']} events stored, "
        f"{result['duplicates']} duplicates, {result['parked']} parked, {result['failed']} failed."
    )


def _import_rates(data_dir: Path, data: bytes, base: str | None, source: str, as_json: bool) -> None:
    from revlens.rates import RatesFileError, parse

    try:
        code, rows = parse(data, base)
    except RatesFileError as exc:
        raise _fail(str(exc)) from None
    with _errors(), open_admin(data_dir) as admin:
        result = admin.import_rates(code, rows, source)
    if as_json:
        _print_json(result)
        return
    console.print(
        f"Imported {result['rates']} rates against {result['base']} for {len(result['currencies'])} currencies "
        f"({result['first_day']} to {result['last_day']}); re-converted {result['reconverted']['events']} events."
    )


@rates_app.command("import")
def rates_import(
    file: Annotated[Path, typer.Argument(help="ECB history CSV/zip, or a date,currency,rate CSV.", exists=True)],
    base: Annotated[
        str | None, typer.Option(help="Base currency of a plain CSV (rates are per one base unit).")
    ] = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: JsonFlag = False,
) -> None:
    """Import daily exchange rates from a file."""
    _import_rates(data_dir, file.read_bytes(), base, f"file:{file.name}", as_json)


@rates_app.command("fetch")
def rates_fetch(
    url: Annotated[str | None, typer.Option(help="Where to download from (default: the ECB history).")] = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: JsonFlag = False,
) -> None:
    """Download the ECB's published rate history and import it (needs internet access)."""
    from revlens.rates import ECB_HISTORY_URL, RatesFileError, fetch

    source = url or ECB_HISTORY_URL
    try:
        data = fetch(source)
    except RatesFileError as exc:
        raise _fail(str(exc)) from None
    _import_rates(data_dir, data, None, source, as_json)


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    log_level: Annotated[str, typer.Option(help="debug, info, warning or error.")] = "info",
) -> None:
    """Serve the webhook endpoints and the admin API."""
    from revlens.server import run

    settings = Settings.from_env(data_dir=data_dir, host=host, port=port, log_level=log_level)
    try:
        run(settings)
    except StoreLockedError as exc:
        raise _fail(str(exc)) from None


@app.command()
def demo(
    events: Annotated[int, typer.Option(help="How many Stripe events to generate and send.")] = 2000,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    serve_after: Annotated[bool, typer.Option("--serve/--no-serve", help="Keep serving after sending.")] = True,
    seed: Annotated[int, typer.Option(help="Random seed of the generated history.")] = 7,
) -> None:
    """Create a demo project, send realistic signed Stripe deliveries through the webhook path, then serve."""
    from revlens.demo.runner import run_demo

    settings = Settings.from_env(data_dir=data_dir, host=host, port=port)
    try:
        run_demo(settings, events=events, seed=seed, serve_after=serve_after, console=console)
    except (AdminError, StoreError) as exc:
        raise _fail(str(exc)) from None


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
