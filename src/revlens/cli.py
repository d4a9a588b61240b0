"""The `revlens` command. Each command is a thin wrapper over an admin or library function.

Commands work on the data folder directly when no server runs; when `revlens serve` holds it, they
talk to that server's admin API instead (found through <data_dir>/server.json), with the same result.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import orjson
import typer
from pydantic import ValidationError
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
query_app = typer.Typer(help="Ask the analytics questions (the same engine as the HTTP API).", no_args_is_help=True)
app.add_typer(query_app, name="query")

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


def _validation_message(exc: ValidationError) -> str:
    """A settings error as one line per setting: which one, and what it must be."""
    return "; ".join(f"setting {'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors())


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
    allocator: Annotated[
        str | None, typer.Option(help="auto, jemalloc or system (default: REVLENS_ALLOCATOR, else auto).")
    ] = None,
) -> None:
    """Serve the webhook endpoints and the admin API."""
    from revlens import malloc

    try:
        settings = Settings.from_env(data_dir=data_dir, host=host, port=port, log_level=log_level, allocator=allocator)
    except ValidationError as exc:
        raise _fail(_validation_message(exc)) from None
    try:
        env = malloc.exec_env(settings.allocator, os.environ, malloc.find_jemalloc())
    except malloc.AllocatorError as exc:
        raise _fail(str(exc)) from None
    if env is not None:
        malloc.reexec(env)  # once, before any thread starts: the same command on jemalloc

    from revlens.server import run

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


def _range(start: str | None, end: str | None) -> tuple[str, str]:
    from datetime import date, timedelta

    today = date.today()
    return start or (today - timedelta(days=29)).strftime("%Y%m%d"), end or today.strftime("%Y%m%d")


def _run_query(data_dir: Path, kind: str, project: str, params: dict[str, str | None]) -> dict[str, Any]:
    with _errors(), open_admin(data_dir) as admin:
        return admin.query(kind, project, {k: v for k, v in params.items() if v is not None})


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.2f}"
    if isinstance(value, dict):
        return _fmt(value.get("value"))
    return str(value)


Project = Annotated[str, typer.Option(help="Project name or id.")]
Start = Annotated[str | None, typer.Option(help="First day, YYYYMMDD (default: 30 days ago).")]
End = Annotated[str | None, typer.Option(help="Last day, YYYYMMDD (default: today).")]


@query_app.command("segmentation")
def query_segmentation(
    project: Project,
    event: Annotated[str, typer.Option(help="Event type, e.g. '[Stripe] payment_intent.succeeded', or _all.")],
    metric: Annotated[
        str, typer.Option(help="uniques, totals, pct_dau, average, sums, value_avg, histogram, frequency, formula.")
    ] = "uniques",
    prop: Annotated[
        str | None, typer.Option("--property", help="Property that sums/value_avg/histogram measure.")
    ] = None,
    group_by: Annotated[list[str] | None, typer.Option(help="Group by a property (repeatable, at most two).")] = None,
    where: Annotated[list[str] | None, typer.Option(help="Filter 'key=value' (repeatable).")] = None,
    formula: Annotated[str | None, typer.Option(help="With --metric formula, e.g. 'TOTALS(A)/UNIQUES(A)'.")] = None,
    interval: Annotated[str, typer.Option(help="-3600000 hourly, 1 daily, 7 weekly, 30 monthly.")] = "1",
    start: Start = None,
    end: End = None,
    buckets: Annotated[str | None, typer.Option(help="Frequency/histogram bucket starts, e.g. '[1,2,5,10]'.")] = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: JsonFlag = False,
) -> None:
    """Event segmentation: a metric per day/week/month and over the range, optionally grouped."""
    groups = ([prop] if prop else []) + list(group_by or [])
    filters = []
    for item in where or []:
        key, sep, value = item.partition("=")
        if not sep:
            raise _fail(f"--where takes key=value, got {item!r}")
        filters.append({"subprop_type": "event", "subprop_key": key, "subprop_op": "is", "subprop_value": [value]})
    e = {"event_type": event, "filters": filters, "group_by": [{"type": "event", "value": g} for g in groups]}
    first, last = _range(start, end)
    result = _run_query(
        data_dir,
        "segmentation",
        project,
        {
            "e": json.dumps(e),
            "m": metric,
            "i": interval,
            "start": first,
            "end": last,
            "formula": formula,
            "buckets": buckets,
        },
    )
    if as_json:
        _print_json(result)
        return
    data = result["data"]
    labels = [str(label[1]) if isinstance(label, list) else event for label in data["seriesLabels"]]
    table = Table("", *labels, title=f"{metric} of {event}")
    for i, x in enumerate(data["xValues"]):
        table.add_row(x, *(_fmt(series[i]) for series in data["series"]))
    table.add_row("[bold]whole range[/bold]", *(_fmt(c[0]) for c in data["seriesCollapsed"]))
    console.print(table)


@query_app.command("retention")
def query_retention(
    project: Project,
    start_event: Annotated[str, typer.Option(help="Start event type, or _new / _active.")],
    return_event: Annotated[str, typer.Option(help="Return event type, or _all.")] = "_all",
    mode: Annotated[str, typer.Option(help="n-day (Return On), rolling (On or After), bracket.")] = "n-day",
    brackets: Annotated[str | None, typer.Option(help="With bracket: '[[0,1],[1,4]]' (upper bound exclusive).")] = None,
    interval: Annotated[str, typer.Option(help="1 day, 7 week, 30 month.")] = "7",
    calendar: Annotated[bool, typer.Option(help="Calendar intervals instead of rolling windows.")] = False,
    start: Start = None,
    end: End = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: JsonFlag = False,
) -> None:
    """Retention matrix: cohorts by first start event, share returning in each interval."""

    def spec(name: str) -> str:
        return name if name.startswith("_") else json.dumps({"event_type": name})

    first, last = _range(start, end)
    result = _run_query(
        data_dir,
        "retention",
        project,
        {
            "se": spec(start_event),
            "re": spec(return_event),
            "rm": mode,
            "rb": brackets,
            "i": interval,
            "calendar": "true" if calendar else "false",
            "start": first,
            "end": last,
        },
    )
    if as_json:
        _print_json(result)
        return
    for series in result["data"]["series"]:
        width = len(series["combined"]) - 1
        table = Table("cohort", "users", *(f"{i}" for i in range(width)), title=f"retention ({mode}, i={interval})")
        rows = [(d, series["values"][d]) for d in series["dates"]] + [("all", series["combined"])]
        for name, cells in rows:
            size = cells[0]["count"]
            shown = [
                ("" if c["outof"] == 0 else f"{100 * c['count'] / c['outof']:.0f}%") + ("*" if c["incomplete"] else "")
                for c in cells[1:]
            ]
            table.add_row(name, str(size), *shown)
        console.print(table)
        console.print("[dim]* incomplete: not every user of the cohort has reached that interval yet[/dim]")


@query_app.command("cohort")
def query_cohort(
    project: Project,
    definition: Annotated[str, typer.Option(help="A cohort condition as JSON, or @file.json (see docs/api.md).")],
    members: Annotated[bool, typer.Option(help="List the members.")] = False,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
    as_json: JsonFlag = False,
) -> None:
    """Compute a behavioural cohort: its size, and its members with --members."""
    text = Path(definition[1:]).read_text() if definition.startswith("@") else definition
    result = _run_query(data_dir, "cohort", project, {"definition": text})
    if as_json:
        _print_json(result)
        return
    console.print(f"{result['data']['size']} users")
    if members:
        for user in result["data"]["members"]:
            console.print(user)


@app.command()
def chart(
    project: Project,
    output: Annotated[Path, typer.Option("-o", "--output", help="File to write: .png or .svg.")],
    name: Annotated[
        str | None, typer.Option("--chart", help="A starter chart by id or title, e.g. revenue, frequency.")
    ] = None,
    definition: Annotated[str | None, typer.Option(help="A dashboard chart's JSON definition, or @file.json.")] = None,
    data_dir: DataDir = Path(DEFAULT_DATA_DIR),
) -> None:
    """Render a dashboard chart to PNG or SVG (the same spec the dashboard draws)."""
    from revlens.web.render import ChartError, pick_chart, render_chart

    try:
        picked = pick_chart(name, definition)
        written = render_chart(picked, lambda kind, params: _run_query(data_dir, kind, project, params)["data"], output)
    except ChartError as exc:
        raise _fail(str(exc)) from None
    console.print(f"wrote {written}")


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    app()


if __name__ == "__main__":
    main()
