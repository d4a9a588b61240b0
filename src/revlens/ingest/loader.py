"""The loader: durable log records in, deduplicated analytics events in the store, exactly once.

It runs on its own thread, fed by the group committer with records that are already on disk. Each
step normalizes a batch and writes it in one store transaction together with the log position it
reached, so after a crash it resumes exactly where the store says it stopped (`catch_up`), and the
Stripe event id makes any record seen twice (a retry, a concurrent duplicate) count only once.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import duckdb
import orjson

from revlens import STRIPE_API_VERSION, malloc
from revlens.ingest import log as delivery_log
from revlens.ingest.log import Entry
from revlens.normalize import Context, Envelope, EnvelopeError, Link, RateTable, is_supported, normalize, parse_envelope
from revlens.normalize.identity import resolve
from revlens.observability import Metrics
from revlens.store import clustering
from revlens.store.duckdb_store import DuckDBStore, NotFoundError
from revlens.store.models import FAILED, PARKED, STORED, Delivery, LoadBatch, LoadResult

logger = logging.getLogger("revlens.loader")

# A step takes whatever is queued, up to this many records, so one commit covers many deliveries.
MAX_BATCH = 5000
# How often counters of deliveries that store nothing (ignored, rejected) reach the store when idle.
COUNTER_FLUSH_SECONDS = 1.0
# How often the loader merges the day sets of many small loads (store/user_sets.py) and hands
# freed heap memory back to the system (revlens/malloc.py).
TRIM_SECONDS = 10.0
# Closed months are rewritten in event-type order only in a round (TRIM_SECONDS) that stored fewer
# events than this: the soak (2,400 deliveries/s) had p99 121 ms while months were rewritten.
BUSY_EVENTS_PER_ROUND = 1_000
# ... but not forever: after this many busy rounds in a row (five minutes), the next round rewrites a
# month anyway, so a server that is never quiet still gets its closed months in order.
STARVED_ROUNDS = 30
# Retry pause after a failed store write (the records stay queued; nothing is dropped).
RETRY_SECONDS = 0.5
# Least time between two loads: under a steady trickle, gather deliveries into fewer, larger DuckDB
# commits instead of spending the CPU the request path needs on many tiny ones.
MIN_LOAD_INTERVAL = 0.05
# Most committed batches held in memory for the loader. Past this the loader has fallen behind (a
# burst, a slow disk): new records are left on disk and read back from the log, so memory stays bounded.
MAX_QUEUED_BATCHES = 2000


@dataclass(frozen=True, slots=True)
class Route:
    """What the loader needs about an endpoint: its project and that project's settings."""

    pid: int
    currency: str
    timezone: ZoneInfo


