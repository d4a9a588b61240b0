"""Crash test: signed Stripe deliveries into a real `revlens serve` that is SIGKILLed and restarted.

A sender posts signed deliveries over many concurrent keep-alive connections and, as Stripe does, retries
every delivery that was not acknowledged (connection refused or reset, timeout, any 5xx) until it gets
a 200, re-signing each attempt. Meanwhile a chaos thread SIGKILLs the server's whole process group at
random moments and restarts it in the same data folder (as a supervisor would), several times. Some
deliveries are sent twice on purpose: the demo generator's later re-deliveries (2 %) plus copies sent at
the same moment on another connection (`--dup-rate`).

Afterwards, with the server up again and its loader caught up with the log:

- every acknowledged delivery of a stored type is in `deliveries` exactly once, nothing else is (no
  missing, no extra), and `events` holds the same event ids as a crash-free run, with no insert_id twice;
- every record of the delivery log is loaded (log ids = `deliveries` ids) and no segment has garbage;
- the store opens cleanly (read-only and read-write, every table readable, CHECKPOINT succeeds);
- query results over the JSON API (totals and $revenue sums per event type, weekly uniques, two
  retention matrices) equal those of a control run: the same deliveries into a fresh data folder, no kills.

    /work/venv/bin/python bench/chaos.py                 # the real run: 10 kills, ~40,000 deliveries, ~2 min
    /work/venv/bin/python bench/chaos.py --quick         # 3 kills, ~3,000 deliveries (what CI runs)

It prints a summary and writes everything to bench/results/chaos-<UTC>.json (git-ignored). Exit code 0:
the verdict is PASS; 1: FAIL; 2: the test could not run. All traffic goes to 127.0.0.1; every server it
starts runs in its own process group and is stopped (that group) in `finally`.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import http.client
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import duckdb
import orjson

from revlens.demo.generator import DemoConfig, generate_deliveries
from revlens.ingest import log as delivery_log
from revlens.normalize import SUPPORTED_TYPES
from revlens.webhook.signature import sign

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
HOST = "127.0.0.1"
SECRET = "whsec_chaos_0123456789abcdef0123456789"
EVENT_PREFIX = "[Stripe] "

HEALTH_TIMEOUT_S = 60.0
CLI_TIMEOUT_S = 120.0
LOADED_TIMEOUT_S = 120.0
CONNECT_TIMEOUT_S = 2.0


class ChaosError(RuntimeError):
    """The test could not run (server did not start, CLI failed, ...)."""


@dataclass
class ChaosConfig:
    """One run. `events` is what the demo generator makes (deliveries add its re-deliveries and copies)."""

    events: int = 40_000
    seed: int = 11
    kills: int = 10
    duration: float = 120.0  # first attempts are spread evenly over this many seconds
    concurrency: int = 64
    dup_rate: float = 0.03  # fraction of deliveries also sent at once on another connection
    request_timeout: float = 10.0
    restart_delay: float = 0.5  # the restart waits a random 0..this after a kill
    send_deadline: float = 600.0  # bound on the whole sending phase; later unacknowledged ones give up
    python: str = sys.executable
    workdir: Path | None = None  # default: a fresh temporary folder, deleted unless keep
    keep: bool = False
    order_control: bool = False  # also a crash-free run in shuffled order (user counts vs arrival order)
    in_process_setup: bool = False  # create project and endpoint in-process instead of with the CLI


# --------------------------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def server_env() -> dict[str, str]:
    env = dict(os.environ)
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    return env


def http_request(
    port: int,
    method: str,
    path: str,
    headers: dict[str, str] | None = None,
    body: bytes | None = None,
    timeout: float = 5.0,
) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def cli(python: str, data_dir: Path, *args: str) -> dict[str, Any]:
    proc = subprocess.run(
        [python, "-m", "revlens", *args, "--data-dir", str(data_dir), "--json"],
        capture_output=True,
        text=True,
        timeout=CLI_TIMEOUT_S,
        env=server_env(),
        check=False,
    )
    if proc.returncode != 0:
        raise ChaosError(f"revlens {' '.join(args)} exited {proc.returncode}: {proc.stderr[-2000:]}")
    result: dict[str, Any] = orjson.loads(proc.stdout)
    return result


class Server:
    """`revlens serve` in its own process group; killed or stopped by that group."""

    def __init__(self, python: str, data_dir: Path, port: int, log_path: Path) -> None:
        self.python = python
        self.data_dir = data_dir
        self.port = port
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [
                    self.python,
                    "-m",
                    "revlens",
                    "serve",
                    "--host",
                    HOST,
                    "--port",
                    str(self.port),
                    "--data-dir",
                    str(self.data_dir),
                    "--log-level",
                    "warning",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                env=server_env(),
            )

    def wait_healthy(self, timeout: float = HEALTH_TIMEOUT_S) -> float:
        """Seconds from now until GET /-/health answers 200."""
        t0 = time.monotonic()
        while time.monotonic() - t0 < timeout:
            if self.proc is None or self.proc.poll() is not None:
                code = None if self.proc is None else self.proc.returncode
                raise ChaosError(f"server exited with {code}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_request(self.port, "GET", "/-/health", timeout=1.0)[0] == 200:
                    return time.monotonic() - t0
            time.sleep(0.02)
        raise ChaosError(f"server not healthy after {timeout:.0f}s:\n{self.log_tail()}")

    def kill(self) -> None:
        """SIGKILL the whole process group: no shutdown, no flush, no atexit."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        """SIGTERM (a clean shutdown drains the loader), then SIGKILL the group if it lingers."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.proc.wait(30)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(10)

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


