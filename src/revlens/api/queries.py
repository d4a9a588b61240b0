"""The query API: Amplitude-compatible Dashboard REST routes and the native cohort API.

Every route authenticates with the project's keys (HTTP Basic), parses its parameters into a typed
query (400 naming the parameter when they are wrong), and runs it off the event loop.
"""

from __future__ import annotations

import csv
import hmac
import io
import time
from typing import Any

import orjson
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from revlens.api.auth import require_project as require_project_keys
from revlens.errors import HTTPError
from revlens.query import cohorts as cohort_queries
from revlens.query import ltv, params, retention, segmentation
from revlens.query.cohort_model import CohortDefinition, CohortNode
from revlens.query.context import QueryContext
from revlens.query.models import QueryError
from revlens.store.duckdb_store import DuckDBStore, StoreError
from revlens.store.models import Project
from revlens.web.sessions import session_project


def _default(value: Any) -> Any:
    from decimal import Decimal

    if isinstance(value, Decimal):
        return orjson.Fragment(format(value.normalize(), "f").encode())
    return str(value)


def json_response(data: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(data, default=_default), status_code=status, media_type="application/json")


def _store(request: Request) -> DuckDBStore:
    store: DuckDBStore = request.app.state.runtime.store
    return store


def require_project(request: Request, store: DuckDBStore) -> Project:
    """The project's own keys, the admin token with `?project=` (the CLI and admins), or a dashboard
    session cookie (with its CSRF token on writes)."""
    runtime = request.app.state.runtime
    if runtime.limiter.blocked(request.client.host if request.client else "unknown"):
        raise HTTPError(429, "too many failed authentication attempts; retry in a minute")
    found = session_project(request, store)
    if found is not None:
        return found
    header = request.headers.get("authorization", "")
    if header.lower().startswith("bearer "):
        supplied = header.split(" ", 1)[1].strip().encode()
        name = request.query_params.get("project")
        if name and hmac.compare_digest(supplied, runtime.admin_token.encode()):
            try:
                return store.project(name)
            except StoreError:
                raise HTTPError(404, "no such project") from None
    try:
        return require_project_keys(request, store)
    except HTTPError:
        runtime.limiter.failed(request.client.host if request.client else "unknown")
        raise


def context(store: DuckDBStore, project: Project) -> QueryContext:
    def load(cohort_id: int) -> CohortNode:
        found = store.cohorts(project.pid, cohort_id)
        if not found:
            raise QueryError("s", f"no cohort {cohort_id}")
        return CohortNode.model_validate(orjson.loads(found[0]["definition"]))

    return QueryContext(store=store, pid=project.pid, timezone=project.timezone, cohorts=load)


async def _run(request: Request, parse: Any, compute: Any) -> Response:
    store = _store(request)
    project = require_project(request, store)
    try:
        query = parse(request.query_params)

        def work() -> Any:
            started = time.perf_counter()
            try:
                return compute(query, context(store, project))
            finally:
                kind = compute.__module__.rsplit(".", 1)[-1]
                request.app.state.runtime.metrics.query.labels(kind).observe(time.perf_counter() - started)

        data = await run_in_threadpool(work)
    except QueryError as exc:
        raise HTTPError(400, str(exc)) from None
    except ValueError as exc:  # a value the compiler refused (e.g. a filter that needs a number)
        raise HTTPError(400, f"invalid query: {exc}") from None
    return json_response({"data": data})


async def segmentation_route(request: Request) -> Response:
    return await _run(request, params.segmentation, segmentation.run)


async def retention_route(request: Request) -> Response:
    return await _run(request, params.retention, retention.run)


async def ltv_route(request: Request) -> Response:
    return await _run(request, params.ltv, ltv.run)


def _cohort_payload(row: dict[str, Any], project: Project) -> dict[str, Any]:
    node = CohortNode.model_validate(orjson.loads(row["definition"]))
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "definition": node.model_dump(by_alias=True, exclude_none=True, mode="json"),
        "size": row["size"],
        "created_at": row["created_at"].isoformat(),
        "updated_at": row["updated_at"].isoformat(),
        "computed_at": row["computed_at"].isoformat() if row["computed_at"] else None,
        "project": project.name,
    }


