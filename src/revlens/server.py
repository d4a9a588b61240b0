"""Running the service: uvicorn with uvloop and httptools, one process (DuckDB has one writer)."""

from __future__ import annotations

import sys

import uvicorn

from revlens.api.app import create_app
from revlens.settings import Settings

# Hand the GIL over more often than the default 5 ms, so the event loop is not starved by the
# loader thread between group commits (shared/reference/performance.md A.7).
SWITCH_INTERVAL = 0.0005


def server_for(settings: Settings) -> uvicorn.Server:
    config = uvicorn.Config(
        create_app(settings),
        host=settings.host,
        port=settings.port,
        loop="uvloop",
        http="httptools",
        lifespan="on",
        access_log=False,
        log_level=settings.log_level,
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


def run(settings: Settings) -> None:
    sys.setswitchinterval(SWITCH_INTERVAL)
    server_for(settings).run()
