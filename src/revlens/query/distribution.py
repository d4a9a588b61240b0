"""Distributions for segmentation: users by how many times they did an event (frequency, `HIST(A)`)
and events by the value of a property (histogram), in buckets given by their lower edges.

Worked example, frequency with the default buckets: user 1 bought three times in the range, users 2
and 3 once each: bucket "1" holds 2 users, bucket "3" holds 1, the others 0.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

import numpy as np
from sqlglot import exp

from revlens.query.context import QueryContext
from revlens.query.figures import Group
from revlens.query.sql import Compiler, and_, col

# Frequency buckets when none are given: 1..10 times, then 11-20, 21-50, 51 and more.
DEFAULT_FREQUENCY_BUCKETS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 21, 51]


def frequency(
    ctx: QueryContext, c: Compiler, matching: exp.Expression, keys: list[str], edges: list[float]
) -> dict[Group, list[int]]:
    """Users per frequency bucket (how many times each did the events `matching` selects), per group
    of `keys`."""
    known = exp.Not(this=exp.Is(this=col("user_idx"), expression=exp.null()))
    if not keys:
        # Ungrouped (the usual chart): the matching events' user ids as one array, counted per user and
        # then per count with two bincounts. A third of the time of the same work as a hash aggregate
        # in SQL on a million users (docs/benchmarks.md).
        ids = exp.select(col("user_idx")).from_(exp.to_table("events").as_("e")).where(and_(matching, known))
        by_count = frequency_counts(ctx.columns(c, ids)["user_idx"])
        ungrouped = [0] * len(edges)
        for n in np.flatnonzero(by_count):
            slot = bucket_of(edges, float(n))
            if slot is not None:
                ungrouped[slot] += int(by_count[n])
        return {(): ungrouped}
    labels = [c.label(k).as_(f"g{i}") for i, k in enumerate(keys)]
    inner = (
        exp.select(*labels, col("user_idx"), exp.Count(this=exp.Star()).as_("n"))
        .from_(exp.to_table("events").as_("e"))
        .where(and_(matching, known))
        .group_by(*[exp.column(f"g{i}") for i in range(len(keys))], col("user_idx"))
    )
    outer_keys = [exp.column(f"g{i}") for i in range(len(keys))]
    q = (
        exp.select(*outer_keys, exp.column("n"), exp.Count(this=exp.Star()).as_("users"))
        .from_(exp.Subquery(this=inner, alias=exp.TableAlias(this=exp.to_identifier("f"))))
        .group_by(*outer_keys, exp.column("n"))
    )
    result: dict[Group, list[int]] = defaultdict(lambda: [0] * len(edges))
    for row in ctx.run(c, q):
        key = tuple(str(v) for v in row[: len(keys)])
        n, users = float(row[len(keys)]), int(row[len(keys) + 1])
        slot = bucket_of(edges, n)
        if slot is not None:
            result[key][slot] += users
    return result


def frequency_counts(user_ids: np.ndarray) -> np.ndarray:
    """Users by how many of the given events each did: element n is the number of users with
    exactly n of them (element 0 is unused). `user_ids` holds one compact user id per event."""
    ids = np.asarray(user_ids, dtype=np.int64)
    if ids.size == 0:
        return np.zeros(1, dtype=np.int64)
    per_user = np.bincount(ids)  # compact ids are dense: one slot per user of the project
    users = np.bincount(per_user)
    users[0] = 0
    return users


def histogram(
    ctx: QueryContext,
    c: Compiler,
    matching: exp.Expression,
    measured: str,
    keys: list[str],
    edges: list[float] | None,
) -> tuple[dict[Group, list[int]], list[float]]:
    """Events per bucket of the measured property's value (min inclusive, max exclusive), per group;
    ten equal buckets from the smallest value to the largest when no edges are given."""
    labels = [c.label(k).as_(f"g{i}") for i, k in enumerate(keys)]
    value = c.prop(measured, numeric=True)
    q = (
        exp.select(*labels, value.as_("v"), exp.Count(this=exp.Star()).as_("n"))
        .from_(exp.to_table("events").as_("e"))
        .where(and_(matching, exp.Not(this=exp.Is(this=value, expression=exp.null()))))
        .group_by(*[exp.column(f"g{i}") for i in range(len(keys))], exp.column("v"))
    )
    rows = ctx.run(c, q)
    if edges is None:
        values = [float(r[len(keys)]) for r in rows]
        lo, hi = (min(values), max(values)) if values else (0.0, 1.0)
        width = (hi - lo) / 10 or 1.0
        edges = [lo + width * i for i in range(10)]
    result: dict[Group, list[int]] = defaultdict(lambda: [0] * len(edges))
    for row in rows:
        slot = bucket_of(edges, float(row[len(keys)]))
        if slot is not None:
            result[tuple(str(v) for v in row[: len(keys)])][slot] += int(row[len(keys) + 1])
    return result, edges


def bucket_of(edges: list[float], value: float) -> int | None:
    """The bucket `value` falls in: the last whose lower edge it reaches (None below the first)."""
    slot = None
    for i, edge in enumerate(edges):
        if value >= edge:
            slot = i
    return slot


def bucket_labels(edges: list[float]) -> list[str]:
    """`xValues` for buckets given by their lower edges: "1", "11-20", "51+"."""

    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    out = []
    for i, lo in enumerate(edges):
        if i + 1 < len(edges):
            hi = edges[i + 1]
            if float(lo).is_integer() and float(hi).is_integer():
                # whole counts: [11, 21) reads "11-20"
                out.append(fmt(lo) if hi - lo == 1 else f"{fmt(lo)}-{fmt(hi - 1)}")
            else:
                out.append(f"{fmt(lo)}-{fmt(hi)}")
        else:
            out.append(f"{fmt(lo)}+")
    return out


def response(counts: dict[Group, list[int]], edges: list[float], index: int, limit: int) -> dict[str, Any]:
    """Amplitude's `data` object for a distribution of event `index`: the `limit` largest groups."""
    groups = sorted(counts, key=lambda g: (-sum(counts[g]), g))[:limit] or [()]
    series = [counts.get(g, [0] * len(edges)) for g in groups]
    return {
        "series": series,
        "seriesLabels": [[index, "; ".join(g)] if g else index for g in groups],
        "seriesCollapsed": [[{"setId": "", "value": sum(s)}] for s in series],
        "xValues": bucket_labels(edges),
        "seriesMeta": [{"segmentIndex": 0, "eventIndex": index} for _ in groups],
    }