@dataclass
class Site:
    """A data folder with one project and one Stripe endpoint, and its server."""

    data_dir: Path
    server: Server
    url_path: str
    api_key: str
    secret_key: str

    @property
    def token(self) -> str:
        return (self.data_dir / "admin_token").read_text().strip()


def make_site(python: str, data_dir: Path, log_path: Path, in_process: bool = False) -> Site:
    """A data folder with project `acme` and one Stripe endpoint: with the CLI (as a user would), or
    in-process with the same admin code the CLI runs (`in_process`, quicker: no interpreter start-ups)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    if in_process:
        from revlens.admin import LocalAdmin
        from revlens.store.duckdb_store import DuckDBStore

        store = DuckDBStore(data_dir)
        try:
            admin = LocalAdmin(store, data_dir / "log")
            project = admin.create_project("acme", "USD", "UTC")
            endpoint = admin.add_endpoint("acme", [SECRET])
        finally:
            store.close()
    else:
        project = cli(python, data_dir, "projects", "create", "acme", "--currency", "USD", "--timezone", "UTC")
        endpoint = cli(python, data_dir, "stripe", "add-endpoint", "--project", "acme", "--signing-secret", SECRET)
    server = Server(python, data_dir, free_port(), log_path)
    return Site(data_dir, server, endpoint["url_path"], project["api_key"], project["secret_key"])


# ------------------------------------------------------------------------------------------ deliveries


@dataclass(frozen=True, slots=True)
class Delivery:
    event_id: str
    stripe_type: str
    body: bytes

    @property
    def stored_type(self) -> bool:
        return self.stripe_type in SUPPORTED_TYPES


def build_deliveries(events: int, seed: int, dup_rate: float) -> list[Delivery]:
    """The demo generator's deliveries (with its later re-deliveries), some also sent twice at once."""
    rng = random.Random(seed)
    out: list[Delivery] = []
    for event in generate_deliveries(DemoConfig(events=events, seed=seed)):
        item = Delivery(str(event["id"]), str(event["type"]), orjson.dumps(event))
        out.append(item)
        if rng.random() < dup_rate:
            out.append(item)  # the next slot: another connection sends it at the same moment
    return out


# ---------------------------------------------------------------------------------------------- sender


class _Conn:
    def __init__(self) -> None:
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep-alive) of one HTTP/1.1 response (Content-Length or chunked)."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if ":" in line:
            name, value = line.split(":", 1)
            headers[name.strip().lower()] = value.strip()
    if "content-length" in headers:
        body = await reader.readexactly(int(headers["content-length"]))
    elif headers.get("transfer-encoding", "").lower() == "chunked":
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0].strip(), 16)
            if size == 0:
                await reader.readuntil(b"\r\n")
                break
            parts.append((await reader.readexactly(size + 2))[:-2])
        body = b"".join(parts)
    else:
        body = await reader.read()
        return status, body, False
    return status, body, headers.get("connection", "").lower() != "close"


@dataclass
class SendStats:
    deliveries: int = 0  # delivery slots sent (duplicates included)
    requests: int = 0  # HTTP attempts
    retries: int = 0  # attempts after a delivery's first
    acknowledged: int = 0  # slots answered 200
    given_up: int = 0  # slots never acknowledged before the deadline
    connection_errors: int = 0
    timeouts: int = 0
    status: Counter[int] = field(default_factory=Counter)
    outcomes: Counter[str] = field(default_factory=Counter)  # accepted / ignored / parked (200 bodies)
    unexpected: list[str] = field(default_factory=list)  # samples of answers that are neither 200 nor 503
    acked_stored: set[str] = field(default_factory=set)  # ids of stored types acknowledged "accepted"
    acked_ignored: set[str] = field(default_factory=set)  # ids acknowledged "ignored"
    unacked: set[str] = field(default_factory=set)
    elapsed: float = 0.0
    max_attempts: int = 0

    def summary(self) -> dict[str, Any]:
        return {
            "deliveries": self.deliveries,
            "requests": self.requests,
            "retries": self.retries,
            "acknowledged": self.acknowledged,
            "given_up": self.given_up,
            "connection_errors": self.connection_errors,
            "timeouts": self.timeouts,
            "status": {str(k): v for k, v in sorted(self.status.items())},
            "outcomes": dict(self.outcomes),
            "unexpected_samples": self.unexpected[:20],
            "acknowledged_stored_ids": len(self.acked_stored),
            "acknowledged_ignored_ids": len(self.acked_ignored),
            "max_attempts_of_one_delivery": self.max_attempts,
            "elapsed_s": round(self.elapsed, 2),
        }


