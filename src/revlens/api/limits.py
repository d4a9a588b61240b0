"""A limit on repeated authentication failures, per client address.

After `MAX_FAILURES` failed attempts within `WINDOW_SECONDS`, that address gets 429 on every
authenticated route for `BLOCK_SECONDS`, so keys cannot be guessed at line rate.
"""

from __future__ import annotations

import threading
import time
from collections import deque

MAX_FAILURES = 20
WINDOW_SECONDS = 60.0
BLOCK_SECONDS = 60.0
# Addresses remembered at most (oldest forgotten first), so the table cannot grow without bound.
MAX_TRACKED = 10_000


class FailureLimiter:
    def __init__(
        self, max_failures: int = MAX_FAILURES, window: float = WINDOW_SECONDS, block: float = BLOCK_SECONDS
    ) -> None:
        self.max_failures = max_failures
        self.window = window
        self.block = block
        self._failures: dict[str, deque[float]] = {}
        self._blocked: dict[str, float] = {}
        self._lock = threading.Lock()

    def blocked(self, client: str) -> bool:
        with self._lock:
            until = self._blocked.get(client)
            if until is None:
                return False
            if until > time.monotonic():
                return True
            del self._blocked[client]
            return False

    def failed(self, client: str) -> None:
        now = time.monotonic()
        with self._lock:
            times = self._failures.setdefault(client, deque())
            times.append(now)
            while times and times[0] < now - self.window:
                times.popleft()
            if len(times) >= self.max_failures:
                self._blocked[client] = now + self.block
                times.clear()
            if len(self._failures) > MAX_TRACKED:
                self._failures.pop(next(iter(self._failures)))
