"""Who is asking: every dashboard route starts here, before it reads anything else.

Without a session, a browser (Accept: text/html) gets 401 with the sign-in form; any other client
gets the API's JSON error. With a session, the project in the path must be one it may read.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jinja2
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response

from revlens.errors import HTTPError
from revlens.store.duckdb_store import DuckDBStore
from revlens.store.models import Project
from revlens.web import sessions
from revlens.web.sessions import Session

HERE = Path(__file__).parent
MAX_FORM = 16 * 1024
# Vega's expression parser compiles with `new Function`, so pages that draw charts allow eval of
# scripts that come from revlens itself (no inline script, no other origin).
PAGE_CSP = (
    "default-src 'self'; script-src 'self' 'unsafe-eval'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)

Handler = Callable[[Request, "Viewer"], Awaitable[Response]]


class Viewer:
    """A signed-in request: its session, the store, and (for /p/{project}/... paths) the project."""

    def __init__(self, request: Request, session: Session, project: Project | None) -> None:
        self.request = request
        self.session = session
        self.project = project
        self.runtime: Any = request.app.state.runtime
        self.store: DuckDBStore = self.runtime.store

    @property
    def need_project(self) -> Project:
        assert self.project is not None
        return self.project


@functools.cache
def templates() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )


async def form_fields(request: Request) -> dict[str, str]:
    """An urlencoded form body (our forms are small and never upload files, so no multipart)."""
    if "application/x-www-form-urlencoded" not in request.headers.get("content-type", ""):
        return {}
    raw = await request.body()
    if len(raw) > MAX_FORM:
        raise HTTPError(413, "form too large")
    return {k: v[0] for k, v in parse_qs(raw.decode("utf-8", "replace"), max_num_fields=20).items()}


def wants_html(request: Request) -> bool:
    return "text/html" in request.headers.get("accept", "")


def render(name: str, status: int = 200, **context: Any) -> HTMLResponse:
    html = templates().get_template(name).render(**context)
    response = HTMLResponse(html, status_code=status)
    response.headers["content-security-policy"] = PAGE_CSP
    response.headers["cache-control"] = "no-store"
    return response


def signin_page(
    request: Request, error: str | None = None, status: int = 401, next_path: str | None = None
) -> Response:
    """The sign-in form, with a fresh double-submit token for the form itself."""
    token = secrets.token_urlsafe(24)
    if next_path is None:
        next_path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    response = render("signin.html", status, error=error, login_token=token, next_path=safe_next(next_path))
    response.set_cookie(sessions.LOGIN_COOKIE, token, max_age=3600, httponly=True, samesite="strict", path="/")
    return response


def safe_next(path: str | None) -> str:
    """Only local paths: never redirect a signed-in browser to another site."""
    if not path or not path.startswith("/") or path.startswith("//") or "\\" in path:
        return "/"
    return path


def _refuse(request: Request) -> Response:
    if wants_html(request) and request.method in sessions.SAFE_METHODS:
        return signin_page(request)
    raise HTTPError(401, "sign in first: this dashboard route needs a session (POST /login)")


def guarded(handler: Handler) -> Callable[[Request], Awaitable[Response]]:
    """Route wrapper: a session (else 401), CSRF on writes, then the path's project."""

    @functools.wraps(handler)
    async def route(request: Request) -> Response:
        store: DuckDBStore = request.app.state.runtime.store
        session = await run_in_threadpool(sessions.find, store, request)
        if session is None:
            return _refuse(request)
        form_token = None
        if request.method not in sessions.SAFE_METHODS:
            form_token = (await form_fields(request)).get("csrf")
        sessions.check_csrf(request, session, form_token)
        project = None
        if "project" in request.path_params:
            project = await run_in_threadpool(sessions.project_for, store, session, request.path_params["project"])
        return await handler(request, Viewer(request, session, project))

    return route