class Sender:
    """Stripe-like sender: `concurrency` keep-alive connections, every delivery retried until a 200."""

    def __init__(
        self,
        port: int,
        url_path: str,
        deliveries: list[Delivery],
        concurrency: int,
        rate: float,
        request_timeout: float,
        deadline: float,
        seed: int,
    ) -> None:
        self.port = port
        self.url_path = url_path
        self.deliveries = deliveries
        self.concurrency = concurrency
        self.rate = rate  # first attempts per second; 0 = as fast as answered
        self.request_timeout = request_timeout
        self.deadline = deadline
        self.rng = random.Random(seed)
        self.stats = SendStats()
        self._next = 0

    def _request(self, body: bytes) -> bytes:
        head = (
            f"POST {self.url_path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Content-Type: application/json\r\nStripe-Signature: {sign(body, SECRET)}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        )
        return head.encode("latin-1") + body

    async def _attempt(self, conn: _Conn, body: bytes) -> tuple[int, bytes]:
        if conn.writer is None:
            conn.reader, conn.writer = await asyncio.wait_for(
                asyncio.open_connection(HOST, self.port), CONNECT_TIMEOUT_S
            )
        assert conn.reader is not None and conn.writer is not None
        conn.writer.write(self._request(body))
        await conn.writer.drain()
        status, answer, keep = await _read_response(conn.reader)
        if not keep:
            conn.close()
        return status, answer

    async def _deliver(self, conn: _Conn, item: Delivery, stop_at: float) -> None:
        stats = self.stats
        attempt = 0
        while True:
            if time.monotonic() > stop_at:
                stats.given_up += 1
                stats.unacked.add(item.event_id)
                return
            attempt += 1
            stats.requests += 1
            if attempt > 1:
                stats.retries += 1
            stats.max_attempts = max(stats.max_attempts, attempt)
            try:
                status, answer = await asyncio.wait_for(self._attempt(conn, item.body), self.request_timeout)
            except TimeoutError:
                stats.timeouts += 1
                conn.close()
                await self._backoff(attempt)
                continue
            except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ValueError, IndexError):
                stats.connection_errors += 1
                conn.close()
                await self._backoff(attempt)
                continue
            stats.status[status] += 1
            if status == 200:
                outcome = str(orjson.loads(answer).get("status"))
                stats.outcomes[outcome] += 1
                stats.acknowledged += 1
                if outcome in ("accepted", "parked"):
                    stats.acked_stored.add(item.event_id)
                elif outcome == "ignored":
                    stats.acked_ignored.add(item.event_id)
                if (outcome == "ignored" and item.stored_type) or (outcome != "ignored" and not item.stored_type):
                    stats.unexpected.append(f"{item.event_id} ({item.stripe_type}) answered {outcome}")
                return
            if status != 503:
                stats.unexpected.append(f"{item.event_id}: HTTP {status} {answer[:200]!r}")
            if status < 500:  # a 4xx to a freshly signed, valid delivery is a bug: do not hide it by retrying
                stats.unacked.add(item.event_id)
                return
            await self._backoff(attempt)

    async def _backoff(self, attempt: int) -> None:
        # Stripe backs off over hours; compressed here to 25 ms .. 1 s with jitter.
        await asyncio.sleep(min(1.0, 0.025 * 2 ** min(attempt, 6)) * (0.5 + self.rng.random()))

    async def _worker(self, t0: float, stop_at: float) -> None:
        conn = _Conn()
        try:
            while self._next < len(self.deliveries):
                index = self._next
                self._next += 1
                if self.rate > 0:
                    delay = t0 + index / self.rate - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
                self.stats.deliveries += 1
                await self._deliver(conn, self.deliveries[index], stop_at)
        finally:
            conn.close()

    async def run(self) -> SendStats:
        t0 = time.monotonic()
        stop_at = t0 + self.deadline
        await asyncio.gather(*(self._worker(t0, stop_at) for _ in range(self.concurrency)))
        self.stats.elapsed = time.monotonic() - t0
        self.stats.acked_stored -= self.stats.unacked & self.stats.acked_stored  # an id counts once acked
        self.stats.unacked -= self.stats.acked_stored | self.stats.acked_ignored
        return self.stats


# ----------------------------------------------------------------------------------------------- chaos


