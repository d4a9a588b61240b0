"""The ASGI application: `create_app(settings)` builds it; its lifespan opens and closes everything.

Requests under `/webhooks/stripe/` go straight to the webhook receiver (the hot path skips the
router); everything else goes through Starlette routes. No state exists at import time.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets as token
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from revlens.admin import AdminError, LocalAdmin, run_query
from revlens.api import openapi
from revlens.api import queries as query_routes
from revlens.api.bodies import json_object
from revlens.api.limits import FailureLimiter
from revlens.api.middleware import RequestContext
from revlens.errors import HTTPError, error_body
from revlens.ingest.committer import GroupCommitter
from revlens.ingest.loader import Counters, Loader
from revlens.ingest.log import DeliveryLog
from revlens.money import normalize_currency
from revlens.observability import Metrics
from revlens.settings import Settings
from revlens.store.duckdb_store import DuckDBStore
from revlens.web import routes as web_routes
from revlens.webhook.receiver import PREFIX, WebhookReceiver

logger = logging.getLogger("revlens.app")


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, default=str), status_code=status, media_type="application/json")


def load_admin_token(settings: Settings) -> str:
    """The admin token: from settings, else <data_dir>/admin_token, created (0600) on first start."""
    if settings.admin_token:
        return settings.admin_token
    path = settings.admin_token_path
    if path.exists():
        return path.read_text().strip()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    value = token.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(value + "\n")
    return value


@dataclass
class Runtime:
    """Everything the lifespan opens, reachable from routes as `request.app.state.runtime`."""

    settings: Settings
    store: DuckDBStore
    log: DeliveryLog
    loader: Loader
    receiver: WebhookReceiver
    admin: LocalAdmin
    admin_token: str
    metrics: Metrics = field(default_factory=Metrics)
    limiter: FailureLimiter = field(default_factory=FailureLimiter)


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def check_not_blocked(request: Request, runtime: Runtime) -> None:
    if runtime.limiter.blocked(client_address(request)):
        raise HTTPError(429, "too many failed authentication attempts; retry in a minute")


def _runtime(request: Request) -> Runtime:
    runtime: Runtime = request.app.state.runtime
    return runtime


def require_admin(request: Request) -> Runtime:
    runtime = _runtime(request)
    check_not_blocked(request, runtime)
    header = request.headers.get("authorization", "")
    scheme, _, supplied = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(supplied.encode(), runtime.admin_token.encode()):
        runtime.limiter.failed(client_address(request))
        raise HTTPError(401, "admin token required (Authorization: Bearer <token from <data_dir>/admin_token>)")
    return runtime


async def _json_body(request: Request) -> dict[str, Any]:
    return await json_object(request)


def _req(data: dict[str, Any], key: str, default: str | None = None) -> str:
    """A required string field of a JSON body."""
    value = _str(data, key, default)
    assert value is not None
    return value


def _str(data: dict[str, Any], key: str, default: str | None = None, required: bool = True) -> str | None:
    value = data.get(key, default)
    if value is None:
        if required:
            raise HTTPError(400, f"'{key}' is required")
        return None
    if not isinstance(value, str):
        raise HTTPError(400, f"'{key}' must be a string")
    return value


async def health(request: Request) -> Response:
    """200 while the server can take and load deliveries; 503 when it needs a restart."""
    runtime = _runtime(request)
    if runtime.loader.fatal is not None:
        body = error_body(503, "the store stopped accepting writes (restart revlens): " + runtime.loader.fatal)
        return json_response(body, 503)
    return json_response({"ok": True})


async def openapi_document(request: Request) -> Response:
    return json_response(openapi.schema())


async def metrics(request: Request) -> Response:
    """Prometheus metrics (admin token: scrape with `authorization: {credentials: <token>}`)."""
    runtime = require_admin(request)
    return Response(runtime.metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")


async def status(request: Request) -> Response:
    runtime = require_admin(request)
    return json_response(await run_in_threadpool(runtime.admin.status, request.query_params.get("project")))


async def projects(request: Request) -> Response:
    runtime = require_admin(request)
    if request.method == "GET":
        return json_response({"projects": await run_in_threadpool(runtime.admin.list_projects)})
    data = await _json_body(request)
    name = _req(data, "name")
    currency = _req(data, "currency", "USD")
    timezone = _req(data, "timezone", "UTC")
    created = await run_in_threadpool(runtime.admin.create_project, name, currency, timezone)
    return json_response(created, 201)


async def endpoints(request: Request) -> Response:
    runtime = require_admin(request)
    if request.method == "GET":
        found = await run_in_threadpool(runtime.admin.list_endpoints, request.query_params.get("project"))
        return json_response({"endpoints": found})
    data = await _json_body(request)
    project = _req(data, "project")
    secrets = data.get("signing_secrets")
    if secrets is None and isinstance(data.get("signing_secret"), str):
        secrets = [data["signing_secret"]]
    if not isinstance(secrets, list) or not all(isinstance(s, str) for s in secrets):
        raise HTTPError(400, "'signing_secrets' must be a list of whsec_... strings")
    account = _str(data, "account", required=False)
    description = _str(data, "description", required=False)
    created = await run_in_threadpool(runtime.admin.add_endpoint, project, secrets, account, description)
    return json_response(created, 201)


async def delivery(request: Request) -> Response:
    runtime = require_admin(request)
    found = await run_in_threadpool(runtime.admin.delivery, request.path_params["event_id"])
    if found is None:
        raise HTTPError(404, "no stored delivery with that event id (yet)")
    return json_response(found)


async def reprocess(request: Request) -> Response:
    runtime = require_admin(request)
    return json_response(await run_in_threadpool(runtime.admin.reprocess))


async def project_update(request: Request) -> Response:
    runtime = require_admin(request)
    data = await _json_body(request)
    currency = _str(data, "currency", required=False)
    timezone = _str(data, "timezone", required=False)
    updated = await run_in_threadpool(runtime.admin.update_project, request.path_params["name"], currency, timezone)
    return json_response(updated)


async def rates(request: Request) -> Response:
    """Set daily exchange rates: {"base": "EUR", "rates": [{"date", "currency", "rate"}, ...]}."""
    runtime = require_admin(request)
    data = await _json_body(request)
    base = _req(data, "base")
    items = data.get("rates")
    if not isinstance(items, list):
        raise HTTPError(400, "'rates' must be a list of {date, currency, rate}")
    rows: list[tuple[date, str, Decimal]] = []
    try:
        for i, item in enumerate(items):
            if not isinstance(item, dict):
                raise HTTPError(400, f"rates[{i}] must be an object")
            day = date.fromisoformat(str(item.get("date")))
            currency = normalize_currency(item.get("currency"))  # type: ignore[arg-type]
            rate = Decimal(str(item.get("rate")))
            if not rate.is_finite() or rate <= 0:
                raise HTTPError(400, f"rates[{i}].rate must be a positive number")
            rows.append((day, currency, rate))
        code = normalize_currency(base)
    except (ValueError, ArithmeticError) as exc:
        raise HTTPError(400, f"invalid rate: {exc}") from None
    source = _str(data, "source", "api") or "api"
    return json_response(await run_in_threadpool(runtime.admin.import_rates, code, rows, source))


async def query(request: Request) -> Response:
    """Run a query for any project with the admin token (what the CLI uses while a server runs)."""
    runtime = require_admin(request)
    data = await _json_body(request)
    params = data.get("params") or {}
    if not isinstance(params, dict) or not all(isinstance(v, str) for v in params.values()):
        raise HTTPError(400, "'params' must be an object of strings")
    result = await run_in_threadpool(run_query, runtime.store, _req(data, "kind"), _req(data, "project"), params)
    return query_routes.json_response(result)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPError)
    response = json_response(error_body(exc.status, exc.message), exc.status)
    if exc.status == 401 and request.url.path.startswith("/api/"):
        response.headers["WWW-Authenticate"] = 'Basic realm="revlens"'
    return response


async def _admin_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, AdminError)
    return json_response(error_body(exc.status, str(exc)), exc.status)


async def _starlette_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    return json_response(error_body(exc.status_code, str(exc.detail)), exc.status_code)


async def _server_error(request: Request, exc: Exception) -> Response:
    logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return json_response(error_body(500, "internal error"), 500)


ROUTES = [
    Route("/-/health", health),
    Route("/-/openapi.json", openapi_document),
    Route("/metrics", metrics),
    Route("/-/status", status),
    Route("/-/projects", projects, methods=["GET", "POST"]),
    Route("/-/endpoints", endpoints, methods=["GET", "POST"]),
    Route("/-/deliveries/{event_id:str}", delivery),
    Route("/-/projects/{name:str}", project_update, methods=["PATCH"]),
    Route("/-/reprocess", reprocess, methods=["POST"]),
    Route("/-/rates", rates, methods=["POST"]),
    Route("/-/query", query, methods=["POST"]),
    *query_routes.ROUTES,
    *web_routes.ROUTES,
]


class RevlensApp:
    """The ASGI entry point: the webhook fast path, then the Starlette app."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.metrics = Metrics()
        self.runtime: Runtime | None = None
        self.web = Starlette(
            routes=ROUTES,
            lifespan=self._lifespan,
            exception_handlers={
                HTTPError: _http_error,
                AdminError: _admin_error,
                HTTPException: _starlette_error,
                Exception: _server_error,
            },
        )
        self.entry = RequestContext(self.web, self.metrics)

    @contextlib.asynccontextmanager
    async def _lifespan(self, app: Starlette) -> AsyncIterator[None]:
        runtime = open_runtime(self.settings, self.metrics)
        self.runtime = runtime
        app.state.runtime = runtime
        try:
            yield
        finally:
            close_runtime(runtime)
            self.runtime = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["path"].startswith(PREFIX) and self.runtime is not None:
            await self.runtime.receiver(scope, receive, send)
            return
        await self.entry(scope, receive, send)


