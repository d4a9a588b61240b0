"""Project authentication: HTTP Basic with the project's API key and secret key, as Amplitude does.

Wrong, missing or unknown keys all get the same 401, and the secret is compared (as a SHA-256 hash)
in constant time whether or not the API key exists, so the answer says nothing about what exists.
"""

from __future__ import annotations

import base64
import binascii
import hmac

from starlette.requests import Request

from revlens.errors import HTTPError
from revlens.store.duckdb_store import DuckDBStore, hash_secret
from revlens.store.models import Project

_DUMMY_HASH = hash_secret("not-a-secret")


def basic_credentials(request: Request) -> tuple[str, str] | None:
    header = request.headers.get("authorization", "")
    scheme, _, encoded = header.partition(" ")
    if scheme.lower() != "basic" or not encoded:
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return None
    api_key, sep, secret = decoded.partition(":")
    return (api_key, secret) if sep else None


def authenticate(store: DuckDBStore, credentials: tuple[str, str] | None) -> Project | None:
    if credentials is None:
        return None
    api_key, secret = credentials
    project = store.project_by_api_key(api_key) if len(api_key) <= 200 else None
    expected = project.secret_hash if project else _DUMMY_HASH
    ok = hmac.compare_digest(hash_secret(secret).encode(), expected.encode())
    return project if ok and project is not None else None


def require_project(request: Request, store: DuckDBStore) -> Project:
    project = authenticate(store, basic_credentials(request))
    if project is None:
        raise HTTPError(401, "invalid or missing credentials (HTTP Basic: api_key:secret_key)")
    return project
