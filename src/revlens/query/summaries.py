"""Segmentation figures from the summaries kept at ingest instead of the events: events, sums and
property counts per bucket and product from `daily_totals`, distinct users from the user sets
(store/user_sets.py). Both give the answer counting the events gives (tests/test_query_properties.py
checks each against a reference); `summarizable` says when they can.
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from sqlglot import exp

from revlens.query.context import QueryContext
from revlens.query.figures import Group, Stats
from revlens.query.models import EventSpec, Interval, SegmentationQuery
from revlens.query.sql import ANY_EVENT, and_, col, or_, paren
from revlens.query.timeaxis import UNIT, bucket_sql, range_bounds, whole_span
from revlens.store import user_sets

# Properties the daily totals hold sums of (store/schema.py), by their column there, with the
# number of decimal places of the column (`revenue` is DECIMAL(38, 3); the Stripe amounts are integers).
SUMMED = {"$revenue": "revenue", "amount": "amount", "amount_paid": "amount_paid"}
SUMMED_SCALE = {"revenue": 3, "amount": 0, "amount_paid": 0}


def _int64(value: exp.Expression) -> exp.Expression:
    """`value` as BIGINT, NULL when it does not fit. DuckDB hands BIGINTs to Python several times
    faster than the HUGEINTs and DECIMALs its sums return (a year of weekly totals by product:
    2,650 rows in 2.8 ms instead of 7.0)."""
    return exp.TryCast(this=value, to=exp.DataType.build("BIGINT"))


def summarizable(query: SegmentationQuery, spec: EventSpec, measured: str | None, keys: list[str]) -> bool:
    """Whether counts, sums and users can come from the summaries kept at ingest (daily totals and
    day sets): one event type, no filters or segments, day or coarser buckets, grouped by nothing or
    the product, summing a money column."""
    segment = query.segment
    return (
        spec.event_type not in ANY_EVENT
        and not spec.filters
        and not (segment.filters or segment.cohorts or segment.not_cohorts)
        and query.interval in (Interval.daily, Interval.weekly, Interval.monthly)
        and all(k.removeprefix("gp:") == "product" for k in keys)
        and (measured is None or measured.removeprefix("gp:") in SUMMED)
    )


def buckets_from_daily_totals(
    ctx: QueryContext, query: SegmentationQuery, spec: EventSpec, measured: str | None, keys: list[str]
) -> dict[Group, dict[Any, Stats]]:
    """Events, sums and counts per bucket and product from the totals kept at ingest; the same
    answer as counting the events (tests/test_query_properties.py checks both against a reference)."""
    c = ctx.compiler()
    lo, hi = range_bounds(query.start, query.end)
    d = "d"
    column = SUMMED[measured.removeprefix("gp:")] if measured is not None else None
    # Counts always fit 64 bits. A sum is read in minor units as a BIGINT, and exactly (as the sum
    # itself) only where it does not fit.
    select: list[exp.Expression] = [
        bucket_sql(query.interval, col("day", d)).as_("b"),
        *[col("product", d).as_(f"g{i}") for i in range(len(keys))],
        exp.cast(exp.func("sum", col("events", d)), "BIGINT").as_("t"),
    ]
    scale = SUMMED_SCALE[column] if column is not None else 0
    if column is not None:
        total = exp.func("sum", col(column, d))
        minor = _int64(exp.Mul(this=total, expression=exp.Literal.number(10**scale)) if scale else total)
        select += [
            exp.cast(exp.func("sum", col(f"{column}_n", d)), "BIGINT").as_("c"),
            minor.as_("s_minor"),
            exp.If(this=exp.Is(this=minor.copy(), expression=exp.null()), true=total.copy()).as_("s_exact"),
        ]
    where = and_(
        exp.EQ(this=col("pid", d), expression=c.bind(ctx.pid)),
        exp.EQ(this=col("event_type", d), expression=c.bind(spec.event_type)),
        c.time_range(lo, hi, column="day", table=d),
    )
    group = [exp.column("b"), *[exp.column(f"g{i}") for i in range(len(keys))]]
    q = exp.select(*select).from_(exp.to_table("daily_totals").as_(d)).where(where).group_by(*group)
    per_bucket: dict[Group, dict[Any, Stats]] = defaultdict(dict)
    # A year of weekly totals by product is 2,650 rows: the loops below unpack each row once and
    # build one Stats, a third of the time of indexing into it (docs/benchmarks.md).
    rows = ctx.run(c, q)
    if column is None:
        for bucket, *labels, events in rows:
            per_bucket[tuple(labels)][bucket] = Stats(0, events)
    else:
        for bucket, *labels, events, n, minor, exact in rows:
            s = Decimal(exact) if minor is None else Decimal(minor).scaleb(-scale)
            per_bucket[tuple(labels)][bucket] = Stats(0, events, s, n)
    return per_bucket


def users_from_sets(
    ctx: QueryContext,
    query: SegmentationQuery,
    spec: EventSpec,
    keys: list[str],
    per_bucket: dict[Group, dict[Any, Stats]],
    collapsed: dict[Group, Stats],
) -> None:
    """Distinct users per bucket and group, and over the range, as unions of the user sets kept at
    ingest (store/user_sets.py): whole weeks or months from their own sets, the partial ones at the
    range's edges from day sets. Filled into the figures the daily totals gave."""
    c = ctx.compiler()
    lo, hi = range_bounds(query.start, query.end)
    d = "d"
    unit = UNIT[query.interval]
    whole_lo, whole_hi = whole_span(lo, hi, unit)
    periods = or_(
        c.set_period(unit, whole_lo, whole_hi, d),
        c.set_period("day", lo, whole_lo, d),
        c.set_period("day", whole_hi, hi, d),
    )
    product = col("product", d)
    has_product: exp.Expression = exp.Is(this=product, expression=exp.Null())
    if keys:
        has_product = exp.Not(this=has_product)
    q = (
        exp.select(product, bucket_sql(query.interval, col("start", d)).as_("b"), col("users", d))
        .from_(exp.to_table("user_sets").as_(d))
        .where(
            and_(
                exp.EQ(this=col("pid", d), expression=c.bind(ctx.pid)),
                exp.EQ(this=col("event_type", d), expression=c.bind(spec.event_type)),
                paren(periods),
                has_product,
            )
        )
    )
    for name, by_bucket in user_sets.users_by(ctx.run(c, q)).items():
        group: Group = tuple(str(name) for _ in keys)
        for bucket, users in by_bucket.items():
            per_bucket[group].setdefault(bucket, Stats()).u = len(users)
        collapsed.setdefault(group, Stats()).u = user_sets.union_size(by_bucket.values())
