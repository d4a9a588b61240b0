"""User sets: for each project, event type, local day, week and month, and product, the set of users
(their compact `user_idx`) who did that event, as a Roaring bitmap.

Distinct users do not add up across days the way event counts do, but sets do: the users of a range
are the union of its periods' sets, and a union of a few dozen compressed bitmaps takes about a
millisecond where counting distinct users over the raw events hashes every event of the range
(docs/benchmarks.md). A week or month chart reads the week or month sets for the whole periods of
its range and the day sets for the partial ones at its edges. `product` is the group-by label
('(none)' when absent, as in `daily_totals`); the rows with `product` NULL hold the users of the
period whatever the product. Weeks start on Monday, as the chart buckets (query/timeaxis.py).

Writes only ever add rows: each loader batch appends the small sets of its own events, so a busy
period is not rewritten on every batch. A key may therefore have several rows; readers take their
union, and `compact` merges them into one from time to time. Every function here runs inside the
caller's transaction.
"""

from __future__ import annotations

import array
from collections import defaultdict
from collections.abc import Iterable, Iterator
from datetime import datetime
from typing import Any

import duckdb
import numpy as np
import pyarrow as pa
from pyroaring import BitMap

GRAINS = ("day", "week", "month")
# Rows of one key before `compact` merges them (several per key is correct, only slower to read).
COMPACT_ABOVE = 8
# Day sets fetched at a time when rebuilding from the events.
REBUILD_BATCH_ROWS = 2_000

Key = tuple[int, str, str, datetime, str | None]  # pid, event_type, grain, start, product

# The users of a set of events per project, type, local day, and product or every product (the
# grouping set without product). `source` and `where` are fixed SQL from this module, never values.
_DAY_SETS = """
SELECT pid, event_type, day, CASE WHEN grouping(label) = 0 THEN label END AS product,
       list(DISTINCT user_idx) AS users
FROM (SELECT pid, event_type, date_trunc('day', local_time) AS day,
             coalesce(CAST(product AS VARCHAR), '(none)') AS label, user_idx
      FROM {source} WHERE user_idx IS NOT NULL {where})
GROUP BY GROUPING SETS ((pid, event_type, day, label), (pid, event_type, day))
"""


def _start(day: datetime, grain: str) -> datetime:
    """The first day of the period of `grain` holding `day` (date_trunc's rule; weeks from Monday)."""
    if grain == "week":
        return datetime.fromordinal(day.toordinal() - day.weekday())
    if grain == "month":
        return day.replace(day=1)
    return day


def _with_periods(day_sets: Iterable[tuple[int, str, datetime, str | None, BitMap]]) -> dict[Key, BitMap]:
    """Day sets -> the sets of their days, weeks and months (a period's users: the union of its days')."""
    out: dict[Key, BitMap] = {}
    for pid, event_type, day, product, users in day_sets:
        for grain in GRAINS:
            key = (pid, event_type, grain, _start(day, grain), product)
            if key in out:
                out[key] |= users
            else:
                out[key] = BitMap(users)
    return out


def _keys_table(keys: list[Key]) -> pa.Table:
    return pa.table(
        {
            "pid": pa.array([k[0] for k in keys], pa.int32()),
            "event_type": pa.array([k[1] for k in keys], pa.string()),
            "grain": pa.array([k[2] for k in keys], pa.string()),
            "start": pa.array([k[3] for k in keys], pa.timestamp("us")),
            "product": pa.array([k[4] for k in keys], pa.string()),
        }
    )


def _insert(cur: duckdb.DuckDBPyConnection, sets: dict[Key, BitMap]) -> None:
    if not sets:
        return
    keys = list(sets)
    users = pa.array([bytes(sets[k].serialize()) for k in keys], pa.binary())
    table = _keys_table(keys).append_column("users", users)
    cur.register("new_user_sets", table)
    cur.execute("INSERT INTO user_sets BY NAME SELECT * FROM new_user_sets")
    cur.unregister("new_user_sets")


