"""Closed months of `events` rewritten in event-type order, so a question about one event type reads
about a tenth of the table.

The loader appends events in arrival order, which is close to time order: every block of rows
(DuckDB's row groups, ~120 k rows) then holds every event type, and a filter on `event_type` has to
read all of them. Once a month of a project's events is closed (its last local day ended more than
`GRACE` ago), the loader rewrites it, in one transaction, sorted by event type and then time: the
per-row-group minimum and maximum of `event_type` that DuckDB keeps then let a scan skip the row
groups of the other types. Nothing else changes: the same rows, the same summaries, the same
answers (tests/test_store.py compares the rows before and after; the query property tests run on
clustered stores too).

Which months are due comes from `daily_totals` (events per local day, kept at ingest) against
`clustered_months` (how many events each month had when it was last rewritten). Events that
arrive for a month after it was rewritten (a late delivery, a backfill) are appended unsorted: the
answers stay exact, and the month is rewritten again once it has grown by a tenth.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb

# A month is closed this long after its last local day ends in UTC: more than any zone's offset.
GRACE = timedelta(days=2)
# Rewrite a clustered month again once it holds this much more than when it was rewritten.
REGROW = 1.1

_DUE = """
SELECT d.pid, d.month, d.events FROM (
    SELECT pid, date_trunc('month', day) AS month, sum(events) AS events FROM daily_totals GROUP BY ALL
) d LEFT JOIN clustered_months c ON c.pid = d.pid AND c.month = d.month
WHERE d.month + INTERVAL 1 MONTH <= $closed_before
  AND (c.events IS NULL OR d.events >= c.events * $regrow)
ORDER BY d.month, d.pid
LIMIT 1
"""


def due(cur: duckdb.DuckDBPyConnection, now: datetime) -> tuple[int, datetime, int] | None:
    """The oldest closed month (project, local month start, events) that needs rewriting, if any."""
    rows = cur.execute(_DUE, {"closed_before": now - GRACE, "regrow": REGROW}).fetchall()
    return (int(rows[0][0]), rows[0][1], int(rows[0][2])) if rows else None


def cluster(cur: duckdb.DuckDBPyConnection, pid: int, month: datetime, events: int) -> int:
    """Rewrite one project's local month sorted by event type and time, inside the caller's
    transaction. Returns the rows rewritten."""
    args = {"pid": pid, "lo": month, "hi": _next_month(month)}
    where = "pid = $pid AND local_time >= $lo AND local_time < $hi"
    cur.execute(f"CREATE OR REPLACE TEMP TABLE month_rows AS SELECT * FROM events WHERE {where}", args)
    cur.execute(f"DELETE FROM events WHERE {where}", args)
    cur.execute("INSERT INTO events BY NAME SELECT * FROM month_rows ORDER BY event_type, time")
    [(rows,)] = cur.execute("SELECT count(*) FROM month_rows").fetchall()
    cur.execute("DROP TABLE month_rows")
    cur.execute(
        "INSERT INTO clustered_months VALUES ($pid, $month, $events) ON CONFLICT DO UPDATE SET events = excluded.events",
        {"pid": pid, "month": month, "events": events},
    )
    return int(rows)


def _next_month(month: datetime) -> datetime:
    return (month.replace(day=1) + timedelta(days=32)).replace(day=1)
