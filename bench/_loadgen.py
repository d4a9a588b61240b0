"""Load generator for bench/ingest.py: signed Stripe deliveries over keep-alive HTTP/1.1, one phase per run.

Why a hand-written client: the machine has two cores, and the server gets one of them. A general HTTP
client (httpx, aiohttp) spends more CPU per request than a lean server does to answer it, so with such a
client the benchmark would measure the client. This one does the minimum: every request (headers, body,
Stripe-Signature) is serialized and signed before the timed phase, a send is one `writer.write` of
pre-built bytes, and a response is read by parsing the status line, the headers and Content-Length (or
chunked framing). It runs on asyncio streams (uvloop when importable) in its own process, which
bench/ingest.py can pin to core 1 while the server is pinned to core 0. It is bench code, not product
code: it only talks to the server the orchestrator started on 127.0.0.1, and never retries a request;
every non-2xx answer and every connection error is counted.

Protocol: a JSON phase spec on stdin (see `Spec`), a JSON result on stdout, progress on stderr.

Modes:
- closed: `connections` workers, each sends the next request as soon as its previous answer arrived.
- open: requests are scheduled on a clock at `rate`/s and handed to whichever connection is free; latency
  is measured from the scheduled send time, so a stalled server cannot hide its stall by slowing the
  sender (coordinated omission).
- open with `samples` > 0: about that many acknowledged events, spread evenly over the phase, are also
  polled on the admin route `/-/deliveries/<id>` until they are queryable, to measure the
  delivered-to-queryable delay. Only events of types revlens normalizes are sampled (others are kept
  as raw deliveries but never become queryable analytics events).
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import json
import math
import os
import random
import resource
import secrets
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, TypedDict

try:  # orjson is a revlens dependency; the stdlib is the fallback.
    import orjson

    def _dumps(obj: Any) -> bytes:
        return orjson.dumps(obj, option=orjson.OPT_INDENT_2)

    def _loads(data: bytes) -> Any:
        return orjson.loads(data)

except ImportError:  # pragma: no cover

    def _dumps(obj: Any) -> bytes:
        return json.dumps(obj, indent=2).encode()

    def _loads(data: bytes) -> Any:
        return json.loads(data)


# Re-sign a pre-built request once its signature is this old (Stripe's tolerance is 300 s).
RESIGN_AFTER_S = 240.0
# How long in-flight requests may take after the phase ends before they are counted as unfinished.
GRACE_S = 10.0
# Distinct events taken from the demo generator per phase; deliveries beyond this reuse an event's body
# under a new, unique event id (so a long run does not hold millions of bodies in memory).
DEFAULT_POOL = 200_000
GENERATOR_CHUNK = 20_000
# Delivery states (GET /-/deliveries/<id> "status") after which an event will not become queryable.
FINAL_STATES = frozenset({"parked", "failed", "ignored", "rejected"})
# A keep-alive connection idle this long is replaced before use rather than risk a server-side close.
IDLE_REOPEN_S = 2.0
# Stripe's own headers on webhook deliveries (besides Host, Content-Length and Stripe-Signature).
STRIPE_HEADERS = (
    b"User-Agent: Stripe/1.0 (+https://stripe.com/docs/webhooks)\r\n"
    b"Accept: */*; q=0.5, application/xml\r\n"
    b"Cache-Control: no-cache\r\n"
    b"Content-Type: application/json; charset=utf-8\r\n"
)


class Spec(TypedDict, total=False):
    mode: str  # "closed" or "open"
    host: str
    port: int
    url_path: str
    signing_secret: str
    admin_token: str
    connections: int
    rate: float  # open mode: offered deliveries per second
    warmup: float  # seconds excluded from the figures
    duration: float  # measured seconds after the warm-up
    max_rate: float  # closed mode: requests pre-built = (warmup + duration) * max_rate
    seed: int
    pool: int
    stored_only: bool  # send only event types revlens stores (no "ignored" acknowledgements)
    samples: int  # open mode: poll about this many acknowledged events until queryable (0 = off)
    server_pid: int  # to read the server's CPU time around the timed part
    poll_interval: float
    poll_timeout: float
    cpu: int | None  # pin this process to that core


# --------------------------------------------------------------------------------------------- events


def _fallback_events(n: int, seed: int) -> list[dict[str, Any]]:
    """`payment_intent.succeeded` envelopes shaped like Stripe's (API 2024-06-20), if no generator exists."""
    rng = random.Random(seed)
    now = int(time.time())
    customers = [f"cus_{rng.getrandbits(64):016x}"[:18] for _ in range(max(1, n // 10))]
    out: list[dict[str, Any]] = []
    for i in range(n):
        amount = rng.choice([500, 900, 1200, 2000, 2900, 4900, 9900, 19900])
        pi = f"pi_3P{rng.getrandbits(96):024x}"
        ch = f"ch_3P{rng.getrandbits(96):024x}"
        pm = f"pm_1P{rng.getrandbits(96):024x}"
        created = now - rng.randrange(0, 3600)
        obj = {
            "id": pi,
            "object": "payment_intent",
            "amount": amount,
            "amount_capturable": 0,
            "amount_details": {"tip": {}},
            "amount_received": amount,
            "application": None,
            "application_fee_amount": None,
            "automatic_payment_methods": {"allow_redirects": "always", "enabled": True},
            "canceled_at": None,
            "cancellation_reason": None,
            "capture_method": "automatic",
            "client_secret": f"{pi}_secret_{rng.getrandbits(128):032x}",
            "confirmation_method": "automatic",
            "created": created,
            "currency": "usd",
            "customer": rng.choice(customers),
            "description": "Subscription update",
            "invoice": f"in_1P{rng.getrandbits(96):024x}",
            "last_payment_error": None,
            "latest_charge": ch,
            "livemode": False,
            "metadata": {"order_id": str(100000 + i), "plan": rng.choice(["starter", "pro", "team"])},
            "next_action": None,
            "on_behalf_of": None,
            "payment_method": pm,
            "payment_method_configuration_details": None,
            "payment_method_options": {
                "card": {
                    "installments": None,
                    "mandate_options": None,
                    "network": None,
                    "request_three_d_secure": "automatic",
                },
                "link": {"persistent_token": None},
            },
            "payment_method_types": ["card", "link"],
            "processing": None,
            "receipt_email": None,
            "review": None,
            "setup_future_usage": "off_session",
            "shipping": None,
            "source": None,
            "statement_descriptor": None,
            "statement_descriptor_suffix": None,
            "status": "succeeded",
            "transfer_data": None,
            "transfer_group": None,
        }
        out.append(
            {
                "id": f"evt_3P{rng.getrandbits(96):024x}",
                "object": "event",
                "api_version": "2024-06-20",
                "created": created + 1,
                "data": {"object": obj},
                "livemode": False,
                "pending_webhooks": 1,
                "request": {"id": f"req_{rng.getrandbits(64):016x}", "idempotency_key": None},
                "type": "payment_intent.succeeded",
            }
        )
    return out


Template = tuple[bytes, bytes, str]  # (JSON body, quoted event id in it, event type)


def load_templates(n: int, seed: int) -> tuple[list[Template], str]:
    """n events, from revlens' demo generator when it exists.

    The generator works on whole customer lifecycles held in memory, so large pools are made in chunks
    of GENERATOR_CHUNK events with distinct seeds and serialized straight away.
    """
    templates: list[Template] = []
    try:
        from revlens.demo.generator import DemoConfig, generate_events
    except ImportError as exc:
        print(f"loadgen: demo generator not importable ({exc}); using built-in events", file=sys.stderr)
        events = _fallback_events(n, seed)
        templates = [(_dumps(ev), b'"%s"' % str(ev["id"]).encode(), ev["type"]) for ev in events]
        return templates, "bench fallback (payment_intent.succeeded)"
    chunk = 0
    while len(templates) < n:
        size = min(GENERATOR_CHUNK, n - len(templates))
        events = generate_events(DemoConfig(events=size, seed=seed * 1000 + chunk))
        if not events:
            raise SystemExit("loadgen: the demo generator returned no events")
        templates.extend((_dumps(ev), b'"%s"' % str(ev["id"]).encode(), str(ev["type"])) for ev in events)
        chunk += 1
    return templates[:n], "revlens.demo.generator"


class Deliveries:
    """Pre-built, signed POST requests, each with a distinct event id."""

    def __init__(self, spec: Spec, count: int) -> None:
        from revlens.webhook.signature import sign

        self._sign = sign
        self.secret = spec["signing_secret"]
        self.path = spec["url_path"].encode()
        self.host = b"%s:%d" % (spec["host"].encode(), spec["port"])
        # Distinct per phase and per run, so no delivery is a duplicate of an earlier one.
        self.tag = secrets.token_hex(5)
        t0 = time.perf_counter()
        pool = min(count, spec.get("pool", DEFAULT_POOL))
        self.templates, self.source = load_templates(pool, spec.get("seed", 1))
        supported = _supported_types()
        if spec.get("stored_only"):
            self.templates = [t for t in self.templates if supported(t[2])]
            if not self.templates:
                raise SystemExit("loadgen: no event of a stored type in the pool")
        # Share of deliveries the server writes to its log; the rest it acknowledges as "ignored".
        self.stored_fraction = sum(1 for t in self.templates if supported(t[2])) / len(self.templates)
        self.generate_seconds = time.perf_counter() - t0
        self.signed_at = int(time.time())
        self.requests = [self.build(i, self.signed_at) for i in range(count)]
        self.build_seconds = time.perf_counter() - t0
        self.body_bytes_mean = sum(len(t[0]) for t in self.templates) / len(self.templates)
        self.distinct_types = len({t[2] for t in self.templates})

    def __len__(self) -> int:
        return len(self.requests)

    def event_id(self, i: int) -> str:
        return f"evt_{self.tag}{i:014d}"

    def build(self, i: int, timestamp: int) -> bytes:
        body, old_id, _type = self.templates[i % len(self.templates)]
        body = body.replace(old_id, b'"%s"' % self.event_id(i).encode(), 1)
        sig = self._sign(body, self.secret, timestamp).encode()
        return b"".join(
            (
                b"POST ",
                self.path,
                b" HTTP/1.1\r\nHost: ",
                self.host,
                b"\r\n",
                STRIPE_HEADERS,
                b"Stripe-Signature: ",
                sig,
                b"\r\nContent-Length: %d\r\n\r\n" % len(body),
                body,
            )
        )

    def event_type(self, i: int) -> str:
        return self.templates[i % len(self.templates)][2]

    def get(self, i: int) -> bytes:
        if time.time() - self.signed_at < RESIGN_AFTER_S:
            return self.requests[i]
        return self.build(i, int(time.time()))  # only in runs longer than ~4 minutes


# ----------------------------------------------------------------------------------------------- http


class ResponseError(Exception):
    """The server's answer could not be parsed as HTTP/1.1."""


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    try:
        status = int(head[9:12])
    except ValueError:
        raise ResponseError(f"bad status line {head[:40]!r}") from None
    lower = head.lower()
    keep_alive = b"\r\nconnection: close" not in lower
    pos = lower.find(b"\r\ncontent-length:")
    if pos >= 0:
        end = lower.index(b"\r\n", pos + 2)
        length = int(lower[pos + 17 : end])
        body = await reader.readexactly(length) if length else b""
    elif b"\r\ntransfer-encoding: chunked" in lower:
        parts: list[bytes] = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";", 1)[0], 16)
            if size == 0:
                await reader.readuntil(b"\r\n")  # no trailers expected
                break
            parts.append(await reader.readexactly(size))
            await reader.readexactly(2)
        body = b"".join(parts)
    elif status in (204, 304) or status < 200:
        body = b""
    else:
        body = await reader.read()
        keep_alive = False
    return status, body, keep_alive


class Conn:
    """One keep-alive connection."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.last_used = time.perf_counter()

    def stale(self) -> bool:
        """Idle long enough that the server may be closing it (uvicorn's keep-alive timeout is 5 s)."""
        return time.perf_counter() - self.last_used > IDLE_REOPEN_S

    @classmethod
    async def open(cls, host: str, port: int) -> Conn:
        reader, writer = await asyncio.open_connection(host, port)
        return cls(reader, writer)

    async def request(self, data: bytes) -> tuple[int, bytes, bool]:
        self.writer.write(data)
        answer = await read_response(self.reader)
        self.last_used = time.perf_counter()
        return answer

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self.writer.close()


# --------------------------------------------------------------------------------------------- phases


@dataclass
class Record:
    """Per-request outcomes, in completion order (parallel lists keep the hot path cheap)."""

    done: list[float] = field(default_factory=list)  # completion time, s since phase start
    latency: list[float] = field(default_factory=list)  # s
    status: list[int] = field(default_factory=list)
    lag: list[float] = field(default_factory=list)  # open mode: actual send - scheduled send, s
    errors: dict[str, int] = field(default_factory=dict)
    error_samples: list[str] = field(default_factory=list)
    bad_bodies: list[str] = field(default_factory=list)

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1
        if len(self.error_samples) < 10:
            self.error_samples.append(f"{kind}: {detail}")


@dataclass
class Queryable:
    lags: list[float] = field(default_factory=list)
    never: list[str] = field(default_factory=list)
    sampled: int = 0
    final: dict[str, int] = field(default_factory=dict)
    polls: int = 0
    poll_errors: dict[str, int] = field(default_factory=dict)
    poll_error_samples: list[str] = field(default_factory=list)
    last_body: dict[str, Any] = field(default_factory=dict)


class Phase:
    def __init__(self, spec: Spec, deliveries: Deliveries) -> None:
        self.spec = spec
        self.d = deliveries
        self.host = spec["host"]
        self.port = spec["port"]
        self.warmup = float(spec.get("warmup", 0.0))
        self.duration = float(spec["duration"])
        self.rate = float(spec.get("rate", 0.0))
        self.rec = Record()
        self.q = Queryable()
        self.next = 0
        self.exhausted = False
        self.t0 = 0.0
        self.last_ok: tuple[float, int] = (-1.0, -1)
        self.pollers: set[asyncio.Task[None]] = set()
        self.poll_pool: list[Conn] = []
        self.sampled = self._pick_samples(int(spec.get("samples", 0)))
        self.client_cpu_timed = 0.0
        self.client_wall_timed = 0.0
        self.server_cpu_timed: float | None = None

    def _pick_samples(self, samples: int) -> frozenset[int]:
        """Indices of about `samples` deliveries, evenly spread, of types revlens turns into events."""
        if samples <= 0:
            return frozenset()
        is_supported = _supported_types()
        eligible = [i for i in range(len(self.d)) if is_supported(self.d.event_type(i))]
        step = max(1, len(eligible) // samples)
        return frozenset(eligible[::step][:samples])

    # -- senders

    async def _connect(self) -> Conn | None:
        try:
            return await Conn.open(self.host, self.port)
        except OSError as exc:
            self.rec.error("connect", repr(exc))
            await asyncio.sleep(0.01)
            return None

    async def _send(self, conn: Conn, i: int, scheduled: float | None) -> bool:
        """Send delivery i on conn and record it; False if the connection must be dropped."""
        clock = time.perf_counter
        data = self.d.get(i)
        t_send = clock()
        try:
            status, body, keep_alive = await conn.request(data)
        except (OSError, asyncio.IncompleteReadError, asyncio.LimitOverrunError, ResponseError) as exc:
            self.rec.error("connection", repr(exc))
            return False
        t_done = clock()
        # Open loop: from the scheduled time, or from the actual send when the timer fired early
        # (uvloop's timers have 1 ms granularity).
        start = t_send if scheduled is None else min(scheduled, t_send)
        rec = self.rec
        rec.done.append(t_done - self.t0)
        rec.latency.append(t_done - start)
        rec.status.append(status)
        if scheduled is not None:
            rec.lag.append(t_send - scheduled)
        if 200 <= status < 300:
            if t_done > self.last_ok[0]:
                self.last_ok = (t_done, i)
            if i in self.sampled:
                self.q.sampled += 1
                task = asyncio.create_task(self._poll(self.d.event_id(i), t_done))
                self.pollers.add(task)
                task.add_done_callback(self.pollers.discard)
        elif len(rec.bad_bodies) < 5:
            rec.bad_bodies.append(f"{status}: {body[:300]!r}")
        return keep_alive

    async def closed_worker(self, end: float) -> None:
        conn: Conn | None = None
        clock = time.perf_counter
        n = len(self.d)
        try:
            while clock() < end:
                if conn is None:
                    conn = await self._connect()
                    continue
                i = self.next
                if i >= n:
                    self.exhausted = True
                    break
                self.next = i + 1
                if not await self._send(conn, i, None):
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    async def open_worker(self) -> None:
        conn: Conn | None = None
        clock = time.perf_counter
        n = len(self.d)
        rate = self.rate
        try:
            while True:
                i = self.next
                if i >= n:
                    break
                self.next = i + 1
                scheduled = self.t0 + i / rate
                delay = scheduled - clock()
                if delay > 0:
                    await asyncio.sleep(delay)
                if conn is not None and conn.stale():
                    conn.close()
                    conn = None
                if conn is None:
                    conn = await self._connect()
                    if conn is None:  # counted as a connect error; this delivery is not retried
                        continue
                if not await self._send(conn, i, scheduled):
                    conn.close()
                    conn = None
        finally:
            if conn is not None:
                conn.close()

    # -- queryable polling

    async def _poll(self, event_id: str, acked: float) -> None:
        clock = time.perf_counter
        q = self.q
        interval = float(self.spec.get("poll_interval", 0.02))
        deadline = acked + float(self.spec.get("poll_timeout", 30.0))
        req = (
            f"GET /-/deliveries/{event_id} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
            f"Authorization: Bearer {self.spec['admin_token']}\r\nAccept: application/json\r\n\r\n"
        ).encode()
        conn: Conn | None = None
        try:
            while clock() < deadline:
                started = clock()
                if conn is None:
                    while self.poll_pool and conn is None:
                        conn = self.poll_pool.pop()
                        if conn.stale():
                            conn.close()
                            conn = None
                    if conn is None:
                        conn = await Conn.open(self.host, self.port)
                try:
                    status, body, keep_alive = await conn.request(req)
                except (OSError, asyncio.IncompleteReadError, ResponseError) as exc:
                    self._poll_error("connection", repr(exc))
                    conn.close()
                    conn = None
                    await asyncio.sleep(interval)
                    continue
                q.polls += 1
                now = clock()
                if not keep_alive:
                    conn.close()
                    conn = None
                if status == 200:
                    try:
                        doc = _loads(body)
                    except ValueError:
                        doc = None
                    if isinstance(doc, dict) and doc.get("queryable", True) is not False:
                        q.lags.append(now - acked)
                        q.last_body = doc
                        return
                    state = str(doc.get("status")) if isinstance(doc, dict) else "unparsable"
                    if state in FINAL_STATES:  # stored as a raw delivery that will never be queryable
                        q.final[state] = q.final.get(state, 0) + 1
                        q.never.append(event_id)
                        return
                elif status != 404:
                    self._poll_error(f"http {status}", body[:200].decode("utf-8", "replace"))
                await asyncio.sleep(max(0.0, interval - (clock() - started)))
            q.never.append(event_id)
        except OSError as exc:
            self._poll_error("connect", repr(exc))
            q.never.append(event_id)
        finally:
            if conn is not None:
                self.poll_pool.append(conn)

    def _poll_error(self, kind: str, detail: str) -> None:
        q = self.q
        q.poll_errors[kind] = q.poll_errors.get(kind, 0) + 1
        if len(q.poll_error_samples) < 5:
            q.poll_error_samples.append(f"{kind}: {detail}")

    # -- driver

    async def run(self) -> dict[str, Any]:
        mode = self.spec["mode"]
        conns = int(self.spec.get("connections", 1))
        cpu0 = time.process_time()
        server0 = _proc_cpu(self.spec.get("server_pid"))
        self.t0 = time.perf_counter()
        end = self.t0 + self.warmup + self.duration
        if mode == "closed":
            tasks = [asyncio.create_task(self.closed_worker(end)) for _ in range(conns)]
        else:
            tasks = [asyncio.create_task(self.open_worker()) for _ in range(conns)]
        _done, pending = await asyncio.wait(tasks, timeout=self.warmup + self.duration + GRACE_S)
        unfinished = len(pending)  # each pending worker has exactly one request in flight
        for task in pending:
            task.cancel()
        if unfinished:
            self.rec.errors["unfinished"] = self.rec.errors.get("unfinished", 0) + unfinished
        sent_by_end = self.next
        self.client_cpu_timed = time.process_time() - cpu0
        self.client_wall_timed = time.perf_counter() - self.t0
        server1 = _proc_cpu(self.spec.get("server_pid"))
        self.server_cpu_timed = server1 - server0 if server0 is not None and server1 is not None else None
        if self.pollers:
            timeout = float(self.spec.get("poll_timeout", 30.0)) + GRACE_S
            _done2, still = await asyncio.wait(set(self.pollers), timeout=timeout)
            for task in still:
                task.cancel()
        for conn in self.poll_pool:
            conn.close()
        await asyncio.sleep(0)
        return self.summary(sent_by_end)

    def summary(self, sent: int) -> dict[str, Any]:
        rec = self.rec
        lo, hi = self.warmup, self.warmup + self.duration
        if self.spec["mode"] == "open":
            # Open loop: judge by scheduled time, so requests still queued at the end count too.
            sched = [d - lat for d, lat in zip(rec.done, rec.latency, strict=True)]
            in_window = [lo <= s < hi for s in sched]
        else:
            in_window = [lo <= d < hi for d in rec.done]
        rows = zip(rec.latency, rec.status, in_window, strict=True)
        ok_lat = [lat for lat, st, w in rows if w and 200 <= st < 300]
        statuses: dict[str, int] = {}
        for st, w in zip(rec.status, in_window, strict=True):
            if w:
                statuses[str(st)] = statuses.get(str(st), 0) + 1
        non_2xx = sum(c for s, c in statuses.items() if not s.startswith("2"))
        measured = self.duration
        if self.exhausted and rec.done:
            measured = max(1e-9, min(hi, max(rec.done)) - lo)
        # Where the slowest requests sat in the phase, and completions per second: shows stalls.
        starts = [d - lat for d, lat in zip(rec.done, rec.latency, strict=True)]
        worst = sorted(zip(rec.latency, starts, strict=True), reverse=True)[:10]
        per_second: list[int] = [0] * (math.ceil(hi) + 1)
        for d, st in zip(rec.done, rec.status, strict=True):
            if 200 <= st < 300 and 0 <= d < len(per_second):
                per_second[int(d)] += 1
        lag_ms = _stats([x * 1000 for x, w in zip(rec.lag, in_window, strict=True) if w]) if rec.lag else {}
        ru = resource.getrusage(resource.RUSAGE_SELF)
        last_ok_id = self.d.event_id(self.last_ok[1]) if self.last_ok[1] >= 0 else None
        out: dict[str, Any] = {
            "mode": self.spec["mode"],
            "connections": int(self.spec.get("connections", 1)),
            "rate_offered": self.rate or None,
            "warmup_s": self.warmup,
            "duration_s": measured,
            "requests_built": len(self.d),
            "requests_sent": sent,
            "exhausted_prebuilt_requests": self.exhausted,
            "ok_in_window": len(ok_lat),
            "throughput_per_s": len(ok_lat) / measured,
            "statuses_in_window": statuses,
            "non_2xx_in_window": non_2xx,
            "non_2xx_total": sum(1 for st in rec.status if not 200 <= st < 300),
            "errors": rec.errors,
            "error_samples": rec.error_samples,
            "bad_response_samples": rec.bad_bodies,
            "latency_ms": _stats([x * 1000 for x in ok_lat]),
            "send_lag_ms": lag_ms,
            "slowest": [{"start_s": round(t, 4), "latency_ms": round(lat * 1000, 3)} for lat, t in worst],
            "ok_per_second": per_second,
            "client_cpu_s": ru.ru_utime + ru.ru_stime,
            # The server process (all threads) over the same span, as % of one core.
            "server_cpu_pct_timed": (
                None
                if self.server_cpu_timed is None
                else round(100 * self.server_cpu_timed / max(self.client_wall_timed, 1e-9), 1)
            ),
            # CPU of the sending part only (no start-up or request building), as % of one core.
            "client_cpu_pct_timed": round(100 * self.client_cpu_timed / max(self.client_wall_timed, 1e-9), 1),
            "client_max_rss_mb": ru.ru_maxrss / 1024,
            "event_source": self.d.source,
            "event_templates": len(self.d.templates),
            "event_types_seen": self.d.distinct_types,
            "stored_type_fraction": round(self.d.stored_fraction, 4),
            "body_bytes_mean": round(self.d.body_bytes_mean, 1),
            "build_seconds": round(self.d.build_seconds, 3),
            "last_ok_event_id": last_ok_id,
        }
        if self.sampled:
            q = self.q
            out["queryable"] = {
                "sampled": q.sampled,
                "unresolved_at_end": q.sampled - len(q.lags) - len(q.never),
                "became_queryable": len(q.lags),
                "never_queryable": len(q.never),
                "never_samples": q.never[:5],
                "never_by_final_status": q.final,
                "lag_ms": _stats([x * 1000 for x in q.lags]),
                "polls": q.polls,
                "poll_interval_ms": float(self.spec.get("poll_interval", 0.02)) * 1000,
                "poll_errors": q.poll_errors,
                "poll_error_samples": q.poll_error_samples,
                "example_body": q.last_body,
            }
        return out


def _supported_types() -> Callable[[str], bool]:
    """revlens' own test of which event types it stores (the rest it acknowledges as ignored)."""
    try:
        from revlens.normalize.events import is_supported
    except ImportError:  # pragma: no cover - an older tree: treat every type as stored
        return lambda stripe_type: True
    return is_supported


def _proc_cpu(pid: int | None) -> float | None:
    """utime + stime of process `pid`, all its threads included, in seconds."""
    if not pid:
        return None
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _stats(values: Sequence[float]) -> dict[str, float]:
    """Nearest-rank percentiles, in the unit of `values`."""
    if not values:
        return {}
    xs = sorted(values)
    n = len(xs)

    def pct(p: float) -> float:
        return xs[min(n - 1, max(0, math.ceil(p / 100 * n) - 1))]

    return {
        "n": n,
        "mean": round(sum(xs) / n, 4),
        "p50": round(pct(50), 4),
        "p90": round(pct(90), 4),
        "p95": round(pct(95), 4),
        "p99": round(pct(99), 4),
        "p999": round(pct(99.9), 4),
        "max": round(xs[-1], 4),
        "min": round(xs[0], 4),
    }


def run(spec: Spec) -> dict[str, Any]:
    cpu = spec.get("cpu")
    if cpu is not None:
        os.sched_setaffinity(0, {cpu})
    total = spec.get("warmup", 0.0) + spec["duration"]
    if spec["mode"] == "closed":
        count = math.ceil(total * spec.get("max_rate", 10000.0))
    else:
        count = math.ceil(total * spec["rate"])
    deliveries = Deliveries(spec, count)
    print(
        f"loadgen: {count} requests built in {deliveries.build_seconds:.1f}s "
        f"({deliveries.source}, {deliveries.body_bytes_mean:.0f} B bodies)",
        file=sys.stderr,
    )
    gc.collect()
    gc.freeze()  # the pre-built requests never need scanning; keeps collector pauses off the clock
    factory: Callable[[], asyncio.AbstractEventLoop] | None = None
    loop_name = "asyncio"
    try:
        import uvloop

        factory = uvloop.new_event_loop
        loop_name = "uvloop"
    except ImportError:  # pragma: no cover
        pass
    with asyncio.Runner(loop_factory=factory) as runner:
        result = runner.run(Phase(spec, deliveries).run())
    result["client_loop"] = loop_name
    result["client_cpu_affinity"] = sorted(os.sched_getaffinity(0))
    return result


def main() -> None:
    spec: Spec = json.loads(sys.stdin.read())
    result = run(spec)
    sys.stdout.write(json.dumps(result))
    sys.stdout.flush()


if __name__ == "__main__":
    main()
