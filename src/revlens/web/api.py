"""The dashboard's own JSON routes: saved dashboards, chart previews and ingestion status.

Numbers never come from here: each chart comes with the query-API calls (`requests`) the browser
makes and the Vega-Lite spec it draws the answers with.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from revlens.api.bodies import json_object
from revlens.api.queries import json_response
from revlens.errors import HTTPError
from revlens.web import boards
from revlens.web.access import Viewer, guarded
from revlens.web.charts import Chart, requests
from revlens.web.specs import vegalite_spec

MAX_BODY = 256 * 1024


def chart_payload(chart: Chart, today: date) -> dict[str, Any]:
    """A chart as the browser needs it: its definition, the API calls to make, the spec to draw."""
    return {
        "chart": chart.model_dump(mode="json", exclude_none=True),
        "requests": requests(chart, today),
        "spec": vegalite_spec(chart),
    }


def board_payload(board: boards.Board) -> dict[str, Any]:
    today = date.today()
    return {**board.payload(), "items": [chart_payload(c, today) for c in board.charts]}


async def _body(request: Request) -> dict[str, Any]:
    return await json_object(request, MAX_BODY)


def _name(data: dict[str, Any], default: str | None = None) -> str:
    name = data.get("name", default)
    if not isinstance(name, str) or not name.strip() or len(name) > 120:
        raise HTTPError(400, "'name' must be 1-120 characters")
    return name.strip()


def _board_id(request: Request) -> int:
    try:
        return int(request.path_params["board_id"])
    except ValueError:
        raise HTTPError(404, "no such dashboard") from None


@guarded
async def boards_route(request: Request, viewer: Viewer) -> Response:
    """GET: the project's dashboards (the starter one is made on first use). POST: a new one."""
    project = viewer.need_project
    if request.method == "POST":
        data = await _body(request)
        charts = boards.parse_charts(data.get("charts", []))
        await run_in_threadpool(boards.boards, viewer.store, project)  # the starter one stays first
        board_id = await run_in_threadpool(boards.save, viewer.store, project.pid, _name(data), charts)
        made = await run_in_threadpool(boards.board, viewer.store, project, board_id)
        return json_response(board_payload(made), 201)
    found = await run_in_threadpool(boards.boards, viewer.store, project)
    return json_response({"dashboards": [{"id": b.id, "name": b.name, "charts": len(b.charts)} for b in found]})


@guarded
async def board_route(request: Request, viewer: Viewer) -> Response:
    """GET one dashboard with its charts; PUT its name and charts; DELETE it."""
    project = viewer.need_project
    board_id = _board_id(request)
    current = await run_in_threadpool(boards.board, viewer.store, project, board_id)
    if request.method == "DELETE":
        await run_in_threadpool(boards.delete, viewer.store, project.pid, board_id)
        return json_response({"ok": True, "deleted": board_id})
    if request.method == "PUT":
        data = await _body(request)
        charts = boards.parse_charts(data["charts"]) if "charts" in data else current.charts
        name = _name(data, current.name)
        await run_in_threadpool(boards.save, viewer.store, project.pid, name, charts, board_id)
        current = await run_in_threadpool(boards.board, viewer.store, project, board_id)
    return json_response(board_payload(current))


@guarded
async def preview_route(request: Request, viewer: Viewer) -> Response:
    """POST a chart definition: the API calls and spec for it (the chart builder's preview)."""
    data = await _body(request)
    chart = boards.parse_charts([data.get("chart")])[0]
    return json_response(chart_payload(chart, date.today()))


@guarded
async def status_route(request: Request, viewer: Viewer) -> Response:
    """Ingestion figures of the project's endpoints (the setup page polls this)."""
    found = await run_in_threadpool(viewer.runtime.admin.status, viewer.need_project.name)
    return json_response({"endpoints": found["endpoints"]})
