"""The DuckDB store: one file in the data folder, one writer at a time, readers on their own cursors.

DuckDB allows a single writing process, so the server owns the file while it runs and every write
(the loader's batches, admin changes) goes through one lock; reads use a cursor per thread and run
alongside writes (DuckDB's MVCC). Batches move in as Arrow tables: one statement per batch, not per row.
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
import orjson
import pyarrow as pa

from revlens.money import normalize_currency
from revlens.normalize import Link, RateTable
from revlens.store.models import (
    COUNTERS,
    FAILED,
    PARKED,
    STORED,
    Endpoint,
    LoadBatch,
    LoadResult,
    Project,
)
from revlens.store.schema import SCHEMA_VERSION, STATEMENTS

DB_FILE = "revlens.duckdb"
# Write the WAL into the database file every 32 MB: data not yet checkpointed is held in memory
# uncompressed, and checkpoints run on the loader thread, never on the request path.
CHECKPOINT_THRESHOLD = "32MB"


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


def _json_default(value: Any) -> Any:
    # Decimal amounts become JSON strings: DuckDB reads JSON numbers as doubles, strings stay exact.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in event properties")


def dump_properties(props: dict[str, Any]) -> str:
    return orjson.dumps(props, default=_json_default).decode()


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
            for statement in STATEMENTS:
                self._con.execute(statement)
            self._con.execute(
                "INSERT INTO meta VALUES ('schema_version', ?) ON CONFLICT DO NOTHING", [str(SCHEMA_VERSION)]
            )
            # A data folder from before the daily totals existed: build them once.
            if fetch_one(self._con.execute("SELECT NOT EXISTS (FROM daily_totals) AND EXISTS (FROM events)")) == (
                True,
            ):
                with self.transaction() as cur:
                    rebuild_daily_totals(cur)

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
            return _load(cur, batch)

    def replace_all(self, batch: LoadBatch) -> LoadResult:
        """Rebuild deliveries, events and links from scratch in one transaction (reprocess)."""
        with self.transaction() as cur:
            for table in ("events", "daily_totals", "deliveries", "identity_links", "users"):
                cur.execute(f"DELETE FROM {table}")
            return _load(cur, batch)

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
            cur.register("new_events", _events_table(events))
            cur.execute("DELETE FROM events WHERE (pid, insert_id) IN (SELECT (pid, insert_id) FROM new_events)")
            cur.execute(
                "INSERT INTO events BY NAME SELECT n.*, u.user_idx FROM new_events n "
                "LEFT JOIN users u ON u.pid = n.pid AND u.user_id = n.user_id"
            )
            cur.unregister("new_events")
            rebuild_daily_totals(cur, sorted({pid for pid, _, _ in events}))
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


def _deliveries_table(batch: LoadBatch) -> pa.Table:
    ds = batch.deliveries
    return pa.table(
        {
            "pid": pa.array([d.pid for d in ds], pa.int32()),
            "event_id": pa.array([d.event_id for d in ds]),
            "endpoint_id": pa.array([d.endpoint_id for d in ds]),
            "stripe_type": pa.array([d.stripe_type for d in ds]),
            "api_version": pa.array([d.api_version for d in ds], pa.string()),
            "account": pa.array([d.account for d in ds], pa.string()),
            "status": pa.array([d.status for d in ds]),
            "log_position": pa.array([d.log_position for d in ds], pa.int64()),
            "received_at": pa.array([d.received_at for d in ds], pa.timestamp("us")),
            "created": pa.array([d.created for d in ds], pa.timestamp("us")),
            "error": pa.array([d.error for d in ds], pa.string()),
        }
    )


def _events_table(items: list[tuple[int, str, Any]]) -> pa.Table:
    es = [e for _, _, e in items]
    return pa.table(
        {
            "pid": pa.array([p for p, _, _ in items], pa.int32()),
            "insert_id": pa.array([e.insert_id for e in es]),
            "event_type": pa.array([e.event_type for e in es]),
            "time": pa.array([e.time for e in es], pa.timestamp("us")),
            "local_time": pa.array([e.local_time for e in es], pa.timestamp("us")),
            "user_id": pa.array([e.user_id for e in es], pa.string()),
            "user_rank": pa.array([e.user_rank for e in es], pa.int8()),
            "customer": pa.array([e.customer for e in es], pa.string()),
            "revenue": pa.array([e.revenue for e in es], pa.decimal128(18, 3)),
            "product": pa.array([e.product for e in es], pa.string()),
            "amount": pa.array([_minor(e.properties.get("amount")) for e in es], pa.int64()),
            "amount_paid": pa.array([_minor(e.properties.get("amount_paid")) for e in es], pa.int64()),
            "fx_missing": pa.array([e.fx_missing for e in es], pa.bool_()),
            "endpoint_id": pa.array([endpoint for _, endpoint, _ in items]),
            "properties": pa.array([dump_properties(e.properties) for e in es]),
        }
    )


def _minor(value: Any) -> int | None:
    """A raw Stripe amount (integer minor units) kept in its own column for fast sums."""
    return value if type(value) is int and -(2**62) < value < 2**62 else None


def _upsert_links(cur: duckdb.DuckDBPyConnection, links: list[tuple[int, Link]]) -> None:
    best: dict[tuple[int, str], Link] = {}
    for pid, link in links:
        key = (pid, link.alias)
        if key not in best or link.rank < best[key].rank:
            best[key] = link
    table = pa.table(
        {
            "pid": pa.array([k[0] for k in best], pa.int32()),
            "alias": pa.array([k[1] for k in best]),
            "user_id": pa.array([v.user_id for v in best.values()]),
            "rank": pa.array([v.rank for v in best.values()], pa.int8()),
        }
    )
    cur.register("new_links", table)
    cur.execute(
        "INSERT INTO identity_links BY NAME SELECT * FROM new_links ON CONFLICT DO UPDATE SET "
        "user_id = CASE WHEN excluded.rank < identity_links.rank THEN excluded.user_id ELSE identity_links.user_id END, "
        "rank = least(excluded.rank, identity_links.rank)"
    )
    cur.unregister("new_links")


def _bump_counters(
    cur: duckdb.DuckDBPyConnection, endpoint_id: str, deltas: dict[str, int], when: datetime | None
) -> None:
    values = [int(deltas.get(name, 0)) for name in COUNTERS]
    cur.execute(
        "INSERT INTO endpoint_counters VALUES (?, ?, ?, ?, ?) ON CONFLICT DO UPDATE SET "
        "ignored = endpoint_counters.ignored + excluded.ignored, "
        "rejected = endpoint_counters.rejected + excluded.rejected, "
        "invalid = endpoint_counters.invalid + excluded.invalid, "
        "last_delivery_at = greatest(endpoint_counters.last_delivery_at, excluded.last_delivery_at)",
        [endpoint_id, *values, when],
    )


def _load(cur: duckdb.DuckDBPyConnection, batch: LoadBatch) -> LoadResult:
    """The body of a load, inside the caller's transaction."""
    new_ids: set[tuple[int, str]] = set()
    duplicates = 0
    if batch.deliveries:
        cur.register("batch_deliveries", _deliveries_table(batch))
        inserted = cur.execute(
            "INSERT INTO deliveries BY NAME SELECT * FROM batch_deliveries "
            "ON CONFLICT DO NOTHING RETURNING pid, event_id"
        ).fetchall()
        cur.unregister("batch_deliveries")
        new_ids = {(int(p), str(e)) for p, e in inserted}
        repeats = dict(batch.repeats)
        for d in batch.deliveries:
            if (d.pid, d.event_id) not in new_ids:
                repeats[(d.pid, d.event_id)] = repeats.get((d.pid, d.event_id), 0) + 1
        _add_attempts(cur, repeats)
        duplicates = sum(repeats.values())
    events = [item for item in batch.events if (item[0], item[2].insert_id) in new_ids]
    _insert_events(cur, events)
    if batch.links:
        _upsert_links(cur, batch.links)
    for endpoint_id, deltas in batch.counters.items():
        _bump_counters(cur, endpoint_id, deltas, batch.last_delivery.get(endpoint_id))
    for endpoint_id, when in batch.last_delivery.items():
        if endpoint_id not in batch.counters:
            _bump_counters(cur, endpoint_id, {}, when)
    cur.execute(
        "INSERT INTO ingest_state VALUES ('log_position', ?) ON CONFLICT DO UPDATE SET value = excluded.value",
        [batch.end],
    )
    statuses = {(d.pid, d.event_id): d.status for d in batch.deliveries}
    counts = {STORED: 0, PARKED: 0, FAILED: 0}
    for key in new_ids:
        counts[statuses[key]] = counts.get(statuses[key], 0) + 1
    return LoadResult(counts[STORED], duplicates, counts[PARKED], counts[FAILED])