@dataclass
class KillRecord:
    at_s: float  # since sending started
    down_s: float  # from the kill to the restart
    recovery_s: float  # from the restart until /-/health answered
    during_traffic: bool  # False if the sender had already finished (the kill still tests recovery)


class Chaos(threading.Thread):
    """Kills the server's process group at random moments of the sending window and restarts it.

    The moments are uniform in the first 80 % of the window, so the sender's schedule still runs after
    the last one; a moment that passes while the server is still recovering is taken right after."""

    def __init__(self, server: Server, kills: int, window: float, restart_delay: float, seed: int) -> None:
        super().__init__(name="chaos", daemon=True)
        rng = random.Random(seed)
        self.server = server
        self.restart_delay = restart_delay
        self.rng = rng
        self.times = sorted(rng.uniform(0.05 * window, 0.8 * window) for _ in range(kills))
        self.records: list[KillRecord] = []
        self.error: str | None = None
        self.done = threading.Event()  # set by the sender when it has finished
        self.t0 = time.monotonic()

    def run(self) -> None:
        try:
            for at in self.times:
                while time.monotonic() - self.t0 < at and not self.done.is_set():
                    time.sleep(0.005)
                traffic = not self.done.is_set()
                killed = time.monotonic()
                self.server.kill()
                time.sleep(self.rng.uniform(0, self.restart_delay))
                restarted = time.monotonic()
                self.server.start()
                recovery = self.server.wait_healthy()
                self.records.append(
                    KillRecord(round(killed - self.t0, 3), round(restarted - killed, 3), round(recovery, 3), traffic)
                )
        except Exception as exc:  # reported, and the verdict fails
            self.error = f"{type(exc).__name__}: {exc}"


# -------------------------------------------------------------------------------------------- checking


def log_end(log_dir: Path) -> int:
    segments = sorted(log_dir.glob(f"*{delivery_log.SUFFIX}"))
    if not segments:
        return 0
    last = segments[-1]
    return int(last.stem) + last.stat().st_size


def wait_loaded(site: Site, timeout: float = LOADED_TIMEOUT_S) -> float:
    """Seconds until the loader has loaded everything in the log (the server must be up)."""
    t0 = time.monotonic()
    end = log_end(site.data_dir / "log")
    headers = {"Authorization": f"Bearer {site.token}"}
    last: Any = None
    while time.monotonic() - t0 < timeout:
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            status, body = http_request(site.server.port, "GET", "/-/status", headers)
            if status == 200:
                last = orjson.loads(body)["loader"]
                if last["loaded_position"] >= end and last["backlog_batches"] == 0:
                    return time.monotonic() - t0
        time.sleep(0.05)
    raise ChaosError(f"loader not caught up with the log end {end} after {timeout:.0f}s: {last}")


# Queries whose answers depend only on the set of stored events, whatever order they arrived in.
ORDER_FREE = ("totals ", "revenue ")


def query_suite(site: Site, stripe_types: list[str], start: str, end: str) -> dict[str, Any]:
    """Query API answers: per type totals and $revenue sums (order-free), weekly uniques of all events
    and two retention matrices (these count users, and users depend on identity links; see
    `compare_queries`)."""
    auth = "Basic " + base64.b64encode(f"{site.api_key}:{site.secret_key}".encode()).decode()
    results: dict[str, Any] = {}

    def get(name: str, path: str, params: dict[str, str]) -> None:
        status, body = http_request(
            site.server.port, "GET", f"{path}?{urlencode(params)}", {"Authorization": auth}, timeout=60
        )
        results[name] = {"status": status, "body": orjson.loads(body)}

    for stripe_type in stripe_types:
        name = EVENT_PREFIX + stripe_type
        base = {"start": start, "end": end, "i": "30"}
        totals = {**base, "m": "totals", "e": json.dumps({"event_type": name})}
        get(f"totals {stripe_type}", "/api/2/events/segmentation", totals)
        revenue = {"event_type": name, "group_by": [{"type": "event", "value": "$revenue"}]}
        get(f"revenue {stripe_type}", "/api/2/events/segmentation", {**base, "m": "sums", "e": json.dumps(revenue)})
    everything = {"start": start, "end": end, "i": "7", "m": "uniques", "e": json.dumps({"event_type": "_all"})}
    get("uniques _all weekly", "/api/2/events/segmentation", everything)
    new = {"se": "_new", "re": "_all", "start": start, "end": end, "i": "7"}
    get("retention _new -> _all weekly", "/api/2/retention", new)
    paid = json.dumps({"event_type": EVENT_PREFIX + "invoice.paid"})
    get(
        "retention invoice.paid monthly",
        "/api/2/retention",
        {"se": paid, "re": paid, "start": start, "end": end, "i": "30"},
    )
    return results