def open_runtime(settings: Settings, metrics: Metrics | None = None) -> Runtime:
    """Open the store and the log, start the loader, build the receiver and admin."""
    metrics = metrics or Metrics()
    store = DuckDBStore(settings.data_dir, memory_limit=settings.store_memory_limit)
    log = DeliveryLog(settings.log_dir)
    try:
        log.open()
    except Exception:
        store.close()
        raise
    counters = Counters()
    loader = Loader(store, settings.log_dir, counters, metrics, durable_end=lambda: log.end)
    committer = GroupCommitter(log, loader.submit, metrics)
    metrics.watch_queue(loader.backlog)
    metrics.watch_store_memory(store.memory_usage)
    endpoint_secrets: dict[str, tuple[str, ...]] = {}
    receiver = WebhookReceiver(
        endpoint_secrets, committer, counters, settings.max_body_bytes, settings.signature_tolerance, metrics
    )

    def refresh_endpoints() -> None:
        # Swap in a new mapping: the event loop never sees a half-updated one.
        receiver.endpoints = {e.id: e.secrets for e in store.endpoints()}

    refresh_endpoints()
    admin = LocalAdmin(store, settings.log_dir, loader, refresh_endpoints)
    loader.start()
    admin_token = load_admin_token(settings)
    settings.server_file.write_text(
        orjson.dumps({"pid": os.getpid(), "url": f"http://{_url_host(settings.host)}:{settings.port}"}).decode()
    )
    limiter = FailureLimiter(settings.auth_failures_per_minute)
    return Runtime(settings, store, log, loader, receiver, admin, admin_token, metrics, limiter)


def _url_host(host: str) -> str:
    if host in ("0.0.0.0", ""):
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host


def close_runtime(runtime: Runtime) -> None:
    with contextlib.suppress(OSError):
        runtime.settings.server_file.unlink()
    runtime.loader.stop()
    runtime.log.close()
    runtime.store.close()


def create_app(settings: Settings) -> RevlensApp:
    return RevlensApp(settings)