def _add_attempts(cur: duckdb.DuckDBPyConnection, repeats: dict[tuple[int, str], int]) -> None:
    """Count repeated deliveries of events already kept (Stripe retries, concurrent duplicates)."""
    if not repeats:
        return
    table = pa.table(
        {
            "pid": pa.array([k[0] for k in repeats], pa.int32()),
            "event_id": pa.array([k[1] for k in repeats]),
            "extra": pa.array(list(repeats.values()), pa.int32()),
        }
    )
    cur.register("repeat_deliveries", table)
    cur.execute(
        "UPDATE deliveries SET attempts = deliveries.attempts + r.extra FROM repeat_deliveries r "
        "WHERE deliveries.pid = r.pid AND deliveries.event_id = r.event_id"
    )
    cur.unregister("repeat_deliveries")


def _insert_events(cur: duckdb.DuckDBPyConnection, events: list[tuple[int, str, Any]]) -> None:
    """Insert analytics events, registering new users (compact ids, first-event times) on the way."""
    if not events:
        return
    cur.register("batch_events", _events_table(events))
    cur.execute(
        """
        INSERT INTO users
        SELECT b.pid,
               coalesce((SELECT max(u.user_idx) FROM users u WHERE u.pid = b.pid), 0)
                   + row_number() OVER (PARTITION BY b.pid ORDER BY min(b.time), b.user_id),
               b.user_id, min(b.time), min(b.local_time)
        FROM batch_events b WHERE b.user_id IS NOT NULL GROUP BY b.pid, b.user_id
        ON CONFLICT DO UPDATE SET first_time = least(users.first_time, excluded.first_time),
                                  first_local_time = least(users.first_local_time, excluded.first_local_time)
        """
    )
    cur.execute(
        "INSERT INTO events BY NAME SELECT b.*, u.user_idx FROM batch_events b "
        "LEFT JOIN users u ON u.pid = b.pid AND u.user_id = b.user_id"
    )
    cur.execute(
        f"INSERT INTO daily_totals {DAILY_TOTALS.format(source='batch_events', where='')} "
        "ON CONFLICT DO UPDATE SET events = daily_totals.events + excluded.events, "
        "revenue = daily_totals.revenue + excluded.revenue, revenue_n = daily_totals.revenue_n + excluded.revenue_n, "
        "amount = daily_totals.amount + excluded.amount, amount_n = daily_totals.amount_n + excluded.amount_n, "
        "amount_paid = daily_totals.amount_paid + excluded.amount_paid, "
        "amount_paid_n = daily_totals.amount_paid_n + excluded.amount_paid_n"
    )
    cur.unregister("batch_events")


