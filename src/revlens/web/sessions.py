"""Dashboard sessions: a random cookie token, its SHA-256 stored server-side, and a CSRF token.

Signing in with a project's keys gives a session for that project; with the admin token, a session
for every project. Logout deletes the row, so a copied cookie stops working too. Requests other than
GET/HEAD must echo the session's CSRF token (header `X-CSRF-Token` or form field `csrf`); the
cookie is also `SameSite=Strict` and `HttpOnly`.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from starlette.requests import Request
from starlette.responses import Response

from revlens.errors import HTTPError
from revlens.store.duckdb_store import DuckDBStore, StoreError
from revlens.store.models import Project

COOKIE = "revlens_session"
# Before sign-in: a double-submit token for the sign-in form itself.
LOGIN_COOKIE = "revlens_login"
CSRF_HEADER = "x-csrf-token"
LIFETIME = timedelta(days=14)
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


@dataclass(frozen=True)
class Session:
    """A signed-in browser: one project (`pid`) or, with `admin`, all of them."""

    token_hash: str
    pid: int | None
    admin: bool
    csrf: str


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def create(store: DuckDBStore, pid: int | None, admin: bool) -> tuple[str, Session]:
    """A new session; returns the cookie token (shown only to the browser) and the session."""
    token = secrets.token_urlsafe(32)
    session = Session(_hash(token), pid, admin, secrets.token_urlsafe(24))
    now = _now()
    with store.transaction() as cur:
        cur.execute("DELETE FROM web_sessions WHERE expires_at < ?", [now])
        cur.execute(
            "INSERT INTO web_sessions VALUES (?, ?, ?, ?, ?, ?)",
            [session.token_hash, pid, admin, session.csrf, now, now + LIFETIME],
        )
    return token, session


def find(store: DuckDBStore, request: Request) -> Session | None:
    """The request's session from its cookie, if it exists and has not expired."""
    token = request.cookies.get(COOKIE)
    if not token or len(token) > 100:
        return None
    rows = store.execute(
        "SELECT token_hash, pid, admin, csrf FROM web_sessions WHERE token_hash = ? AND expires_at > ?",
        [_hash(token), _now()],
    )
    if not rows:
        return None
    token_hash, pid, admin, csrf = rows[0]
    return Session(str(token_hash), int(pid) if pid is not None else None, bool(admin), str(csrf))


def delete(store: DuckDBStore, session: Session) -> None:
    with store.transaction() as cur:
        cur.execute("DELETE FROM web_sessions WHERE token_hash = ?", [session.token_hash])


def check_csrf(request: Request, session: Session, form_value: str | None = None) -> None:
    """403 unless a state-changing request carries the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    supplied = request.headers.get(CSRF_HEADER) or form_value or ""
    if not hmac.compare_digest(supplied.encode(), session.csrf.encode()):
        raise HTTPError(403, "missing or wrong CSRF token: reload the page and try again")


def project_for(store: DuckDBStore, session: Session, name: str | None) -> Project:
    """The project a session reads: its own, or (admin) the one named; 404 for any other."""
    try:
        if session.admin:
            if not name:
                raise HTTPError(400, "'project' is required when signed in with the admin token")
            return store.project(name)
        assert session.pid is not None
        project = store.project_by_pid(session.pid)
    except StoreError:
        raise HTTPError(404, "no such project") from None
    if name and name not in (project.name, project.id):
        raise HTTPError(404, "no such project")
    return project


def session_project(request: Request, store: DuckDBStore) -> Project | None:
    """For the query API: the project of a valid session cookie, else None (other auth is tried).

    A session request that changes state must carry the CSRF token, or it is refused with 403."""
    session = find(store, request)
    if session is None:
        return None
    check_csrf(request, session)
    return project_for(store, session, request.query_params.get("project"))


def set_cookie(response: Response, request: Request, token: str) -> None:
    response.set_cookie(
        COOKIE,
        token,
        max_age=int(LIFETIME.total_seconds()),
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )


def clear_cookie(response: Response) -> None:
    response.delete_cookie(COOKIE, path="/", httponly=True, samesite="strict")
