"""The figures of one time bucket and group of a segmentation chart, as the queries that fill them
(query/segmentation.py, query/summaries.py) and the response that reads them share them."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any


@dataclass(slots=True)
class Stats:
    """u: distinct users, t: events, s: sum of the measured property, c: events that have it."""

    u: int = 0
    t: int = 0
    s: Decimal = Decimal(0)
    c: int = 0


# The figures of a bucket or group without events, for reading only (a default that is not built
# anew for each of the thousands of cells of a year of weekly figures by product).
NO_EVENTS = Stats()

# A group's labels (one per group-by), () when the chart is not grouped.
Group = tuple[str, ...]


def range_totals(per_bucket: dict[Group, dict[Any, Stats]]) -> dict[Group, Stats]:
    """Events, sums and value counts over the range: they add up across buckets (users do not)."""
    collapsed: dict[Group, Stats] = {}
    for key, by_bucket in per_bucket.items():
        total = collapsed[key] = Stats()
        for stats in by_bucket.values():
            total.t += stats.t
            total.s += stats.s
            total.c += stats.c
    return collapsed
