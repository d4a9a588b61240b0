"""Request bodies: a JSON object, size-limited, with the canonical 400/413 errors."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.requests import Request

from revlens.errors import HTTPError

MAX_JSON_BODY = 1024 * 1024


async def json_object(request: Request, limit: int = MAX_JSON_BODY) -> dict[str, Any]:
    """The body as a JSON object (an empty body reads as {})."""
    raw = await request.body()
    if len(raw) > limit:
        raise HTTPError(413, "body too large")
    try:
        data = orjson.loads(raw or b"{}")
    except orjson.JSONDecodeError:
        raise HTTPError(400, "body is not valid JSON") from None
    if not isinstance(data, dict):
        raise HTTPError(400, "body must be a JSON object")
    return data
