"""What a query runs against: the store, the project, the clock, the saved cohorts."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol
from zoneinfo import ZoneInfo

import numpy as np
from pyroaring import BitMap

from revlens.query.cohort_model import CohortNode
from revlens.query.sql import Compiler

_PARAM = re.compile(r"\$(p\d+)\b")


class Executor(Protocol):
    dialect: str

    def execute(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]: ...

    def user_set(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> BitMap: ...

    def columns(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> dict[str, np.ndarray]: ...


@dataclass
class QueryContext:
    store: Executor
    pid: int
    timezone: str = "UTC"
    now: datetime = field(default_factory=lambda: datetime.now(UTC).replace(tzinfo=None))
    cohorts: Callable[[int], CohortNode] | None = None

    @property
    def local_now(self) -> datetime:
        return self.local_of(self.now)

    def local_of(self, instant: datetime) -> datetime:
        """The wall-clock time in the project's zone of an instant (naive UTC)."""
        return instant.replace(tzinfo=UTC).astimezone(ZoneInfo(self.timezone)).replace(tzinfo=None)

    def utc_of(self, local: datetime) -> datetime:
        """The instant (naive UTC) of a wall-clock time in the project's zone; the first of a repeated
        hour, and a time in a skipped hour read with the offset before the change (zoneinfo's fold=0)."""
        return local.replace(tzinfo=ZoneInfo(self.timezone)).astimezone(UTC).replace(tzinfo=None)

    def compiler(self) -> Compiler:
        compiler = Compiler(self.pid, self.store.dialect, self.now)
        compiler.cohort_loader = self.cohorts
        compiler.first_moves = self.first_moves
        return compiler

    def first_moves(self) -> bool:
        """Whether any user of the project had their first event move earlier after they were
        created (store/writes.py): only then do "within N days of the first event" conditions need
        `users.first_time` besides the first seen time on each event."""
        rows = self.store.execute(
            "SELECT EXISTS (SELECT 1 FROM users WHERE pid = $pid AND first_time < first_seen_time)", {"pid": self.pid}
        )
        return bool(rows[0][0])

    def run(self, compiler: Compiler, query: Any) -> list[tuple[Any, ...]]:
        """Execute one query; a compiler may serve several, so pass only the parameters this one uses."""
        sql, params = self._bound(compiler, query)
        return self.store.execute(sql, params)

    def user_set(self, compiler: Compiler, query: Any) -> BitMap:
        """Execute a query of one column of `user_idx` (no NULLs) and return it as a bitmap."""
        sql, params = self._bound(compiler, query)
        return self.store.user_set(sql, params)

    def columns(self, compiler: Compiler, query: Any) -> dict[str, np.ndarray]:
        """Execute a query and return its result as one numpy array per column, for per-user work
        that is cheaper as a few vector operations than as a hash aggregate (query/distribution.py)."""
        sql, params = self._bound(compiler, query)
        return self.store.columns(sql, params)

    @staticmethod
    def _bound(compiler: Compiler, query: Any) -> tuple[str, dict[str, Any]]:
        sql = compiler.sql(query)
        used = set(_PARAM.findall(sql))
        return sql, {k: v for k, v in compiler.params.items() if k in used}
