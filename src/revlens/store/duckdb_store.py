"""The DuckDB store: one file in the data folder, one writer at a time, readers on their own cursors.

DuckDB allows a single writing process, so the server owns the file while it runs and every write
(the loader's batches, admin changes) goes through one lock; reads use a cursor per thread and run
alongside writes (DuckDB's MVCC). What one loader batch writes, and the daily totals kept with it,
is in writes.py.
"""

from __future__ import annotations

import hashlib
import secrets as token
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager, suppress
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from revlens.money import normalize_currency
from revlens.normalize import Link, RateTable
from revlens.store import clustering, user_sets
from revlens.store.models import (
    Endpoint,
    LoadBatch,
    LoadResult,
    Project,
)
from revlens.store.schema import SCHEMA_VERSION, STATEMENTS
from revlens.store.writes import events_table, fill_user_first_times, rebuild_summaries, register_users, write_batch

DB_FILE = "revlens.duckdb"
# Write the WAL into the database file every 8 MB: data not yet checkpointed is held in memory
# uncompressed, and checkpoints run on the loader thread, never on the request path. Smaller, more
# frequent checkpoints keep the process's memory flat: at 32 MB the soak's RSS grew 12-13 % in ten
# minutes, at 8 MB 6.6-8.1 % in three runs (docs/benchmarks.md, "Crash safety and soak").
CHECKPOINT_THRESHOLD = "8MB"


def fetch_one(cur: duckdb.DuckDBPyConnection) -> tuple[Any, ...] | None:
    """The first row of the statement just run, reading the whole result.

    A result left half-read keeps its transaction open, and while any transaction is open DuckDB
    skips the automatic checkpoint after a write that updated rows: the write-ahead log and the
    memory holding its data then grow without bound. Every read of "one row" goes through here.
    """
    rows = cur.fetchall()
    return tuple(rows[0]) if rows else None


class StoreError(Exception):
    """The store cannot do what was asked (the message says why, for a person to read)."""


class StoreLockedError(StoreError):
    """Another process (normally `revlens serve`) holds the database file."""


class NotFoundError(StoreError):
    """A project or endpoint that does not exist."""


class ConflictError(StoreError):
    """A name or key that is already taken."""