class Counters:
    """Per-endpoint tallies of deliveries that leave nothing else in the store (thread-safe)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._deltas: dict[str, dict[str, int]] = {}
        self._last: dict[str, datetime] = {}

    def bump(self, endpoint_id: str, name: str, when: datetime | None = None) -> None:
        with self._lock:
            bucket = self._deltas.setdefault(endpoint_id, {})
            bucket[name] = bucket.get(name, 0) + 1
            if when is not None:
                self._last[endpoint_id] = when

    def seen(self, endpoint_id: str, when: datetime) -> None:
        with self._lock:
            self._last[endpoint_id] = when

    def take(self) -> tuple[dict[str, dict[str, int]], dict[str, datetime]]:
        with self._lock:
            deltas, last = self._deltas, self._last
            self._deltas, self._last = {}, {}
        return deltas, last

    def give_back(self, deltas: dict[str, dict[str, int]], last: dict[str, datetime]) -> None:
        """Return what `take` handed out when it could not be stored, merging with newer counts."""
        with self._lock:
            for endpoint_id, bucket in deltas.items():
                mine = self._deltas.setdefault(endpoint_id, {})
                for name, count in bucket.items():
                    mine[name] = mine.get(name, 0) + count
            for endpoint_id, when in last.items():
                newer = self._last.get(endpoint_id)
                self._last[endpoint_id] = when if newer is None else max(newer, when)

    def pending(self) -> dict[str, dict[str, int]]:
        with self._lock:
            return {k: dict(v) for k, v in self._deltas.items()}


T = TypeVar("T")


@dataclass
class _Job:
    kind: str
    entries: list[Entry] = field(default_factory=list)
    fn: Callable[[Batcher, int], Any] | None = None
    future: Future[Any] | None = None


def _utc(ms_or_s: int, scale: int) -> datetime:
    return datetime.fromtimestamp(ms_or_s / scale, UTC).replace(tzinfo=None)


class Batcher:
    """Turns log entries into a LoadBatch: classify, normalize with identity links, deduplicate in-batch.

    Reads the store only for routes, rates and links; the normalization itself stays pure.
    """

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self._routes: dict[str, Route | None] = {}
        self._rates: RateTable | None = None

    def invalidate(self) -> None:
        """Forget cached projects, endpoints and rates (after an admin change)."""
        self._routes.clear()
        self._rates = None

    def rates(self) -> RateTable:
        if self._rates is None:
            self._rates = self.store.rate_table()
        return self._rates

    def route(self, endpoint_id: str) -> Route | None:
        if endpoint_id not in self._routes:
            try:
                endpoint = self.store.endpoint(endpoint_id)
                project = self.store.project_by_pid(endpoint.pid)
                self._routes[endpoint_id] = Route(project.pid, project.currency, ZoneInfo(project.timezone))
            except NotFoundError:
                self._routes[endpoint_id] = None
        return self._routes[endpoint_id]

    def build(self, entries: list[Entry], links: dict[int, dict[str, Link]] | None = None) -> LoadBatch:
        """Normalize `entries`. `links` (per project) overrides the store's links, for reprocess."""
        batch = LoadBatch(end=entries[-1].end if entries else 0)
        parsed: list[tuple[Entry, Route, tuple[dict[str, Any], Envelope] | None, str | None]] = []
        aliases: dict[int, set[str]] = {}
        for entry in entries:
            route = self.route(entry.record.endpoint_id)
            if route is None:
                logger.error("log record for unknown endpoint %s skipped", entry.record.endpoint_id)
                continue
            try:
                event = orjson.loads(entry.record.body)
                envelope = parse_envelope(event)
            except (orjson.JSONDecodeError, EnvelopeError) as exc:
                parsed.append((entry, route, None, str(exc)))
                continue
            parsed.append((entry, route, (event, envelope), None))
            obj = event["data"]["object"]
            aliases.setdefault(route.pid, set()).update(resolve(obj, {}).aliases)
        known = links if links is not None else {pid: self.store.links(pid, names) for pid, names in aliases.items()}
        seen: set[tuple[int, str]] = set()
        rates = self.rates()
        for entry, route, decoded, error in parsed:
            received = _utc(entry.record.received_ms, 1000)
            if decoded is None:
                # Only reachable on reprocess of a record written by an older revlens: keep it visible.
                batch.deliveries.append(
                    Delivery(
                        route.pid,
                        f"unparseable@{entry.position}",
                        entry.record.endpoint_id,
                        "",
                        None,
                        None,
                        FAILED,
                        entry.position,
                        received,
                        None,
                        error,
                    )
                )
                continue
            event, env = decoded
            key = (route.pid, env.id)
            if key in seen:
                batch.repeats[key] = batch.repeats.get(key, 0) + 1
                continue
            seen.add(key)
            delivery = Delivery(
                route.pid,
                env.id,
                entry.record.endpoint_id,
                env.type,
                env.api_version,
                env.account,
                STORED,
                entry.position,
                received,
                _utc(env.created, 1),
            )
            batch.deliveries.append(delivery)
            if env.api_version != STRIPE_API_VERSION:
                delivery.status = PARKED
                delivery.error = f"api_version {env.api_version!r} is not {STRIPE_API_VERSION}"
                continue
            if not is_supported(env.type):
                delivery.status = PARKED
                delivery.error = f"event type {env.type} is not normalized"
                continue
            project_links = known.setdefault(route.pid, {})
            ctx = Context(route.currency, route.timezone, entry.record.endpoint_id, rates, project_links)
            try:
                result = normalize(event, ctx)
            except Exception as exc:  # a payload shape we did not foresee: keep it, mark it, go on
                logger.exception("normalizing %s failed", env.id)
                delivery.status = FAILED
                delivery.error = f"{type(exc).__name__}: {exc}"
                continue
            if result.event is None:
                continue
            batch.events.append((route.pid, entry.record.endpoint_id, result.event))
            for link in result.links:
                current = project_links.get(link.alias)
                if current is None or link.rank < current.rank:
                    project_links[link.alias] = link
                    batch.links.append((route.pid, link))
        return batch


