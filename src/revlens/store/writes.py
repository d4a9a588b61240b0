"""The write path: one loader batch in one transaction (deliveries deduplicated on the Stripe event
id, the new events, users with their compact ids, identity links, counters, the log position), and
the daily totals kept current with every write to `events`.

Batches move in as Arrow tables: one statement per batch, not per row. Every function here runs
inside the caller's transaction (`DuckDBStore.transaction`).
"""

from __future__ import annotations

from datetime import date, datetime
from decimal import Decimal
from typing import Any

import duckdb
import orjson
import pyarrow as pa

from revlens.normalize import Link
from revlens.store import user_sets
from revlens.store.models import COUNTERS, FAILED, PARKED, STORED, LoadBatch, LoadResult


def _json_default(value: Any) -> Any:
    # Decimal amounts become JSON strings: DuckDB reads JSON numbers as doubles, strings stay exact.
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, date | datetime):
        return value.isoformat()
    raise TypeError(f"cannot store {type(value).__name__} in event properties")


def dump_properties(props: dict[str, Any]) -> str:
    return orjson.dumps(props, default=_json_default).decode()


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


def events_table(items: list[tuple[int, str, Any]]) -> pa.Table:
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


def write_batch(cur: duckdb.DuckDBPyConnection, batch: LoadBatch) -> LoadResult:
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


def register_users(cur: duckdb.DuckDBPyConnection, table: str) -> None:
    """Give the users of the events in `table` (a registered batch) compact ids, and move a known
    user's first event time earlier when the batch holds an earlier one. A new user's first event
    is also their first seen one (`first_seen_time`, never updated); every event carries its user's
    first seen time (store/schema.py). `table` is a name from this package, never a value.

    New users are inserted with the id -1, then numbered from the project's largest id: numbering
    in the insert itself would count the batch's known users too and leave a gap for each of them
    in every batch, where the ids must stay dense (queries size per-user arrays by the largest id).
    The numbering finds the new rows by the zone maps of `user_idx` (they are at the table's end)."""
    cur.execute(
        f"""
        INSERT INTO users BY POSITION
        SELECT b.pid, -1, b.user_id, min(b.time), min(b.local_time), min(b.time)
        FROM {table} b WHERE b.user_id IS NOT NULL GROUP BY b.pid, b.user_id
        ON CONFLICT DO UPDATE SET first_time = least(users.first_time, excluded.first_time),
                                  first_local_time = least(users.first_local_time, excluded.first_local_time)
        """
    )
    cur.execute(
        """
        UPDATE users SET user_idx = n.idx FROM (
            SELECT f.pid, f.user_id,
                   greatest(coalesce((SELECT max(m.user_idx) FROM users m WHERE m.pid = f.pid), 0), 0)
                       + row_number() OVER (PARTITION BY f.pid ORDER BY f.first_time, f.user_id) AS idx
            FROM users f WHERE f.user_idx = -1
        ) n
        WHERE users.pid = n.pid AND users.user_id = n.user_id AND users.user_idx = -1
        """
    )


def _insert_events(cur: duckdb.DuckDBPyConnection, events: list[tuple[int, str, Any]]) -> None:
    """Insert analytics events, registering new users (compact ids, first-event times) on the way."""
    if not events:
        return
    cur.register("batch_events", events_table(events))
    register_users(cur, "batch_events")
    # The batch with its users' compact ids and first seen times, joined once for the events and
    # their user sets.
    cur.execute(
        "CREATE OR REPLACE TEMP TABLE batch_with_users AS "
        "SELECT b.*, u.user_idx, u.first_seen_time AS user_first_time FROM batch_events b "
        "LEFT JOIN users u ON u.pid = b.pid AND u.user_id = b.user_id"
    )
    cur.execute("INSERT INTO events BY NAME SELECT * FROM batch_with_users")
    user_sets.add(cur, "batch_with_users")
    cur.execute("DROP TABLE batch_with_users")
    cur.execute(
        f"INSERT INTO daily_totals {DAILY_TOTALS.format(source='batch_events', where='')} "
        "ON CONFLICT DO UPDATE SET events = daily_totals.events + excluded.events, "
        "revenue = daily_totals.revenue + excluded.revenue, revenue_n = daily_totals.revenue_n + excluded.revenue_n, "
        "amount = daily_totals.amount + excluded.amount, amount_n = daily_totals.amount_n + excluded.amount_n, "
        "amount_paid = daily_totals.amount_paid + excluded.amount_paid, "
        "amount_paid_n = daily_totals.amount_paid_n + excluded.amount_paid_n"
    )
    cur.unregister("batch_events")


def fill_user_first_times(cur: duckdb.DuckDBPyConnection) -> None:
    """Set `users.first_seen_time` and `events.user_first_time` where they are missing (data folders
    from before the columns, bulk loads that write `events` and `users` directly): the user's
    first event time."""
    cur.execute("UPDATE users SET first_seen_time = first_time WHERE first_seen_time IS NULL")
    cur.execute(
        "UPDATE events SET user_first_time = u.first_time FROM users u "
        "WHERE events.user_first_time IS NULL AND u.pid = events.pid AND u.user_idx = events.user_idx"
    )


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


def rebuild_summaries(cur: duckdb.DuckDBPyConnection, pids: list[int] | None = None) -> None:
    """Recompute everything kept at ingest from the events (daily totals and daily user sets)."""
    rebuild_daily_totals(cur, pids)
    user_sets.rebuild(cur, pids)