def add(cur: duckdb.DuckDBPyConnection, source: str) -> None:
    """Append the sets of the events in `source` (fixed SQL: a registered batch with `user_idx`)."""
    rows = cur.execute(_DAY_SETS.format(source=source, where="")).fetchall()
    _insert(cur, _with_periods((p, t, d, prod, BitMap(users)) for p, t, d, prod, users in rows))


def _day_sets_of_events(cur: duckdb.DuckDBPyConnection, pids: list[int] | None) -> Iterator[tuple[Any, ...]]:
    """The day sets of stored events, a few thousand rows at a time (bounds the memory of a rebuild)."""
    where, args = ("", {}) if pids is None else ("AND pid IN (SELECT unnest($pids))", {"pids": pids})
    result = cur.execute(_DAY_SETS.format(source="events", where=where), args)
    while rows := result.fetchmany(REBUILD_BATCH_ROWS):
        for pid, event_type, day, product, users in rows:
            yield pid, event_type, day, product, BitMap(users)


def rebuild(cur: duckdb.DuckDBPyConnection, pids: list[int] | None = None) -> None:
    """Recompute the sets of some projects (all when None) from their events."""
    if pids is None:
        cur.execute("DELETE FROM user_sets")
    else:
        cur.execute("DELETE FROM user_sets WHERE pid IN (SELECT unnest($pids))", {"pids": pids})
    _insert(cur, _with_periods(_day_sets_of_events(cur, pids)))


def compact(cur: duckdb.DuckDBPyConnection, above: int = COMPACT_ABOVE) -> int:
    """Merge the rows of every key that has more than `above` into one. Returns the keys merged."""
    rows = cur.execute(
        """
        SELECT pid, event_type, grain, start, product, list(users) FROM user_sets
        WHERE (pid, event_type, grain, start, coalesce(product, chr(0))) IN (
            SELECT (pid, event_type, grain, start, coalesce(product, chr(0))) FROM user_sets
            GROUP BY ALL HAVING count(*) > $above)
        GROUP BY ALL
        """,
        {"above": above},
    ).fetchall()
    if not rows:
        return 0
    merged = {(p, t, g, s, prod): union(blobs) for p, t, g, s, prod, blobs in rows}
    cur.register("merged_keys", _keys_table(list(merged)))
    cur.execute(
        "DELETE FROM user_sets s USING merged_keys k WHERE s.pid = k.pid AND s.event_type = k.event_type "
        "AND s.grain = k.grain AND s.start = k.start AND s.product IS NOT DISTINCT FROM k.product"
    )
    cur.unregister("merged_keys")
    _insert(cur, merged)
    return len(merged)


def from_ids(ids: np.ndarray[Any, Any]) -> BitMap:
    """A bitmap of compact user ids from an integer array (pyroaring adds an array('I') in C)."""
    if np.ma.isMaskedArray(ids):
        raise ValueError("user ids must not be NULL")
    return BitMap(array.array("I", ids.astype(np.uint32).tobytes()))


def union(blobs: Iterable[bytes]) -> BitMap:
    sets = [BitMap.deserialize(b) for b in blobs]
    return BitMap.union(*sets) if sets else BitMap()


def union_size(sets: Iterable[BitMap]) -> int:
    """How many users are in at least one of `sets`."""
    sets = list(sets)
    return len(BitMap.union(*sets)) if sets else 0


def users_by(rows: Iterable[tuple[Any, Any, bytes]]) -> dict[Any, dict[Any, BitMap]]:
    """(group, bucket, set) rows -> {group: {bucket: union of its sets}}."""
    out: dict[Any, dict[Any, list[bytes]]] = defaultdict(lambda: defaultdict(list))
    for group, bucket, blob in rows:
        out[group][bucket].append(blob)
    return {g: {b: union(blobs) for b, blobs in buckets.items()} for g, buckets in out.items()}