class Loader:
    """The loader thread. Feed it with `submit` (durable entries); ask it to `reprocess`."""

    def __init__(
        self,
        store: DuckDBStore,
        log_dir: Path,
        counters: Counters,
        metrics: Metrics | None = None,
        durable_end: Callable[[], int] | None = None,
    ) -> None:
        self.store = store
        self._settled = clustering.Settled()  # which closed month may be rewritten (store/clustering.py)
        self._stored_at_round = 0
        self._busy_rounds = 0  # rounds in a row that skipped the rewrite for being busy
        self.log_dir = log_dir
        self.counters = counters
        self.batcher = Batcher(store)
        self.metrics = metrics or Metrics()
        self._queue: queue.Queue[_Job] = queue.Queue()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.loaded_position = store.log_position()
        self._catch_up_pending = False
        self.durable_end = durable_end
        self.fatal: str | None = None  # set when the store can no longer write until a restart
        self.last_error: str | None = None
        self.totals = {"stored": 0, "duplicates": 0, "parked": 0, "failed": 0}

    # -- called from other threads ------------------------------------------------------------------

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="revlens-loader", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        self._queue.put(_Job("wake"))
        if self._thread is not None:
            self._thread.join(timeout)

    def submit(self, entries: list[Entry]) -> None:
        """Hand over durable records; beyond the memory bound, only a note to read them from the log."""
        if self._queue.qsize() < MAX_QUEUED_BATCHES:
            self._queue.put(_Job("load", entries))
        elif not self._catch_up_pending:
            self._catch_up_pending = True
            self._queue.put(_Job("catch_up"))

    def invalidate(self) -> None:
        self._queue.put(_Job("invalidate"))

    def call(self, fn: Callable[[Batcher, int], T]) -> Future[T]:
        """Run `fn(batcher, loaded_position)` on the loader thread, between batches (reprocess,
        re-conversion): nothing else writes events meanwhile, and new deliveries wait in the queue."""
        future: Future[T] = Future()
        self._queue.put(_Job("call", fn=fn, future=future))
        return future

    def backlog(self) -> int:
        return self._queue.qsize()

    # -- the thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        self._catch_up()
        last_load = 0.0
        last_trim = time.monotonic()
        while not self._stop.is_set():
            if time.monotonic() - last_trim >= TRIM_SECONDS:
                self._compact()
                malloc.trim()
                last_trim = time.monotonic()
            try:
                job = self._queue.get(timeout=COUNTER_FLUSH_SECONDS)
            except queue.Empty:
                self._flush_counters()
                continue
            wait = last_load + MIN_LOAD_INTERVAL - time.monotonic()
            if wait > 0 and job.kind == "load":
                time.sleep(wait)
            last_load = time.monotonic()
            jobs = [job]
            size = len(job.entries)
            while size < MAX_BATCH:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                jobs.append(more)
                size += len(more.entries)
            entries: list[Entry] = []
            for item in jobs:
                if item.kind == "load":
                    entries.extend(e for e in item.entries if e.position >= self.loaded_position)
                elif item.kind == "invalidate":
                    self.batcher.invalidate()
                elif item.kind == "catch_up":
                    if entries:
                        self._load(entries)
                        entries = []
                    # Cleared before reading: records dropped from now on get a new catch-up job.
                    self._catch_up_pending = False
                    self._catch_up()
                elif item.kind == "call" and item.fn is not None and item.future is not None:
                    if entries:
                        self._load(entries)
                        entries = []
                    try:
                        item.future.set_result(item.fn(self.batcher, self.loaded_position))
                    except Exception as exc:
                        logger.exception("loader call failed")
                        item.future.set_exception(exc)
            if entries:
                self._load(entries)
        self._drain()

    def _drain(self) -> None:
        """Load what is still queued before stopping, so a clean shutdown leaves no backlog."""
        entries: list[Entry] = []
        while True:
            try:
                job = self._queue.get_nowait()
            except queue.Empty:
                break
            if job.kind == "load":
                entries.extend(e for e in job.entries if e.position >= self.loaded_position)
        if entries:
            self._load(entries, retries=3)
        self._flush_counters()

    def _catch_up(self) -> None:
        """Load records that reached the log but not the store (a crash between the two, or a backlog
        beyond the in-memory bound). Only records the writer has made durable are read: one still
        being synced may yet be cut off, and its sender told 503."""
        limit = self.durable_end() if self.durable_end is not None else None
        chunk: list[Entry] = []
        for entry in delivery_log.read(self.log_dir, self.loaded_position):
            if limit is not None and entry.end > limit:
                break
            chunk.append(entry)
            if len(chunk) >= MAX_BATCH:
                self._load(chunk)
                chunk = []
        if chunk:
            self._load(chunk)

    def _load(self, entries: list[Entry], retries: int | None = None) -> LoadResult | None:
        attempt = 0
        while True:
            try:
                batch = self.batcher.build(entries)
                batch.end = max(entries[-1].end, self.loaded_position)
                deltas, last = self.counters.take()
                batch.counters, batch.last_delivery = deltas, last
                started = time.perf_counter()
                try:
                    result = self.store.load(batch)
                except Exception:
                    self.counters.give_back(deltas, last)
                    raise
                self.metrics.load.observe(time.perf_counter() - started)
                self.metrics.events_stored.inc(result.stored)
                self.metrics.duplicates.inc(result.duplicates)
                self.loaded_position = batch.end
                self.last_error = None
                for name in self.totals:
                    self.totals[name] += getattr(result, name)
                return result
            except Exception as exc:
                attempt += 1
                self.last_error = f"{type(exc).__name__}: {exc}"
                if isinstance(exc, duckdb.FatalException) or "invalidated" in str(exc):
                    # DuckDB refuses every write after a failed checkpoint until it is reopened:
                    # say so, so /-/health fails and a supervisor restarts the process.
                    self.fatal = self.last_error
                logger.exception("loading a batch of %d records failed (attempt %d)", len(entries), attempt)
                if self._stop.is_set() and (retries is None or attempt >= retries):
                    return None
                if retries is not None and attempt >= retries:
                    return None
                time.sleep(RETRY_SECONDS)

    def _compact(self) -> None:
        try:
            self.store.compact_summaries()
        except Exception:  # a failed merge leaves the sets as they were: still correct, only slower to read
            logger.exception("compacting daily user sets failed")
        stored, self._stored_at_round = self.totals["stored"] - self._stored_at_round, self.totals["stored"]
        if stored > BUSY_EVENTS_PER_ROUND and self._busy_rounds < STARVED_ROUNDS:
            self._busy_rounds += 1
            return  # rewriting a month takes both cores for a second or so: not while ingest is busy
        self._busy_rounds = 0
        try:
            # At most one month per round (about a second of work at 10 M events a year), and only one
            # no event arrived for since the previous round.
            picked = self._settled.pick(self.store.closed_months_due())
            if picked is not None:
                pid, month, events = picked
                rows = self.store.cluster_month(pid, month, events)
                if rows is not None:
                    logger.info("rewrote %d events of project %d, %s, in event-type order", rows, pid, f"{month:%Y-%m}")
        except Exception:  # rolled back: the month stays as it was, correct and only slower to read
            logger.exception("rewriting a closed month in event-type order failed")

    def _flush_counters(self) -> None:
        deltas, last = self.counters.take()
        if not deltas and not last:
            return
        batch = LoadBatch(end=self.loaded_position, counters=deltas, last_delivery=last)
        try:
            self.store.load(batch)
        except Exception:
            logger.exception("flushing counters failed")
            self.counters.give_back(deltas, last)