# The daily totals of a set of events (`source` and `where` are fixed SQL from this module, never
# values: those are parameters). Keep in step with the daily_totals table in schema.py.
DAILY_TOTALS = """
SELECT pid, event_type, date_trunc('day', local_time) AS day,
       coalesce(CAST(product AS VARCHAR), '(none)') AS product, count(*) AS events,
       coalesce(sum(revenue), 0) AS revenue, count(revenue) AS revenue_n,
       coalesce(sum(amount), 0) AS amount, count(amount) AS amount_n,
       coalesce(sum(amount_paid), 0) AS amount_paid, count(amount_paid) AS amount_paid_n
FROM {source} {where} GROUP BY ALL
"""


def rebuild_daily_totals(cur: duckdb.DuckDBPyConnection, pids: list[int] | None = None) -> None:
    """Recompute the daily totals of some projects (all when None) from their events."""
    if pids is None:
        cur.execute("DELETE FROM daily_totals")
        cur.execute(f"INSERT INTO daily_totals {DAILY_TOTALS.format(source='events', where='')}")
        return
    cur.execute("DELETE FROM daily_totals WHERE pid IN (SELECT unnest($pids))", {"pids": pids})
    cur.execute(
        f"INSERT INTO daily_totals {DAILY_TOTALS.format(source='events', where='WHERE pid IN (SELECT unnest($pids))')}",
        {"pids": pids},
    )
