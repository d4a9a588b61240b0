"""HTML pages: sign-in and out, the project picker, and the shells of the dashboard pages.

Pages carry no numbers: their scripts fetch them from the query API, so a page and `curl` read
the same answers.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import quote

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from revlens.api.auth import authenticate
from revlens.errors import HTTPError
from revlens.normalize.events import SUPPORTED_TYPES, event_name
from revlens.web import sessions
from revlens.web.access import Viewer, form_fields, guarded, render, safe_next, signin_page, wants_html

# What the setup page tells people to pick in Stripe (docs/stripe-setup.md).
STRIPE_API_VERSION = "2024-06-20"
PROPERTY_HINTS = ("$revenue", "product", "description", "currency", "original_currency", "status", "amount")


async def home(request: Request) -> Response:
    store = request.app.state.runtime.store
    session = await run_in_threadpool(sessions.find, store, request)
    if session is None:
        if wants_html(request):
            return signin_page(request)
        raise HTTPError(401, "sign in first: this dashboard route needs a session (POST /login)")
    if not session.admin:
        assert session.pid is not None
        project = await run_in_threadpool(store.project_by_pid, session.pid)
        return RedirectResponse(f"/p/{quote(project.name)}", 303)
    projects = await run_in_threadpool(store.projects)
    return render("projects.html", projects=projects, csrf=session.csrf, project=None, admin=True, page="projects")


def _fail_login(request: Request, runtime: Any, message: str, next_path: str) -> Response:
    runtime.limiter.failed(request.client.host if request.client else "unknown")
    if wants_html(request):
        return signin_page(request, message, next_path=safe_next(next_path))
    raise HTTPError(401, message)


async def login(request: Request) -> Response:
    """POST /login: api_key + secret_key, or admin_token. Credentials first, then the form token."""
    runtime = request.app.state.runtime
    address = request.client.host if request.client else "unknown"
    if runtime.limiter.blocked(address):
        raise HTTPError(429, "too many failed sign-in attempts; retry in a minute")
    form = await form_fields(request)
    api_key, secret = str(form.get("api_key", "")).strip(), str(form.get("secret_key", "")).strip()
    admin_token = str(form.get("admin_token", "")).strip()
    pid: int | None = None
    admin = False
    if admin_token:
        admin = hmac.compare_digest(admin_token.encode(), runtime.admin_token.encode())
        if not admin:
            return _fail_login(request, runtime, "That admin token is not right.", form.get("next", "/"))
    else:
        project = await run_in_threadpool(authenticate, runtime.store, (api_key, secret) if api_key else None)
        if project is None:
            return _fail_login(
                request, runtime, "That API key and secret key do not match a project.", form.get("next", "/")
            )
        pid = project.pid
    supplied = str(form.get("login_token", ""))
    expected = request.cookies.get(sessions.LOGIN_COOKIE, "")
    if not expected or not hmac.compare_digest(supplied.encode(), expected.encode()):
        raise HTTPError(403, "the sign-in form expired or came from another site: reload it and sign in again")
    token, _ = await run_in_threadpool(sessions.create, runtime.store, pid, admin)
    response = RedirectResponse(safe_next(str(form.get("next", "/"))), 303)
    sessions.set_cookie(response, request, token)
    response.delete_cookie(sessions.LOGIN_COOKIE, path="/")
    return response


@guarded
async def logout(request: Request, viewer: Viewer) -> Response:
    await run_in_threadpool(sessions.delete, viewer.store, viewer.session)
    response = RedirectResponse("/", 303)
    sessions.clear_cookie(response)
    return response


def _page(viewer: Viewer, template: str, page: str, **context: Any) -> Response:
    project = viewer.need_project
    return render(
        template,
        project=project,
        csrf=viewer.session.csrf,
        admin=viewer.session.admin,
        page=page,
        **context,
    )


def _event_types(viewer: Viewer) -> list[str]:
    rows = viewer.store.execute(
        "SELECT DISTINCT event_type FROM events WHERE pid = ? ORDER BY 1", [viewer.need_project.pid]
    )
    found = [str(r[0]) for r in rows]
    return found or sorted(event_name(t) for t in SUPPORTED_TYPES)


@guarded
async def dashboard_page(request: Request, viewer: Viewer) -> Response:
    return _page(viewer, "dashboard.html", "dashboard", board_id=request.query_params.get("board", ""))


@guarded
async def builder_page(request: Request, viewer: Viewer) -> Response:
    events = await run_in_threadpool(_event_types, viewer)
    return _page(
        viewer,
        "builder.html",
        "builder",
        events=events,
        properties=PROPERTY_HINTS,
        board_id=request.query_params.get("board", ""),
        chart_id=request.query_params.get("chart", ""),
    )


@guarded
async def retention_page(request: Request, viewer: Viewer) -> Response:
    events = await run_in_threadpool(_event_types, viewer)
    return _page(viewer, "retention.html", "retention", events=events)


@guarded
async def cohorts_page(request: Request, viewer: Viewer) -> Response:
    events = await run_in_threadpool(_event_types, viewer)
    return _page(viewer, "cohorts.html", "cohorts", events=events, properties=PROPERTY_HINTS)


@guarded
async def setup_page(request: Request, viewer: Viewer) -> Response:
    endpoints = await run_in_threadpool(viewer.runtime.admin.list_endpoints, viewer.need_project.name)
    base = str(request.base_url).rstrip("/")
    return _page(
        viewer,
        "setup.html",
        "setup",
        endpoints=[{**e, "url": base + e["url_path"]} for e in endpoints],
        api_version=STRIPE_API_VERSION,
        stripe_events=sorted(SUPPORTED_TYPES),
    )