async def amplitude_cohorts(request: Request) -> Response:
    """`GET /api/3/cohorts` in Amplitude's shape."""
    store = _store(request)
    project = require_project(request, store)
    rows = await run_in_threadpool(store.cohorts, project.pid)
    out = []
    for row in rows:
        node = CohortNode.model_validate(orjson.loads(row["definition"]))
        millis = int(row["updated_at"].timestamp() * 1000)
        out.append(
            {
                "appId": project.id,
                "archived": False,
                "definition": cohort_queries.amplitude_definition(node),
                "description": row["description"] or "",
                "id": str(row["id"]),
                "name": row["name"],
                "owners": [],
                "viewers": [],
                "published": True,
                "size": row["size"],
                "type": "behavioral",
                "lastMod": millis,
                "createdAt": int(row["created_at"].timestamp() * 1000),
                "lastComputed": int(row["computed_at"].timestamp() * 1000) if row["computed_at"] else None,
                "hidden": False,
                "chart_id": None,
                "edit_id": None,
                "is_predictive": False,
                "is_official_content": False,
            }
        )
    return json_response({"cohorts": out})


async def _definition(request: Request) -> CohortDefinition:
    raw = await request.body()
    if len(raw) > 256 * 1024:
        raise HTTPError(413, "body too large")
    try:
        return CohortDefinition.model_validate(orjson.loads(raw or b"null"))
    except orjson.JSONDecodeError:
        raise HTTPError(400, "body is not valid JSON") from None
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise HTTPError(400, f"invalid cohort definition at '{where}': {first['msg']}") from None


async def cohorts_route(request: Request) -> Response:
    store = _store(request)
    project = require_project(request, store)
    if request.method == "GET":
        rows = await run_in_threadpool(store.cohorts, project.pid)
        return json_response({"cohorts": [_cohort_payload(r, project) for r in rows]})
    definition = await _definition(request)
    cohort_id = await run_in_threadpool(_save_and_size, store, project, definition, None)
    return json_response(_cohort_payload(store.cohorts(project.pid, cohort_id)[0], project), 201)


def _save_and_size(store: DuckDBStore, project: Project, definition: CohortDefinition, cohort_id: int | None) -> int:
    text = orjson.dumps(definition.definition.model_dump(by_alias=True, exclude_none=True, mode="json")).decode()
    size = cohort_queries.size(definition.definition, context(store, project))
    saved = store.save_cohort(project.pid, definition.name, definition.description, text, cohort_id)
    store.set_cohort_size(project.pid, saved, size)
    return saved


def _cohort_id(request: Request) -> int:
    try:
        return int(request.path_params["cohort_id"])
    except ValueError:
        raise HTTPError(404, "no such cohort") from None


async def _saved_cohort(request: Request) -> tuple[DuckDBStore, Project, int, dict[str, Any]]:
    """The store, the caller's project, and the saved cohort the path names (404 if not theirs)."""
    store = _store(request)
    project = require_project(request, store)
    cohort_id = _cohort_id(request)
    found = await run_in_threadpool(store.cohorts, project.pid, cohort_id)
    if not found:
        raise HTTPError(404, "no such cohort")
    return store, project, cohort_id, found[0]


async def cohort_route(request: Request) -> Response:
    store, project, cohort_id, row = await _saved_cohort(request)
    if request.method == "DELETE":
        await run_in_threadpool(store.delete_cohort, project.pid, cohort_id)
        return json_response({"ok": True, "deleted": cohort_id})
    if request.method == "PUT":
        definition = await _definition(request)
        await run_in_threadpool(_save_and_size, store, project, definition, cohort_id)
    else:
        node = CohortNode.model_validate(orjson.loads(row["definition"]))
        size = await run_in_threadpool(cohort_queries.size, node, context(store, project))
        await run_in_threadpool(store.set_cohort_size, project.pid, cohort_id, size)
    return json_response(_cohort_payload(store.cohorts(project.pid, cohort_id)[0], project))


async def cohort_members_route(request: Request) -> Response:
    store, project, cohort_id, row = await _saved_cohort(request)
    node = CohortNode.model_validate(orjson.loads(row["definition"]))
    rows = await run_in_threadpool(cohort_queries.members, node, context(store, project))
    if request.query_params.get("format", "json") == "csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        writer.writerow(["user_id"])
        writer.writerows([[user_id] for _, user_id in rows])
        return Response(
            buffer.getvalue(),
            media_type="text/csv",
            headers={"Content-Disposition": f'attachment; filename="cohort-{cohort_id}.csv"'},
        )
    return json_response({"id": cohort_id, "size": len(rows), "members": [user_id for _, user_id in rows]})


ROUTES = [
    Route("/api/2/events/segmentation", segmentation_route),
    Route("/api/2/retention", retention_route),
    Route("/api/2/revenue/ltv", ltv_route),
    Route("/api/3/cohorts", amplitude_cohorts),
    Route("/api/cohorts", cohorts_route, methods=["GET", "POST"]),
    Route("/api/cohorts/{cohort_id}", cohort_route, methods=["GET", "PUT", "DELETE"]),
    Route("/api/cohorts/{cohort_id}/members", cohort_members_route),
]