def reprocess(site: Site) -> dict[str, Any]:
    headers = {"Authorization": f"Bearer {site.token}"}
    status, body = http_request(site.server.port, "POST", "/-/reprocess", headers, b"", timeout=300)
    if status != 200:
        raise ChaosError(f"reprocess answered {status}: {body[:300]!r}")
    result: dict[str, Any] = orjson.loads(body)
    return result


@dataclass
class SiteResult:
    loaded_after_s: float
    queries: dict[str, Any]  # as ingested
    store: StoreCheck  # the stopped server's store and log
    restart_s: float  # a clean start on the store as left
    reprocess: dict[str, Any]
    queries_reprocessed: dict[str, Any]  # after `revlens reprocess`: identity links applied to all events


def examine(site: Site, stripe_types: list[str], start: str, end: str) -> SiteResult:
    """With the site's server up: wait for the loader, query, stop, check the store, start, reprocess,
    query again, stop."""
    loaded = wait_loaded(site)
    queries = query_suite(site, stripe_types, start, end)
    site.server.stop()
    store = check_store(site.data_dir)
    site.server.start()
    restart = site.server.wait_healthy()
    summary = reprocess(site)
    again = query_suite(site, stripe_types, start, end)
    site.server.stop()
    return SiteResult(round(loaded, 3), queries, store, round(restart, 3), summary, again)


