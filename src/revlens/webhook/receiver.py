"""The webhook route, `POST /webhooks/stripe/<endpoint_id>`, as a plain ASGI app (it is the hot path).

raw body -> size limit -> Stripe-Signature (official library) -> JSON -> envelope -> keep or ignore
-> append to the durable log (group commit) -> 200. Answers, in order of the checks:

| status | when | stored |
|---|---|---|
| 404 | unknown endpoint | nothing |
| 405 | not POST | nothing |
| 413 | body over the limit | nothing |
| 400 | missing, bad or stale signature | a counter |
| 400 | body not JSON, or JSON but not a Stripe event | a counter |
| 200 | event type that is not revenue-related (`ignored`) | a counter |
| 200 | kept event (`accepted`, or `parked` for another API version) | the raw delivery, on disk |
| 503 | the delivery log cannot be written (disk full, I/O error) | nothing; Stripe retries |
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import UTC, datetime
from typing import Any

import orjson

from revlens import STRIPE_API_VERSION
from revlens.errors import error_bytes
from revlens.ingest.committer import GroupCommitter
from revlens.ingest.loader import Counters
from revlens.ingest.log import LogError, Record
from revlens.normalize import EnvelopeError, is_supported, parse_envelope
from revlens.observability import Metrics
from revlens.webhook.signature import SignatureError, verify

logger = logging.getLogger("revlens.webhook")

PREFIX = "/webhooks/stripe/"

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_JSON = [(b"content-type", b"application/json")]
_ACCEPTED = orjson.dumps({"ok": True, "status": "accepted"})
_PARKED = orjson.dumps({"ok": True, "status": "parked", "reason": f"api_version is not {STRIPE_API_VERSION}"})
_IGNORED = orjson.dumps({"ok": True, "status": "ignored", "reason": "not a revenue event"})


class BodyTooLargeError(Exception):
    pass


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _JSON})
    await send({"type": "http.response.body", "body": body})


async def _read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                if int(value) > limit:
                    raise BodyTooLargeError
            except ValueError:
                pass
    chunks: list[bytes] = []
    size = 0
    more = True
    while more:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise BodyTooLargeError
        chunks.append(chunk)
        more = message.get("more_body", False)
    return b"".join(chunks)


def _header(scope: Scope, wanted: bytes) -> str | None:
    for name, value in scope.get("headers", ()):
        if name == wanted:
            return str(value.decode("latin-1"))
    return None


class WebhookReceiver:
    """Verifies and durably keeps Stripe deliveries for the endpoints it knows."""

    def __init__(
        self,
        endpoints: dict[str, tuple[str, ...]],
        committer: GroupCommitter,
        counters: Counters,
        max_body_bytes: int,
        tolerance: int,
        metrics: Metrics | None = None,
    ) -> None:
        self.endpoints = endpoints  # endpoint id -> signing secrets; kept current by the admin API
        self.committer = committer
        self.counters = counters
        self.max_body_bytes = max_body_bytes
        self.tolerance = tolerance
        self.metrics = metrics or Metrics()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint_id = scope["path"][len(PREFIX) :].rstrip("/")
        secrets = self.endpoints.get(endpoint_id)
        count = self.metrics.delivery
        if secrets is None:
            count("unknown_endpoint")
            await _respond(send, 404, error_bytes(404, "unknown webhook endpoint"))
            return
        if scope["method"] != "POST":
            await _respond(send, 405, error_bytes(405, "webhook endpoints accept POST only"))
            return
        now = datetime.now(UTC).replace(tzinfo=None)
        self.counters.seen(endpoint_id, now)
        try:
            body = await _read_body(scope, receive, self.max_body_bytes)
        except BodyTooLargeError:
            self.counters.bump(endpoint_id, "invalid")
            count("too_large")
            await _respond(send, 413, error_bytes(413, f"body larger than {self.max_body_bytes} bytes"))
            return
        except ConnectionError:
            return
        try:
            verify(body, _header(scope, b"stripe-signature"), secrets, self.tolerance)
        except SignatureError as exc:
            self.counters.bump(endpoint_id, "rejected")
            count("rejected")
            await _respond(send, 400, error_bytes(400, f"signature verification failed: {exc}"))
            return
        try:
            event = orjson.loads(body)
            envelope = parse_envelope(event)
        except orjson.JSONDecodeError:
            self.counters.bump(endpoint_id, "invalid")
            count("invalid")
            await _respond(send, 400, error_bytes(400, "body is not valid JSON"))
            return
        except EnvelopeError as exc:
            self.counters.bump(endpoint_id, "invalid")
            count("invalid")
            await _respond(send, 400, error_bytes(400, str(exc)))
            return
        if not is_supported(envelope.type):
            self.counters.bump(endpoint_id, "ignored")
            count("ignored")
            await _respond(send, 200, _IGNORED)
            return
        try:
            await self.committer.submit(Record(endpoint_id, int(time.time() * 1000), body))
        except LogError as exc:
            logger.error("delivery %s not stored: %s", envelope.id, exc)
            count("unavailable")
            await _respond(send, 503, error_bytes(503, "storage unavailable, retry later"))
            return
        current = envelope.api_version == STRIPE_API_VERSION
        count("accepted" if current else "parked")
        await _respond(send, 200, _ACCEPTED if current else _PARKED)
