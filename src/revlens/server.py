"""Running the service: uvicorn with uvloop and httptools, one process (DuckDB has one writer)."""

from __future__ import annotations

import gc
import sys
import threading

import uvicorn

from revlens import malloc
from revlens.api.app import create_app
from revlens.observability import configure_logging
from revlens.settings import Settings
from revlens.web.assets import vega_bundle

# Hand the GIL over more often than the default 5 ms, so the event loop is not starved by the
# loader thread between group commits (shared/reference/performance.md A.7).
SWITCH_INTERVAL = 0.0005
# Young-generation threshold raised from 700: fewer collections, each over few objects.
GC_THRESHOLDS = (50_000, 20, 100)


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
        log_config=None,  # keep the JSON logging set up by configure_logging
        timeout_graceful_shutdown=10,
    )
    return uvicorn.Server(config)


def tune_interpreter() -> None:
    """Set the interpreter up for a long-running server.

    The libraries loaded at start (stripe, duckdb, pyarrow, pydantic) leave hundreds of thousands of
    long-lived objects; a full garbage collection that walks them all stalls every request for about
    100 ms (bench/README.md). Freezing them after start-up and collecting the young generation less
    often removes those stalls; request garbage is acyclic and freed by reference counting anyway.
    """
    sys.setswitchinterval(SWITCH_INTERVAL)
    gc.collect()
    gc.freeze()
    gc.set_threshold(*GC_THRESHOLDS)


def run(settings: Settings) -> None:
    malloc.limit_arenas()
    configure_logging(settings.log_level)
    # Build the dashboard's chart library while the server starts, so the first page is fast.
    threading.Thread(target=vega_bundle, name="revlens-assets", daemon=True).start()
    server = server_for(settings)
    tune_interpreter()
    server.run()
