"""The one JSON error shape every route answers with: {"ok": false, "status": N, "error": "..."}."""

from __future__ import annotations

from typing import Any

import orjson


def error_body(status: int, message: str, **extra: Any) -> dict[str, Any]:
    return {"ok": False, "status": status, "error": message, **extra}


def error_bytes(status: int, message: str) -> bytes:
    return orjson.dumps(error_body(status, message))


class HTTPError(Exception):
    """Raised by a route to answer with the canonical error shape."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