def hash_secret(secret: str) -> str:
    """Secret keys are 128-bit random tokens, so a plain SHA-256 is enough to store them safely."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


class DuckDBStore:
    """The embedded store: analytics events, raw-delivery index, projects, endpoints, rates."""

    name = "duckdb"
    dialect = "duckdb"

    def __init__(self, data_dir: Path, read_only: bool = False, memory_limit: str | None = None) -> None:
        self.path = data_dir / DB_FILE
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            self._con = duckdb.connect(str(self.path), read_only=read_only)
        except duckdb.IOException as exc:
            if "lock" in str(exc).lower():
                raise StoreLockedError(
                    f"{self.path} is in use by another process (is `revlens serve` running on this data folder?)"
                ) from None
            raise StoreError(f"cannot open {self.path}: {exc}") from None
        self._write = threading.Lock()
        self._local = threading.local()
        if memory_limit is not None:
            # A setting, not a value from a request: SET does not take parameters.
            if not memory_limit.replace(".", "").isalnum():
                raise StoreError(f"not a memory size: {memory_limit!r}")
            self._con.execute(f"SET memory_limit = '{memory_limit}'")
        if not read_only:
            self._con.execute(f"SET checkpoint_threshold = '{CHECKPOINT_THRESHOLD}'")
            # Data folders from before `events.user_first_time` / `users.first_seen_time`: the
            # columns are added below and filled here.
            fill_first_times = fetch_one(
                self._con.execute(
                    "SELECT count(*) FILTER (column_name IN ('user_first_time', 'first_seen_time')) < 2 "
                    "AND count(*) FILTER (table_name = 'events') > 0 FROM duckdb_columns() "
                    "WHERE table_name IN ('events', 'users') AND schema_name = 'main'"
                )
            ) == (True,)
            for statement in STATEMENTS:
                self._con.execute(statement)
            if fill_first_times:
                with self.transaction() as cur:
                    fill_user_first_times(cur)
            self._con.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", [str(SCHEMA_VERSION)]
            )
            # A data folder from before the summaries kept at ingest existed: build them once.
            missing = "(NOT EXISTS (FROM daily_totals) OR NOT EXISTS (FROM user_sets)) AND EXISTS (FROM events)"
            if fetch_one(self._con.execute(f"SELECT {missing}")) == (True,):
                with self.transaction() as cur:
                    rebuild_summaries(cur)

    # -- connections -------------------------------------------------------------------------------

    def cursor(self) -> duckdb.DuckDBPyConnection:
        """This thread's read cursor."""
        cur = getattr(self._local, "cursor", None)
        if cur is None:
            cur = self._con.cursor()
            self._local.cursor = cur
        return cur

    @contextmanager
    def transaction(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """The single write path: a lock, a cursor, BEGIN ... COMMIT (ROLLBACK on any error)."""
        with self._write:
            cur = self.cursor()
            cur.execute("BEGIN TRANSACTION")
            try:
                yield cur
            except BaseException:
                cur.execute("ROLLBACK")
                raise
            cur.execute("COMMIT")

    def close(self) -> None:
        with self._write:
            with suppress(duckdb.Error):
                self._con.execute("CHECKPOINT")
            self._con.close()

    def memory_usage(self) -> list[tuple[str, int]]:
        """Memory DuckDB holds right now, by kind (table cache, indexes, query state), as it reports it."""
        rows = self.execute("SELECT tag, memory_usage_bytes FROM duckdb_memory() WHERE memory_usage_bytes > 0")
        return [(str(tag), int(size)) for tag, size in rows]

    def checkpoint(self) -> None:
        with self._write:
            self.cursor().execute("CHECKPOINT")

    # -- projects and endpoints -------------------------------------------------------------------

    def create_project(self, name: str, currency: str, timezone: str) -> tuple[Project, str]:
        """Create a project; returns it with its secret key, which is shown once and stored hashed."""
        currency = normalize_currency(currency)
        secret = token.token_hex(16)
        with self.transaction() as cur:
            if fetch_one(cur.execute("SELECT 1 FROM projects WHERE name = ?", [name])):
                raise ConflictError(f"a project named {name!r} already exists")
            row = fetch_one(cur.execute("SELECT coalesce(max(pid), 0) + 1 FROM projects"))
            pid = int(row[0]) if row else 1
            project = Project(
                pid=pid,
                id=f"prj_{token.token_hex(8)}",
                name=name,
                api_key=token.token_hex(16),
                secret_hash=hash_secret(secret),
                currency=currency,
                timezone=timezone,
                created_at=_now(),
            )
            cur.execute(
                "INSERT INTO projects VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [
                    pid,
                    project.id,
                    name,
                    project.api_key,
                    project.secret_hash,
                    currency,
                    timezone,
                    project.created_at,
                ],
            )
        return project, secret

    def _project_rows(self, where: str, params: list[Any]) -> list[Project]:
        rows = (
            self.cursor()
            .execute(
                "SELECT pid, id, name, api_key, secret_hash, currency, timezone, created_at FROM projects "
                f"WHERE {where} ORDER BY pid",
                params,
            )
            .fetchall()
        )
        return [Project(*row) for row in rows]

    def projects(self) -> list[Project]:
        return self._project_rows("TRUE", [])

    def project(self, ref: str) -> Project:
        """A project by name or id."""
        found = self._project_rows("name = ? OR id = ?", [ref, ref])
        if not found:
            raise NotFoundError(f"no project named {ref!r}")
        return found[0]

    def project_by_pid(self, pid: int) -> Project:
        found = self._project_rows("pid = ?", [pid])
        if not found:
            raise NotFoundError(f"no project with pid {pid}")
        return found[0]

    def project_by_api_key(self, api_key: str) -> Project | None:
        found = self._project_rows("api_key = ?", [api_key])
        return found[0] if found else None

    def update_project(self, ref: str, currency: str | None = None, timezone: str | None = None) -> Project:
        project = self.project(ref)
        with self.transaction() as cur:
            if currency is not None:
                cur.execute(
                    "UPDATE projects SET currency = ? WHERE pid = ?",
                    [normalize_currency(currency), project.pid],
                )
            if timezone is not None:
                cur.execute("UPDATE projects SET timezone = ? WHERE pid = ?", [timezone, project.pid])
        return self.project_by_pid(project.pid)

    def add_endpoint(
        self,
        project_ref: str,
        signing_secrets: list[str],
        account: str | None = None,
        description: str | None = None,
    ) -> Endpoint:
        project = self.project(project_ref)
        endpoint_id = f"we_{token.token_urlsafe(12).replace('-', 'x').replace('_', 'y')}"
        with self.transaction() as cur:
            cur.execute(
                "INSERT INTO endpoints VALUES (?, ?, ?, ?, ?, ?)",
                [endpoint_id, project.pid, signing_secrets, account, description, _now()],
            )
        return self.endpoint(endpoint_id)

    def set_endpoint_secrets(self, endpoint_id: str, signing_secrets: list[str]) -> Endpoint:
        self.endpoint(endpoint_id)
        with self.transaction() as cur:
            cur.execute("UPDATE endpoints SET secrets = ? WHERE id = ?", [signing_secrets, endpoint_id])
        return self.endpoint(endpoint_id)

    def _endpoint_rows(self, where: str, params: list[Any]) -> list[Endpoint]:
        rows = (
            self.cursor()
            .execute(
                "SELECT e.id, e.pid, p.name, e.secrets, e.account, e.description, e.created_at "
                f"FROM endpoints e JOIN projects p USING (pid) WHERE {where} ORDER BY e.created_at, e.id",
                params,
            )
            .fetchall()
        )
        return [Endpoint(r[0], r[1], r[2], tuple(r[3]), r[4], r[5], r[6]) for r in rows]

    def endpoints(self, project_ref: str | None = None) -> list[Endpoint]:
        if project_ref is None:
            return self._endpoint_rows("TRUE", [])
        project = self.project(project_ref)
        return self._endpoint_rows("e.pid = ?", [project.pid])

    def endpoint(self, endpoint_id: str) -> Endpoint:
        found = self._endpoint_rows("e.id = ?", [endpoint_id])
        if not found:
            raise NotFoundError(f"no endpoint {endpoint_id!r}")
        return found[0]

    # -- loading ------------------------------------------------------------------------------------

    def log_position(self) -> int:
        row = fetch_one(self.cursor().execute("SELECT value FROM ingest_state WHERE key = 'log_position'"))
        return int(row[0]) if row else 0

    def links(self, pid: int, aliases: Iterable[str]) -> dict[str, Link]:
        wanted = list(set(aliases))
        if not wanted:
            return {}
        rows = (
            self.cursor()
            .execute(
                "SELECT alias, user_id, rank FROM identity_links WHERE pid = ? AND alias IN (SELECT unnest(?))",
                [pid, wanted],
            )
            .fetchall()
        )
        return {alias: Link(alias, user_id, rank) for alias, user_id, rank in rows}

    def load(self, batch: LoadBatch) -> LoadResult:
        """Write one loader batch atomically: deliveries (deduplicated on the Stripe event id),
        the analytics events of the new ones, identity links, counters, and the log position."""
        with self.transaction() as cur:
            return write_batch(cur, batch)

    def compact_summaries(self) -> int:
        """Merge the day sets appended by many small loads (store/user_sets.py); the loader calls
        this now and then. Returns how many keys were merged."""
        with self.transaction() as cur:
            return user_sets.compact(cur)

    def closed_months_due(self, now: datetime | None = None) -> list[tuple[int, datetime, int]]:
        """Closed months (project, local month start, events) to rewrite in event-type order
        (store/clustering.py), oldest first."""
        now = now or datetime.now(UTC).replace(tzinfo=None)
        return clustering.due(self.cursor(), now)

    def cluster_month(self, pid: int, month: datetime, events: int) -> int | None:
        """Rewrite one closed month in event-type order, in one transaction, if it still holds
        `events` events (else it changed: None). Returns the rows rewritten."""
        with self.transaction() as cur:
            if clustering.events_in(cur, pid, month) != events:
                return None
            return clustering.cluster(cur, pid, month, events)

    def cluster_closed_month(self, now: datetime | None = None) -> tuple[int, datetime, int] | None:
        """Rewrite the oldest closed month that needs it, settled or not (tests, bench data);
        (project, month, rows rewritten), or None when none is due."""
        for pid, month, events in self.closed_months_due(now):
            rows = self.cluster_month(pid, month, events)
            if rows is not None:
                return pid, month, rows
        return None

    def replace_all(self, batch: LoadBatch) -> LoadResult:
        """Rebuild deliveries, events and links from scratch in one transaction (reprocess)."""
        with self.transaction() as cur:
            for table in (
                "events",
                "daily_totals",
                "user_sets",
                "clustered_months",
                "deliveries",
                "identity_links",
                "users",
            ):
                cur.execute(f"DELETE FROM {table}")
            return write_batch(cur, batch)

    def delivery(self, event_id: str, pid: int | None = None) -> dict[str, Any] | None:
        sql = (
            "SELECT d.pid, p.name, d.event_id, d.endpoint_id, d.stripe_type, d.api_version, d.account, d.status, "
            "d.attempts, d.log_position, d.received_at, d.created, d.error FROM deliveries d JOIN projects p USING (pid) "
            "WHERE d.event_id = ?"
        )
        params: list[Any] = [event_id]
        if pid is not None:
            sql += " AND d.pid = ?"
            params.append(pid)
        row = fetch_one(self.cursor().execute(sql, params))
        if row is None:
            return None
        keys = [
            "pid",
            "project",
            "event_id",
            "endpoint_id",
            "stripe_type",
            "api_version",
            "account",
            "status",
            "attempts",
            "log_position",
            "received_at",
            "created",
            "error",
        ]
        result = dict(zip(keys, row, strict=True))
        result.pop("pid")
        return result

    def fx_missing_positions(self) -> list[int]:
        """Log positions of the deliveries whose events still lack an exchange rate."""
        rows = (
            self.cursor()
            .execute(
                "SELECT d.log_position FROM events e JOIN deliveries d ON d.pid = e.pid AND d.event_id = e.insert_id "
                "WHERE e.fx_missing ORDER BY 1"
            )
            .fetchall()
        )
        return [int(r[0]) for r in rows]

    def replace_events(self, events: list[tuple[int, str, Any]]) -> int:
        """Swap in new versions of existing analytics events (same project and insert id)."""
        if not events:
            return 0
        with self.transaction() as cur:
            cur.register("new_events", events_table(events))
            # A new version may name another user (identity links changed): a new one gets an id,
            # and an earlier event moves the user's first event time as on any load.
            register_users(cur, "new_events")
            cur.execute("DELETE FROM events WHERE (pid, insert_id) IN (SELECT (pid, insert_id) FROM new_events)")
            cur.execute(
                "INSERT INTO events BY NAME SELECT n.*, u.user_idx, u.first_seen_time AS user_first_time FROM new_events n "
                "LEFT JOIN users u ON u.pid = n.pid AND u.user_id = n.user_id"
            )
            cur.unregister("new_events")
            rebuild_summaries(cur, sorted({pid for pid, _, _ in events}))
        return len(events)

    # -- status -------------------------------------------------------------------------------------

    def status(self, pid: int | None = None) -> list[dict[str, Any]]:
        """Per-endpoint ingestion figures: received, stored, duplicates, ignored, rejected, parked..."""
        where, params = ("", []) if pid is None else ("WHERE e.pid = ?", [pid])
        rows = (
            self.cursor()
            .execute(
                f"""
            WITH d AS (
                SELECT endpoint_id,
                       count(*) FILTER (WHERE status = 'stored') AS stored,
                       count(*) FILTER (WHERE status = 'parked') AS parked,
                       count(*) FILTER (WHERE status = 'failed') AS failed,
                       coalesce(sum(attempts - 1), 0) AS duplicates,
                       max(created) AS last_event_at
                FROM deliveries GROUP BY endpoint_id
            ), fx AS (
                SELECT endpoint_id, count(*) AS fx_missing FROM events WHERE fx_missing GROUP BY endpoint_id
            )
            SELECT e.id, p.name, e.account,
                   coalesce(d.stored, 0), coalesce(d.duplicates, 0), coalesce(c.ignored, 0),
                   coalesce(c.rejected, 0), coalesce(c.invalid, 0), coalesce(d.parked, 0), coalesce(d.failed, 0),
                   coalesce(fx.fx_missing, 0), d.last_event_at, c.last_delivery_at
            FROM endpoints e JOIN projects p USING (pid)
            LEFT JOIN d ON d.endpoint_id = e.id
            LEFT JOIN endpoint_counters c ON c.endpoint_id = e.id
            LEFT JOIN fx ON fx.endpoint_id = e.id
            {where}
            ORDER BY p.name, e.created_at
            """,
                params,
            )
            .fetchall()
        )
        result = []
        for r in rows:
            item = {
                "endpoint": r[0],
                "project": r[1],
                "account": r[2],
                "stored": int(r[3]),
                "duplicates": int(r[4]),
                "ignored": int(r[5]),
                "rejected_signatures": int(r[6]),
                "invalid": int(r[7]),
                "parked": int(r[8]),
                "failed": int(r[9]),
                "fx_missing": int(r[10]),
                "last_event_at": r[11].isoformat() if r[11] else None,
                "last_delivery_at": r[12].isoformat() if r[12] else None,
            }
            item["received"] = sum(
                item[k]
                for k in (
                    "stored",
                    "duplicates",
                    "ignored",
                    "rejected_signatures",
                    "invalid",
                    "parked",
                    "failed",
                )
            )
            result.append(item)
        return result

    def memory(self) -> dict[str, int]:
        """DuckDB's memory use by tag, in bytes (only the non-zero ones)."""
        rows = self.cursor().execute("SELECT tag, memory_usage_bytes FROM duckdb_memory()").fetchall()
        return {str(tag): int(used) for tag, used in rows if used}

    def event_count(self, pid: int | None = None) -> int:
        if pid is None:
            row = fetch_one(self.cursor().execute("SELECT count(*) FROM events"))
        else:
            row = fetch_one(self.cursor().execute("SELECT count(*) FROM events WHERE pid = ?", [pid]))
        return int(row[0]) if row else 0

    def execute(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]:
        """Run a read query on this thread's cursor (values always as parameters)."""
        return self.cursor().execute(sql, params or []).fetchall()

    def user_set(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> BitMap:
        """The first column of a read query (compact user ids, no NULLs) as a Roaring bitmap, fetched
        as one array rather than a Python tuple per row: three times faster for the tens of
        thousands of users a cohort reads from the events (docs/benchmarks.md)."""
        column = next(iter(self.columns(sql, params).values()))
        return user_sets.from_ids(column)

    def columns(self, sql: str, params: dict[str, Any] | list[Any] | None = None) -> dict[str, np.ndarray]:
        """A read query's result as one numpy array per column (masked where a column has NULLs).

        Run as a relation (`sql`) rather than `execute`: DuckDB then converts the result to arrays
        without materializing it first, 15 % quicker for a million ids (docs/benchmarks.md). Rows
        for Python tuples are quicker the other way (`execute` above)."""
        return dict(self.cursor().sql(sql, params=params or None).fetchnumpy())

    # -- cohorts ------------------------------------------------------------------------------------

    def save_cohort(
        self, pid: int, name: str, description: str | None, definition: str, cohort_id: int | None = None
    ) -> int:
        now = _now()
        with self.transaction() as cur:
            if cohort_id is None:
                row = fetch_one(cur.execute("SELECT coalesce(max(id), 0) + 1 FROM cohorts WHERE pid = ?", [pid]))
                cohort_id = int(row[0]) if row else 1
                cur.execute(
                    "INSERT INTO cohorts VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL)",
                    [pid, cohort_id, name, description, definition, now, now],
                )
            else:
                cur.execute(
                    "UPDATE cohorts SET name = ?, description = ?, definition = ?, updated_at = ?, size = NULL "
                    "WHERE pid = ? AND id = ?",
                    [name, description, definition, now, pid, cohort_id],
                )
        return cohort_id

    def cohorts(self, pid: int, cohort_id: int | None = None) -> list[dict[str, Any]]:
        sql = "SELECT id, name, description, definition, created_at, updated_at, size, computed_at FROM cohorts WHERE pid = ?"
        params: list[Any] = [pid]
        if cohort_id is not None:
            sql += " AND id = ?"
            params.append(cohort_id)
        rows = self.cursor().execute(sql + " ORDER BY id", params).fetchall()
        keys = ("id", "name", "description", "definition", "created_at", "updated_at", "size", "computed_at")
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def set_cohort_size(self, pid: int, cohort_id: int, size: int) -> None:
        with self.transaction() as cur:
            cur.execute(
                "UPDATE cohorts SET size = ?, computed_at = ? WHERE pid = ? AND id = ?", [size, _now(), pid, cohort_id]
            )

    def delete_cohort(self, pid: int, cohort_id: int) -> bool:
        with self.transaction() as cur:
            found = cur.execute(
                "DELETE FROM cohorts WHERE pid = ? AND id = ? RETURNING id", [pid, cohort_id]
            ).fetchall()
        return bool(found)

    # -- rates --------------------------------------------------------------------------------------

    def rate_table(self) -> RateTable:
        rows = self.cursor().execute("SELECT base, day, currency, rate FROM rates").fetchall()
        bases = {r[0] for r in rows}
        base = bases.pop() if len(bases) == 1 else "EUR"
        return RateTable.from_rows(base, ((r[1], r[2], r[3]) for r in rows if r[0] == base))

    def rates_base(self) -> str | None:
        row = fetch_one(self.cursor().execute("SELECT min(base) FROM rates"))
        return row[0] if row and row[0] else None

    def put_rates(self, base: str, rows: list[tuple[date, str, Decimal]], source: str) -> int:
        base = normalize_currency(base)
        existing = self.rates_base()
        if existing is not None and existing != base:
            raise ConflictError(
                f"rates in this data folder are against {existing}; this file is against {base}. "
                "Convert it, or keep one base per data folder."
            )
        if not rows:
            return 0
        table = pa.table(
            {
                "base": pa.array([base] * len(rows)),
                "day": pa.array([r[0] for r in rows], pa.date32()),
                "currency": pa.array([normalize_currency(r[1]) for r in rows]),
                "rate": pa.array([r[2] for r in rows], pa.decimal128(38, 12)),
                "source": pa.array([source] * len(rows)),
            }
        )
        with self.transaction() as cur:
            cur.register("new_rates", table)
            cur.execute(
                "INSERT INTO rates BY NAME SELECT * FROM new_rates "
                "ON CONFLICT DO UPDATE SET rate = excluded.rate, source = excluded.source"
            )
            cur.unregister("new_rates")
        return len(rows)