def compare_queries(a: dict[str, Any], b: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(order-free queries that differ, user-counting queries that differ)."""
    differing = sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k))
    return [k for k in differing if k.startswith(ORDER_FREE)], [k for k in differing if not k.startswith(ORDER_FREE)]


@dataclass
class StoreCheck:
    opens: bool = False
    open_error: str | None = None
    deliveries: int = 0
    delivery_ids: set[str] = field(default_factory=set)
    statuses: dict[str, int] = field(default_factory=dict)
    events: int = 0
    event_ids: set[str] = field(default_factory=set)
    duplicate_insert_ids: int = 0
    events_without_delivery: int = 0
    log_position: int = 0
    log_end: int = 0
    log_records: int = 0
    log_ids: set[str] = field(default_factory=set)
    log_garbage_bytes: int = 0  # bytes in segments after the last good record (must be 0)
    tables: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        return {
            "opens_cleanly": self.opens,
            "open_error": self.open_error,
            "deliveries_rows": self.deliveries,
            "delivery_statuses": self.statuses,
            "events_rows": self.events,
            "distinct_event_ids": len(self.event_ids),
            "duplicate_insert_ids": self.duplicate_insert_ids,
            "events_without_delivery": self.events_without_delivery,
            "store_log_position": self.log_position,
            "log_end": self.log_end,
            "log_records": self.log_records,
            "log_garbage_bytes": self.log_garbage_bytes,
            "table_rows": self.tables,
        }


def check_store(data_dir: Path) -> StoreCheck:
    """Open the stopped server's store (read-only, then read-write with a CHECKPOINT) and its log."""
    check = StoreCheck()
    log_dir = data_dir / "log"
    for path in sorted(log_dir.glob(f"*{delivery_log.SUFFIX}")):
        data = path.read_bytes()
        good = 0
        for entry in delivery_log._scan(data, 0):
            good = entry.end
            check.log_records += 1
            check.log_ids.add(str(orjson.loads(entry.record.body)["id"]))
        check.log_garbage_bytes += len(data) - good
    check.log_end = log_end(log_dir)
    db = str(data_dir / "revlens.duckdb")
    try:
        con = duckdb.connect(db, read_only=True)
        try:
            rows = con.execute("SELECT event_id, status FROM deliveries").fetchall()
            check.deliveries = len(rows)
            check.delivery_ids = {str(r[0]) for r in rows}
            check.statuses = dict(Counter(str(r[1]) for r in rows))
            ids = [str(r[0]) for r in con.execute("SELECT insert_id FROM events").fetchall()]
            check.events = len(ids)
            check.event_ids = set(ids)
            check.duplicate_insert_ids = len(ids) - len(check.event_ids)
            check.events_without_delivery = len(check.event_ids - check.delivery_ids)
            row = con.execute("SELECT value FROM ingest_state WHERE key = 'log_position'").fetchone()
            check.log_position = int(row[0]) if row else 0
            tables = [str(r[0]) for r in con.execute("SELECT table_name FROM duckdb_tables()").fetchall()]
            for table in tables:
                count = con.execute(f'SELECT count(*) FROM "{table}"').fetchone()
                check.tables[table] = int(count[0]) if count else 0
        finally:
            con.close()
        con = duckdb.connect(db)
        try:
            con.execute("CHECKPOINT")
            con.execute("SELECT count(*) FROM events").fetchone()
        finally:
            con.close()
        check.opens = True
    except duckdb.Error as exc:
        check.open_error = f"{type(exc).__name__}: {exc}"
    return check


def exactly_once(
    stats: SendStats, sent: list[Delivery], store: StoreCheck, control: StoreCheck | None
) -> dict[str, Any]:
    """Compare what was acknowledged with what the store holds. Empty lists mean a pass."""
    sent_stored_ids = {d.event_id for d in sent if d.stored_type}
    unsupported_ids = {d.event_id for d in sent if not d.stored_type}
    # Given-up deliveries may or may not have reached the log (a kill after the fsync, before the 200).
    may_exist = stats.unacked & sent_stored_ids
    missing = stats.acked_stored - store.delivery_ids
    extra = store.delivery_ids - stats.acked_stored - may_exist
    result: dict[str, Any] = {
        "acknowledged_stored_ids": len(stats.acked_stored),
        "missing": sorted(missing)[:20],
        "missing_count": len(missing),
        "extra": sorted(extra)[:20],
        "extra_count": len(extra),
        "ignored_types_stored": len(store.delivery_ids & unsupported_ids),
        "sent_stored_ids_never_acknowledged": len(sent_stored_ids - stats.acked_stored),
        "duplicate_insert_ids": store.duplicate_insert_ids,
        "events_without_delivery": store.events_without_delivery,
        "log_ids_not_loaded": len(store.log_ids - store.delivery_ids),
        "loaded_ids_not_in_log": len(store.delivery_ids - store.log_ids),
        "log_garbage_bytes": store.log_garbage_bytes,
        "store_log_position_is_log_end": store.log_position == store.log_end,
    }
    if control is not None:
        result["events_missing_vs_control"] = len(control.event_ids - store.event_ids)
        result["events_extra_vs_control"] = len(store.event_ids - control.event_ids)
    return result


def exactly_once_failures(result: dict[str, Any]) -> list[str]:
    zero = (
        "missing_count",
        "extra_count",
        "ignored_types_stored",
        "duplicate_insert_ids",
        "events_without_delivery",
        "log_ids_not_loaded",
        "loaded_ids_not_in_log",
        "log_garbage_bytes",
        "events_missing_vs_control",
        "events_extra_vs_control",
    )
    failures = [f"{k} = {result[k]}" for k in zero if result.get(k, 0)]
    if not result["store_log_position_is_log_end"]:
        failures.append("store log position is not the log end")
    return failures


# ------------------------------------------------------------------------------------------------- run


def _date(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y%m%d")


def _send(site: Site, deliveries: list[Delivery], cfg: ChaosConfig, rate: float, seed: int) -> SendStats:
    sender = Sender(
        site.server.port, site.url_path, deliveries, cfg.concurrency, rate, cfg.request_timeout, cfg.send_deadline, seed
    )
    return asyncio.run(sender.run())


def run_chaos(cfg: ChaosConfig, progress: bool = True) -> dict[str, Any]:
    """The whole test: crash run, control run(s), comparisons. Returns the report (report["verdict"])."""

    timings: dict[str, float] = {}
    mark = [time.monotonic()]

    def say(message: str) -> None:
        if progress:
            print(message, file=sys.stderr, flush=True)

    def lap(name: str) -> None:
        now = time.monotonic()
        timings[name] = round(now - mark[0], 2)
        mark[0] = now

    started = time.monotonic()
    workdir = cfg.workdir or Path(tempfile.mkdtemp(prefix="revlens-chaos-"))
    workdir.mkdir(parents=True, exist_ok=True)
    report: dict[str, Any] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "config": {k: str(v) if isinstance(v, Path) else v for k, v in asdict(cfg).items()},
        "workdir": str(workdir),
    }
    sites: list[Site] = []
    try:
        say(f"generating ~{cfg.events} events ...")
        deliveries = build_deliveries(cfg.events, cfg.seed, cfg.dup_rate)
        ids = Counter(d.event_id for d in deliveries)
        report["deliveries"] = {
            "slots": len(deliveries),
            "distinct_events": len(ids),
            "sent_twice": sum(1 for n in ids.values() if n > 1),
            "stored_types": sum(1 for d in deliveries if d.stored_type),
            "body_bytes": sum(len(d.body) for d in deliveries),
        }
        created = [int(orjson.loads(d.body)["created"]) for d in deliveries]
        start, end = _date(min(created)), _date(max(created))
        stripe_types = sorted({d.stripe_type for d in deliveries if d.stored_type})

        # Both data folders are set up at once (the CLI's start-up dominates); the control waits.
        with ThreadPoolExecutor(2) as pool:
            made = [
                pool.submit(make_site, cfg.python, workdir / name, workdir / f"{name}.server.log", cfg.in_process_setup)
                for name in ("crash", "control")
            ]
            crash, control = (future.result() for future in made)
        sites += [crash, control]
        lap("generate_and_setup")

        # -- the crash run ---------------------------------------------------------------------------
        crash.server.start()
        report["first_start_s"] = round(crash.server.wait_healthy(), 3)
        chaos = Chaos(crash.server, cfg.kills, cfg.duration, cfg.restart_delay, cfg.seed + 1)
        rate = len(deliveries) / cfg.duration if cfg.duration > 0 else 0.0
        say(f"crash run: {len(deliveries)} deliveries at {rate:.0f}/s, {cfg.kills} kills over {cfg.duration:.0f} s")
        chaos.start()
        try:
            stats = _send(crash, deliveries, cfg, rate, cfg.seed + 2)
        finally:
            chaos.done.set()
            chaos.join(HEALTH_TIMEOUT_S + 40)
        recoveries = [r.recovery_s for r in chaos.records]
        report["kills"] = {
            "planned": len(chaos.times),
            "done": len(chaos.records),
            "during_traffic": sum(1 for r in chaos.records if r.during_traffic),
            "error": chaos.error,
            "records": [asdict(r) for r in chaos.records],
            "recovery_s_max": max(recoveries, default=None),
            "recovery_s_mean": round(sum(recoveries) / len(recoveries), 3) if recoveries else None,
        }
        report["crash_send"] = stats.summary()
        lap("crash_send")
        say(f"crash run sent: {stats.summary()}")
        if crash.server.proc is None or crash.server.proc.poll() is not None:
            crash.server.start()
            crash.server.wait_healthy()
        crash_result = examine(crash, stripe_types, start, end)
        lap("crash_examine")

        # -- the control run: same deliveries, fresh folder, no kills -----------------------------------
        say("control run ...")
        control.server.start()
        control.server.wait_healthy()
        control_stats = _send(control, deliveries, cfg, 0.0, cfg.seed + 3)
        report["control_send"] = control_stats.summary()
        lap("control_send")
        control_result = examine(control, stripe_types, start, end)
        lap("control_examine")

        # -- optionally a second control in another order: is a difference in user counts the order's? ---
        order_diff: list[str] | None = None
        if cfg.order_control:
            say("order control run (shuffled, no kills) ...")
            shuffled = list(deliveries)
            random.Random(cfg.seed + 4).shuffle(shuffled)
            other = make_site(cfg.python, workdir / "order", workdir / "order.server.log", cfg.in_process_setup)
            sites.append(other)
            other.server.start()
            other.server.wait_healthy()
            _send(other, shuffled, cfg, 0.0, cfg.seed + 5)
            other_result = examine(other, stripe_types, start, end)
            free, users = compare_queries(other_result.queries, control_result.queries)
            order_diff = free + users

        # -- verdict -----------------------------------------------------------------------------------
        for name, result in (("crash", crash_result), ("control", control_result)):
            report[f"{name}_store"] = result.store.summary()
            report[f"{name}_loaded_after_s"] = result.loaded_after_s
            report[f"{name}_clean_restart_s"] = result.restart_s
            report[f"{name}_reprocess"] = result.reprocess
        report["exactly_once"] = exactly_once(stats, deliveries, crash_result.store, control_result.store)
        report["control_exactly_once"] = exactly_once(control_stats, deliveries, control_result.store, None)
        free, users = compare_queries(crash_result.queries, control_result.queries)
        free_r, users_r = compare_queries(crash_result.queries_reprocessed, control_result.queries_reprocessed)
        bad = [
            k
            for q in (crash_result.queries, crash_result.queries_reprocessed, control_result.queries)
            for k, v in q.items()
            if v["status"] != 200
        ]
        report["queries"] = {
            "compared": len(crash_result.queries),
            "range": [start, end],
            "as_ingested_order_free_differing": free,
            "as_ingested_user_counts_differing": users,
            "after_reprocess_differing": free_r + users_r,
            "shuffled_control_vs_control_differing": order_diff,
            "non_200": sorted(set(bad)),
        }
        if users:
            report["queries"]["first_user_count_difference_as_ingested"] = {
                "name": users[0],
                "crash": crash_result.queries[users[0]],
                "control": control_result.queries[users[0]],
            }
        failures = [f"crash run: {f}" for f in exactly_once_failures(report["exactly_once"])]
        failures += [f"control run: {f}" for f in exactly_once_failures(report["control_exactly_once"])]
        if not crash_result.store.opens:
            failures.append(f"crash store does not open cleanly: {crash_result.store.open_error}")
        if chaos.error:
            failures.append(f"chaos thread: {chaos.error}")
        if len(chaos.records) != cfg.kills:
            failures.append(f"{len(chaos.records)} kills done of {cfg.kills}")
        for name, s in (("crash", stats), ("control", control_stats)):
            if s.unexpected:
                failures.append(f"{name} run: {len(s.unexpected)} unexpected answers, e.g. {s.unexpected[0]}")
            if s.given_up:
                failures.append(f"{name} run: {s.given_up} deliveries never acknowledged")
            if s.status.get(500):
                failures.append(f"{name} run: {s.status[500]} answers of 500")
        if free:
            failures.append(f"order-free query results differ from the crash-free run: {free[:5]}")
        if free_r or users_r:
            failures.append(f"query results differ after reprocess: {(free_r + users_r)[:5]}")
        if bad:
            failures.append(f"queries not answered 200: {sorted(set(bad))[:5]}")
        report["failures"] = failures
        report["verdict"] = "PASS" if not failures else "FAIL"
    finally:
        for site in sites:
            site.server.stop()
        report["runtime_s"] = round(time.monotonic() - started, 1)
        report["timings_s"] = timings
        if not cfg.keep and cfg.workdir is None and report.get("verdict") == "PASS":
            shutil.rmtree(workdir, ignore_errors=True)
    return report


# ------------------------------------------------------------------------------------------------ main


def print_summary(report: dict[str, Any]) -> None:
    send = report.get("crash_send", {})
    kills = report.get("kills", {})
    once = report.get("exactly_once", {})
    q = report.get("queries", {})
    lines = [
        f"deliveries sent        {send.get('deliveries')} ({report.get('deliveries', {}).get('distinct_events')} "
        f"distinct events, {report.get('deliveries', {}).get('sent_twice')} sent twice)",
        f"acknowledged           {send.get('acknowledged')} (stored-type ids {send.get('acknowledged_stored_ids')})",
        f"HTTP attempts          {send.get('requests')} (retries {send.get('retries')}, connection errors "
        f"{send.get('connection_errors')}, timeouts {send.get('timeouts')}, statuses {send.get('status')})",
        f"kills                  {kills.get('done')} of {kills.get('planned')} "
        f"({kills.get('during_traffic')} while deliveries were in flight)",
        "recovery after restart " + ", ".join(f"{r['recovery_s']:.2f}s" for r in kills.get("records", [])),
        f"missing / extra / dup  {once.get('missing_count')} / {once.get('extra_count')} / "
        f"{once.get('duplicate_insert_ids')}",
        f"queries (x{q.get('compared')}) order-free differing as ingested {q.get('as_ingested_order_free_differing')}, "
        f"user counts differing as ingested {q.get('as_ingested_user_counts_differing')}, "
        f"differing after reprocess {q.get('after_reprocess_differing')}, "
        f"shuffled control vs control {q.get('shuffled_control_vs_control_differing')}",
        f"store opens cleanly    {report.get('crash_store', {}).get('opens_cleanly')}",
        f"runtime                {report.get('runtime_s')} s",
        f"verdict                {report.get('verdict')}",
    ]
    for failure in report.get("failures", []):
        lines.append(f"  - {failure}")
    print("\n".join(lines))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="CI size: ~3,000 deliveries, 3 kills, 10 s")
    p.add_argument("--events", type=int, help="events generated (default 40,000; quick 3,000)")
    p.add_argument("--kills", type=int, help="SIGKILLs (default 10; quick 3)")
    p.add_argument("--duration", type=float, help="seconds the first attempts are spread over (default 120)")
    p.add_argument("--concurrency", type=int, default=64, help="concurrent connections of the sender")
    p.add_argument("--dup-rate", type=float, default=0.03, help="fraction also sent at once on a second connection")
    p.add_argument("--seed", type=int, default=11)
    p.add_argument("--workdir", type=Path, help="data folders here (kept); default a temporary folder")
    p.add_argument("--keep", action="store_true", help="keep the temporary folder even on PASS")
    p.add_argument("--no-order-control", action="store_true", help="skip the shuffled crash-free run")
    p.add_argument("--no-save", action="store_true", help="do not write bench/results/chaos-<UTC>.json")
    return p.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> ChaosConfig:
    quick = bool(args.quick)
    return ChaosConfig(
        events=args.events or (3000 if quick else 40_000),
        seed=args.seed,
        kills=args.kills if args.kills is not None else (3 if quick else 10),
        duration=args.duration or (10.0 if quick else 120.0),
        concurrency=args.concurrency,
        dup_rate=args.dup_rate,
        workdir=args.workdir,
        keep=args.keep,
        order_control=not quick and not args.no_order_control,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = config_from_args(args)
    try:
        report = run_chaos(cfg)
    except (ChaosError, OSError, subprocess.SubprocessError) as exc:
        print(f"chaos: could not run: {exc}", file=sys.stderr)
        return 2
    print_summary(report)
    if not args.no_save:
        RESULTS_DIR.mkdir(exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        path = RESULTS_DIR / f"chaos-{stamp}.json"
        path.write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2, default=_json_default))
        print(f"report: {path}")
    return 0 if report.get("verdict") == "PASS" else 1


def _json_default(value: Any) -> Any:
    if isinstance(value, set | frozenset):
        return sorted(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(type(value).__name__)


if __name__ == "__main__":
    sys.exit(main())
