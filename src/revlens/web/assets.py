"""Static files: our CSS and scripts from `static/`, and the Vega bundle from `vl-convert-python`.

The bundle (Vega, Vega-Lite, vega-embed; about 900 KB, 250 KB gzipped) is built once per process on
first use and served with a long cache lifetime, so pages need no CDN and work offline.
"""

from __future__ import annotations

import functools
import gzip
import hashlib

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from revlens.errors import HTTPError
from revlens.web.access import HERE, Viewer

STATIC = HERE / "static"
VEGA_BUNDLE = "vega.js"
TYPES = {".js": "text/javascript; charset=utf-8", ".css": "text/css; charset=utf-8"}


class Asset:
    """A file's bytes, gzipped once, and its ETag."""

    def __init__(self, body: bytes, media_type: str, max_age: int) -> None:
        self.body = body
        self.gzipped = gzip.compress(body, 6)
        self.media_type = media_type
        self.etag = '"' + hashlib.sha256(body).hexdigest()[:20] + '"'
        self.cache_control = f"private, max-age={max_age}" if max_age else "private, no-cache"


@functools.cache
def vega_bundle() -> Asset:
    import vl_convert

    # The stub marks `snippet` required; without it the bundle assigns vegaEmbed/vega/vegaLite to window.
    bundle = vl_convert.javascript_bundle()  # type: ignore[call-arg]
    return Asset(bundle.encode(), TYPES[".js"], 86400)


@functools.cache
def static_asset(name: str) -> Asset:
    path = STATIC / name
    return Asset(path.read_bytes(), TYPES[path.suffix], 0)


def names() -> list[str]:
    return sorted(p.name for p in STATIC.iterdir() if p.suffix in TYPES)


async def serve(request: Request, viewer: Viewer) -> Response:
    name = request.path_params["name"]
    if name == VEGA_BUNDLE:
        asset = await run_in_threadpool(vega_bundle)
    elif name in names():
        asset = static_asset(name)
    else:
        raise HTTPError(404, "no such file")
    headers = {"etag": asset.etag, "cache-control": asset.cache_control, "vary": "accept-encoding"}
    if request.headers.get("if-none-match") == asset.etag:
        return Response(status_code=304, headers=headers)
    if "gzip" in request.headers.get("accept-encoding", ""):
        headers["content-encoding"] = "gzip"
        return Response(asset.gzipped, media_type=asset.media_type, headers=headers)
    return Response(asset.body, media_type=asset.media_type, headers=headers)
