"""Closed months of `events` rewritten in event-type order, so a question about one event type reads
about a tenth of the table.

The loader appends events in arrival order, which is close to time order: every block of rows
(DuckDB's row groups, ~120 k rows) then holds every event type, and a filter on `event_type` has to
read all of them. Once a month of a project's events is closed (its last local day ended more than
`GRACE` ago) and no event has arrived for it for a round (`Settled`), the loader rewrites it, in
one transaction, sorted by event type and then time: the per-row-group minimum and maximum of
`event_type` that DuckDB keeps then let a scan skip the row groups of the other types. Nothing
else changes: the same rows, the same summaries, the same answers (tests/test_store.py compares the
rows before and after; the query property tests run on clustered stores too).

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
    SELECT pid, date_trunc('month', day) AS month, sum(events) AS events FROM daily_totals
    WHERE day < $closed_before GROUP BY ALL
) d LEFT JOIN clustered_months c ON c.pid = d.pid AND c.month = d.month
WHERE d.month + INTERVAL 1 MONTH <= $closed_before
  AND (c.events IS NULL OR d.events >= c.events * $regrow)
ORDER BY d.month, d.pid
"""


def due(cur: duckdb.DuckDBPyConnection, now: datetime) -> list[tuple[int, datetime, int]]:
    """The closed months (project, local month start, events), oldest first, that need rewriting."""
    rows = cur.execute(_DUE, {"closed_before": now - GRACE, "regrow": REGROW}).fetchall()
    return [(int(pid), month, int(events)) for pid, month, events in rows]


def events_in(cur: duckdb.DuckDBPyConnection, pid: int, month: datetime) -> int:
    """How many events a project's local month holds (from the daily totals)."""
    [(events,)] = cur.execute(
        "SELECT coalesce(sum(events), 0) FROM daily_totals WHERE pid = $pid AND day >= $lo AND day < $hi",
        {"pid": pid, "lo": month, "hi": _next_month(month)},
    ).fetchall()
    return int(events)


class Settled:
    """Which due month the loader may rewrite now: one whose count has not changed since the
    previous round. A month that events are still arriving for (a backfill importing history, the
    demo's spread-out events) is left alone until they stop, instead of being rewritten again and
    again while it grows (found by the soak: a rewrite every round cost p99 200 ms)."""

    def __init__(self) -> None:
        self._seen: dict[tuple[int, datetime], int] = {}

    def pick(self, due_months: list[tuple[int, datetime, int]]) -> tuple[int, datetime, int] | None:
        seen, self._seen = self._seen, {(pid, month): events for pid, month, events in due_months}
        for pid, month, events in due_months:
            if seen.get((pid, month)) == events:
                return pid, month, events
        return None


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
