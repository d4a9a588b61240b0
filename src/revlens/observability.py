"""Metrics (Prometheus) and structured JSON logs.

One `Metrics` object per running app, on its own registry (no state at import time). Names:

| metric | type | meaning |
|---|---|---|
| `revlens_deliveries_total{outcome}` | counter | webhook deliveries by outcome: accepted, parked, ignored, rejected, invalid, too_large, unknown_endpoint, unavailable |
| `revlens_events_stored_total` | counter | analytics events written by the loader |
| `revlens_duplicates_total` | counter | repeated deliveries of an event already kept |
| `revlens_log_commit_seconds` | histogram | one group commit: write + fdatasync of a batch of deliveries |
| `revlens_load_seconds` | histogram | one loader transaction into the store |
| `revlens_loader_queue_batches` | gauge | committed batches waiting for the loader |
| `revlens_query_seconds{kind}` | histogram | analytics queries, by kind |
| `revlens_http_requests_total{route,status}` | counter | requests other than webhooks |
| `revlens_store_memory_bytes{tag}` | gauge | memory DuckDB holds by kind (table cache, indexes, unsaved data, queries; capped by `store_memory_limit`) |
| `revlens_python_allocated_blocks` | gauge | blocks the interpreter holds (a Python-level leak shows here; native memory does not) |
| `revlens_allocator_info{allocator}` | gauge | 1, labelled with the C allocator the process runs on: `jemalloc` or `system` |
| `process_resident_memory_bytes` etc. | gauge | the server process (RSS, CPU seconds, open files) |
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, ProcessCollector, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from revlens import malloc

FAST_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
QUERY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.deliveries = Counter(
            "revlens_deliveries", "Webhook deliveries by outcome", ["outcome"], registry=self.registry
        )
        self.events_stored = Counter("revlens_events_stored", "Analytics events stored", registry=self.registry)
        self.duplicates = Counter("revlens_duplicates", "Repeated deliveries of kept events", registry=self.registry)
        self.log_commit = Histogram(
            "revlens_log_commit_seconds",
            "Group commit to the delivery log",
            buckets=FAST_BUCKETS,
            registry=self.registry,
        )
        self.load = Histogram(
            "revlens_load_seconds", "Loader transaction", buckets=QUERY_BUCKETS, registry=self.registry
        )
        self.queue = Gauge("revlens_loader_queue_batches", "Batches waiting for the loader", registry=self.registry)
        self.query = Histogram(
            "revlens_query_seconds", "Analytics queries", ["kind"], buckets=QUERY_BUCKETS, registry=self.registry
        )
        self.http = Counter(
            "revlens_http_requests", "HTTP requests (not webhooks)", ["route", "status"], registry=self.registry
        )
        self._store_memory = _StoreMemoryCollector()
        self.registry.register(self._store_memory)
        ProcessCollector(registry=self.registry)
        self.python_blocks = Gauge(
            "revlens_python_allocated_blocks", "Memory blocks the interpreter has allocated", registry=self.registry
        )
        self.python_blocks.set_function(sys.getallocatedblocks)
        allocator = Gauge(
            "revlens_allocator_info", "The C allocator the process runs on", ["allocator"], registry=self.registry
        )
        allocator.labels(malloc.active()).set(1)
        self._outcomes = {name: self.deliveries.labels(name) for name in OUTCOMES}

    def delivery(self, outcome: str) -> None:
        self._outcomes[outcome].inc()

    def watch_queue(self, size: Callable[[], int]) -> None:
        self.queue.set_function(size)

    def watch_store_memory(self, usage: Callable[[], list[tuple[str, int]]]) -> None:
        self._store_memory.usage = usage

    def render(self) -> bytes:
        return bytes(generate_latest(self.registry))


class _StoreMemoryCollector(Collector):
    """`revlens_store_memory_bytes{tag}`: what DuckDB reports holding, by kind (table cache, indexes,
    data not yet checkpointed, query state), read at scrape time."""

    def __init__(self) -> None:
        self.usage: Callable[[], list[tuple[str, int]]] = list

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("revlens_store_memory_bytes", "Memory held by the store (DuckDB)", labels=["tag"])
        for tag, size in self.usage():
            family.add_metric([tag.lower()], size)
        yield family


OUTCOMES = ("accepted", "parked", "ignored", "rejected", "invalid", "too_large", "unknown_endpoint", "unavailable")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, and any `extra` fields."""

    RESERVED = frozenset(logging.LogRecord("", 0, "", 0, "", None, None).__dict__) | {"message", "asctime"}

    def format(self, record: logging.LogRecord) -> str:
        item: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self.RESERVED and not key.startswith("_"):
                item[key] = value
        if record.exc_info:
            item["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(item, default=str).decode()


def configure_logging(level: str = "info") -> None:
    """Structured logs on stderr for the server (uvicorn's own loggers included)."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logger = logging.getLogger(name)
        logger.handlers[:] = []
        logger.propagate = True