def reprocess(
    store: DuckDBStore, log_dir: Path, batcher: Batcher | None = None, upto: int | None = None
) -> dict[str, int]:
    """Rebuild every delivery, analytics event and identity link from the raw delivery log.

    Two passes: the first learns identity links from every event, so the second can give each event
    the user its customer was later linked to (one person is one user, before and after the link).
    """
    batcher = batcher or Batcher(store)
    batcher.invalidate()
    entries = [e for e in delivery_log.read(log_dir) if upto is None or e.position < upto]
    learned: dict[int, dict[str, Link]] = {}
    first = batcher.build(entries, links=learned)
    final_links: dict[int, dict[str, Link]] = {}
    for pid, link in first.links:
        current = final_links.setdefault(pid, {}).get(link.alias)
        if current is None or link.rank < current.rank:
            final_links[pid][link.alias] = link
    batch = batcher.build(entries, links={pid: dict(v) for pid, v in final_links.items()})
    batch.links = [(pid, link) for pid, links in final_links.items() for link in links.values()]
    batch.end = max(upto or 0, entries[-1].end if entries else 0, store.log_position())
    result = store.replace_all(batch)
    return {
        "records": len(entries),
        "stored": result.stored,
        "duplicates": result.duplicates,
        "parked": result.parked,
        "failed": result.failed,
    }


def reconvert(store: DuckDBStore, log_dir: Path, batcher: Batcher | None = None) -> dict[str, int]:
    """Re-normalize the events that had no exchange rate, from their raw deliveries (after new rates).

    Only those events are replaced; deliveries, links and every other event stay as they are.
    """
    batcher = batcher or Batcher(store)
    batcher.invalidate()
    positions = store.fx_missing_positions()
    if not positions:
        return {"events": 0, "still_missing": 0}
    batch = batcher.build(list(delivery_log.read_at(log_dir, positions)))
    store.replace_events(batch.events)
    missing = sum(1 for _, _, event in batch.events if event.fx_missing)
    return {"events": len(batch.events), "still_missing": missing}
