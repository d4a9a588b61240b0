"""Event segmentation (`GET /api/2/events/segmentation`): uniques, totals, % active, average,
property sums / averages / distribution, frequency, and formulas, per time bucket and group.

Definitions (Amplitude's, shared/reference/amplitude.md 4.2), per bucket and over the whole range
("collapsed"): uniques = distinct users; totals = events; average = totals / uniques (users who did
the event only); pct_dau = uniques / users with any event, in percent; sums = sum of the measured
property (the event's first group-by), value_avg = sums / events that have the property;
frequency (`HIST(A)`) = users by how many times they did the event in the range.
Worked example: user 1 buys twice on Monday, user 2 once: Monday uniques 2, totals 3, average 1.5.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import numpy as np
from sqlglot import exp

from revlens.query import formula as fx
from revlens.query.context import QueryContext
from revlens.query.models import EventSpec, Interval, QueryError, SegmentationQuery
from revlens.query.sql import ANY_EVENT, Compiler, and_, col, or_, paren
from revlens.query.timeaxis import UNIT, bucket_sql, buckets, label, range_bounds, whole_span
from revlens.store import user_sets

PROPERTY_METRICS = ("sums", "value_avg", "histogram")
# Frequency buckets when none are given: 1..10 times, then 11-20, 21-50, 51 and more.
DEFAULT_FREQUENCY_BUCKETS = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 21, 51]
RANK_BY = {
    "uniques": "u",
    "totals": "t",
    "pct_dau": "u",
    "average": "t",
    "histogram": "t",
    "sums": "s",
    "value_avg": "s",
    "frequency": "u",
    "formula": "u",
}


@dataclass(slots=True)
class Stats:
    u: int = 0
    t: int = 0
    s: Decimal = Decimal(0)
    c: int = 0


# The figures of a bucket or group without events, for reading only (a default that is not built
# anew for each of the thousands of cells of a year of weekly figures by product).
NO_EVENTS = Stats()

Group = tuple[str, ...]


def _measured(query: SegmentationQuery, index: int, node: fx.Node | None) -> str | None:
    """The property an event's metric sums or averages: its first group-by (Amplitude's rule)."""
    spec = query.events[index]
    wants = query.metric in PROPERTY_METRICS and index == 0
    if node is not None:
        wants = any(c.event == index and c.function in ("PROPSUM", "PROPAVG", "REVENUETOTAL") for c in fx.calls(node))
        if (
            wants
            and not spec.group_by
            and any(c.event == index and c.function == "REVENUETOTAL" for c in fx.calls(node))
        ):
            return "$revenue"
    if not wants:
        return None
    if not spec.group_by:
        raise QueryError("e", f"m={query.metric} needs the property to measure as the event's group_by")
    return spec.group_by[0]


def _groups(query: SegmentationQuery, index: int, measured: str | None) -> list[str]:
    spec = query.events[index]
    own = (
        spec.group_by[1:] if measured is not None and spec.group_by and spec.group_by[0] == measured else spec.group_by
    )
    keys = list(own) + list(query.group_by)
    if len(keys) > 2:
        raise QueryError("g", "at most two group-bys in all")
    return keys


def _where(c: Compiler, ctx: QueryContext, query: SegmentationQuery, spec: EventSpec) -> exp.Expression:
    lo, hi = range_bounds(query.start, query.end)
    try:
        parts = [c.event_match(spec), c.time_range(lo, hi)]
    except ValueError as exc:
        raise QueryError("e", str(exc)) from None
    try:
        parts += c.segment(query.segment)
    except QueryError:
        raise
    except ValueError as exc:
        raise QueryError("s", str(exc)) from None
    return and_(*parts)


NEEDS = {
    "uniques": {"u"},
    "totals": {"t"},
    "pct_dau": {"u"},
    "average": {"u", "t"},
    "sums": {"s"},
    "value_avg": {"s", "c"},
}
CALL_NEEDS = {
    "UNIQUES": {"u"},
    "TOTALS": {"t"},
    "AVG": {"u", "t"},
    "PROPSUM": {"s"},
    "REVENUETOTAL": {"s"},
    "PROPAVG": {"s", "c"},
}


def _needs(query: SegmentationQuery, node: fx.Node | None, index: int, first: int) -> set[str]:
    """The aggregates an event's metric (and the ranking of its groups) uses: only those are computed."""
    if node is None:
        needed = set(NEEDS.get(query.metric, {"u", "t"}))
    else:
        needed = set()
        for call in fx.calls(node):
            if call.event == index:
                needed |= CALL_NEEDS.get(call.function, set())
    if index == first:
        needed.add(RANK_BY.get(query.metric, "u"))
    return needed


def _aggregates(c: Compiler, measured: str | None, needed: set[str]) -> list[exp.Expression]:
    items: list[exp.Expression] = []
    if "u" in needed:
        items.append(exp.Count(this=exp.Distinct(expressions=[col("user_idx")])).as_("u"))
    if "t" in needed:
        items.append(exp.Count(this=exp.Star()).as_("t"))
    if measured is not None and needed & {"s", "c"}:
        value = c.prop(measured, numeric=True)
        items += [exp.func("sum", value).as_("s"), exp.Count(this=value).as_("c")]
    return items


def _stats(
    ctx: QueryContext, query: SegmentationQuery, index: int, measured: str | None, keys: list[str], needed: set[str]
) -> tuple[dict[Group, dict[Any, Stats]], dict[Group, Stats]]:
    """Aggregates per bucket and group, and over the whole range. Counts, sums and property counts add
    up across buckets, so the range figures come from the buckets; distinct users need a grouping
    set of their own."""
    spec = query.events[index]
    per_bucket: dict[Group, dict[Any, Stats]] = defaultdict(dict)
    collapsed: dict[Group, Stats] = {}
    if not needed:
        return per_bucket, collapsed
    names = [n for n in ("u", "t") if n in needed] + (
        ["s", "c"] if measured is not None and needed & {"s", "c"} else []
    )
    if _summarizable(query, spec, measured, keys):
        per_bucket = _buckets_from_daily_totals(ctx, query, spec, measured, keys)
        collapsed = _range_totals(per_bucket)
        if "u" in needed:
            _users_from_sets(ctx, query, spec, keys, per_bucket, collapsed)
        return per_bucket, collapsed
    # One scan: per bucket and group, and (when distinct users are needed, which do not add up across
    # buckets) per group over the whole range, as a second grouping set whose bucket is NULL.
    c = ctx.compiler()
    labels = [c.label(k).as_(f"g{i}") for i, k in enumerate(keys)]
    bucket = bucket_sql(query.interval, col("local_time")).as_("b")
    groups = [exp.column(f"g{i}") for i in range(len(keys))]
    q = (
        exp.select(bucket, *labels, *_aggregates(c, measured, needed))
        .from_(exp.to_table("events").as_("e"))
        .where(_where(c, ctx, query, spec))
    )
    if "u" in needed:
        q = q.group_by(
            exp.GroupingSets(
                expressions=[exp.Tuple(expressions=[exp.column("b"), *groups]), exp.Tuple(expressions=groups)]
            )
        )
    else:
        q = q.group_by(exp.column("b"), *groups)
    for row in ctx.run(c, q):
        key = tuple(str(v) for v in row[1 : 1 + len(keys)])
        values = dict(zip(names, row[1 + len(keys) :], strict=True))
        stats = Stats(
            int(values.get("u") or 0),
            int(values.get("t") or 0),
            Decimal(values["s"]) if values.get("s") is not None else Decimal(0),
            int(values.get("c") or 0),
        )
        if row[0] is not None:  # local_time is never NULL: a NULL bucket is the whole-range set
            per_bucket[key][row[0]] = stats
        else:
            collapsed[key] = stats
    if "u" not in needed:
        collapsed = _range_totals(per_bucket)
    return per_bucket, collapsed


def _range_totals(per_bucket: dict[Group, dict[Any, Stats]]) -> dict[Group, Stats]:
    """Events, sums and value counts over the range: they add up across buckets (users do not)."""
    collapsed: dict[Group, Stats] = {}
    for key, by_bucket in per_bucket.items():
        total = collapsed[key] = Stats()
        for stats in by_bucket.values():
            total.t += stats.t
            total.s += stats.s
            total.c += stats.c
    return collapsed


# Properties the daily totals hold sums of (store/schema.py), by their column there, with the
# number of decimal places of the column (`revenue` is DECIMAL(38, 3); the Stripe amounts are integers).
SUMMED = {"$revenue": "revenue", "amount": "amount", "amount_paid": "amount_paid"}
SUMMED_SCALE = {"revenue": 3, "amount": 0, "amount_paid": 0}


def _int64(value: exp.Expression) -> exp.Expression:
    """`value` as BIGINT, NULL when it does not fit. DuckDB hands BIGINTs to Python several times
    faster than the HUGEINTs and DECIMALs its sums return (a year of weekly totals by product:
    2,650 rows in 2.8 ms instead of 7.0)."""
    return exp.TryCast(this=value, to=exp.DataType.build("BIGINT"))


def _summarizable(query: SegmentationQuery, spec: EventSpec, measured: str | None, keys: list[str]) -> bool:
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


def _buckets_from_daily_totals(
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


def _users_from_sets(
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


def _active_users(ctx: QueryContext, query: SegmentationQuery) -> tuple[dict[Any, int], int]:
    """Users with any event, per bucket and over the range (the % active denominator)."""
    results: list[dict[Any, int]] = []
    for bucketed in (True, False):
        c = ctx.compiler()
        spec = EventSpec(event_type="_active")
        select: list[exp.Expression] = [exp.Count(this=exp.Distinct(expressions=[col("user_idx")])).as_("u")]
        q = exp.select(*select).from_(exp.to_table("events").as_("e")).where(_where(c, ctx, query, spec))
        if bucketed:
            q = q.select(bucket_sql(query.interval, col("local_time")).as_("b")).group_by(exp.column("b"))
            results.append({row[1]: int(row[0]) for row in ctx.run(c, q)})
        else:
            results.append({None: int(ctx.run(c, q)[0][0])})
    return results[0], results[1][None]


def _frequency(
    ctx: QueryContext, query: SegmentationQuery, index: int, keys: list[str], edges: list[float]
) -> dict[Group, list[int]]:
    """Users per frequency bucket (how many times each did the event in the range), per group."""
    c = ctx.compiler()
    spec = query.events[index]
    known = exp.Not(this=exp.Is(this=col("user_idx"), expression=exp.null()))
    if not keys:
        # Ungrouped (the usual chart): the matching events' user ids as one array, counted per user and
        # then per count with two bincounts. A third of the time of the same work as a hash aggregate
        # in SQL on a million users (docs/benchmarks.md).
        ids = (
            exp.select(col("user_idx"))
            .from_(exp.to_table("events").as_("e"))
            .where(and_(_where(c, ctx, query, spec), known))
        )
        by_count = frequency_counts(ctx.columns(c, ids)["user_idx"])
        ungrouped = [0] * len(edges)
        for n in np.flatnonzero(by_count):
            slot = _slot(edges, float(n))
            if slot is not None:
                ungrouped[slot] += int(by_count[n])
        return {(): ungrouped}
    labels = [c.label(k).as_(f"g{i}") for i, k in enumerate(keys)]
    inner = (
        exp.select(*labels, col("user_idx"), exp.Count(this=exp.Star()).as_("n"))
        .from_(exp.to_table("events").as_("e"))
        .where(and_(_where(c, ctx, query, spec), known))
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
        slot = _slot(edges, n)
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


def _histogram(
    ctx: QueryContext, query: SegmentationQuery, measured: str, keys: list[str], edges: list[float] | None
) -> tuple[dict[Group, list[int]], list[float]]:
    """Events per bucket of the measured property's value (min inclusive, max exclusive)."""
    c = ctx.compiler()
    labels = [c.label(k).as_(f"g{i}") for i, k in enumerate(keys)]
    value = c.prop(measured, numeric=True)
    q = (
        exp.select(*labels, value.as_("v"), exp.Count(this=exp.Star()).as_("n"))
        .from_(exp.to_table("events").as_("e"))
        .where(and_(_where(c, ctx, query, query.events[0]), exp.Not(this=exp.Is(this=value, expression=exp.null()))))
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
        slot = _slot(edges, float(row[len(keys)]))
        if slot is not None:
            result[tuple(str(v) for v in row[: len(keys)])][slot] += int(row[len(keys) + 1])
    return result, edges


def _slot(edges: list[float], value: float) -> int | None:
    slot = None
    for i, edge in enumerate(edges):
        if value >= edge:
            slot = i
    return slot


def bucket_labels(edges: list[float]) -> list[str]:
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


def _metric(metric: str, stats: Stats, active: int | None) -> Any:
    if metric == "uniques":
        return stats.u
    if metric == "totals":
        return stats.t
    if metric == "average":
        return stats.t / stats.u if stats.u else 0
    if metric == "pct_dau":
        return 100.0 * stats.u / active if active else 0
    if metric == "sums":
        return stats.s
    if metric == "value_avg":
        return stats.s / stats.c if stats.c else 0
    raise QueryError("m", f"unknown metric {metric!r}")


def _call_value(call: fx.Call, stats: Stats) -> float | None:
    if call.function == "UNIQUES":
        return float(stats.u)
    if call.function == "TOTALS":
        return float(stats.t)
    if call.function == "AVG":
        return stats.t / stats.u if stats.u else None
    if call.function in ("PROPSUM", "REVENUETOTAL"):
        return float(stats.s)
    if call.function == "PROPAVG":
        return float(stats.s / stats.c) if stats.c else None
    raise QueryError("formula", f"{call.function} cannot be combined with other terms")


def run(query: SegmentationQuery, ctx: QueryContext) -> dict[str, Any]:
    """Compute a segmentation chart; returns Amplitude's `data` object."""
    if not query.events:
        raise QueryError("e", "an event is required")
    node: fx.Node | None = None
    if query.metric == "formula":
        if not query.formula:
            raise QueryError("formula", "required when m=formula")
        try:
            node = fx.parse(query.formula.split(";")[0])
        except fx.FormulaError as exc:
            raise QueryError("formula", str(exc)) from None
        for call in fx.calls(node):
            if call.event >= len(query.events):
                raise QueryError(
                    "formula", f"refers to event {chr(65 + call.event)}, but only {len(query.events)} given"
                )
    x = buckets(query.start, query.end, query.interval)
    x_values = [label(b, query.interval) for b in x]

    hist_call = node is not None and isinstance(node, fx.Call) and node.function == "HIST"
    if query.metric == "frequency" or hist_call:
        index = node.event if isinstance(node, fx.Call) else 0
        freq_keys = _groups(query, index, None)
        edges = [float(b) for b in (query.buckets or DEFAULT_FREQUENCY_BUCKETS)]
        return _distribution_response(_frequency(ctx, query, index, freq_keys, edges), edges, index, query.limit)
    if node is not None and any(c.function == "HIST" for c in fx.calls(node)):
        raise QueryError("formula", "HIST(A) stands alone")
    if query.metric == "histogram":
        measured = _measured(query, 0, None)
        assert measured is not None
        keys = _groups(query, 0, measured)
        counts, edges = _histogram(
            ctx, query, measured, keys, [float(b) for b in query.buckets] if query.buckets else None
        )
        return _distribution_response(counts, edges, 0, query.limit)

    indexes = sorted({c.event for c in fx.calls(node)}) if node is not None else list(range(len(query.events)))
    measured_by = {i: _measured(query, i, node) for i in indexes}
    keys = {i: _groups(query, i, measured_by[i]) for i in indexes}
    data = {i: _stats(ctx, query, i, measured_by[i], keys[i], _needs(query, node, i, indexes[0])) for i in indexes}
    active_per_bucket, active_total = _active_users(ctx, query) if query.metric == "pct_dau" else ({}, 0)

    series: list[list[Any]] = []
    labels: list[Any] = []
    collapsed: list[list[dict[str, Any]]] = []
    meta: list[dict[str, int]] = []
    rank_key = RANK_BY.get(query.metric, "u")
    if node is not None:
        first = indexes[0]
        groups = _ranked(data[first][1], rank_key, query.limit, keys[first])
        for group in groups:

            def value_at(bucket: Any, group: Group = group) -> float | None:
                return fx.evaluate(node, lambda call: _call_value(call, _lookup(data[call.event], group, bucket)))

            series.append([_clean(value_at(b)) for b in x])
            collapsed.append([{"setId": "", "value": _clean(value_at(None))}])
            labels.append([0, "; ".join(group)] if keys[first] else 0)
            meta.append({"segmentIndex": 0, "eventIndex": 0, "formulaIndex": 0})
    else:
        for i in indexes:
            per_bucket, totals = data[i]
            for group in _ranked(totals, rank_key, query.limit, keys[i]):
                row = per_bucket.get(group, {})
                series.append([_metric(query.metric, row.get(b, NO_EVENTS), active_per_bucket.get(b, 0)) for b in x])
                collapsed.append(
                    [{"setId": "", "value": _metric(query.metric, totals.get(group, NO_EVENTS), active_total)}]
                )
                labels.append([i, "; ".join(group)] if keys[i] else i)
                meta.append({"segmentIndex": 0, "eventIndex": i})
    return {
        "series": series,
        "seriesLabels": labels,
        "seriesCollapsed": collapsed,
        "xValues": x_values,
        "seriesMeta": meta,
    }


def _lookup(data: tuple[dict[Group, dict[Any, Stats]], dict[Group, Stats]], group: Group, bucket: Any) -> Stats:
    per_bucket, totals = data
    if bucket is None:
        return totals.get(group, Stats())
    return per_bucket.get(group, {}).get(bucket, Stats())


def _clean(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return value


def _ranked(totals: dict[Group, Stats], key: str, limit: int, keys: list[str]) -> list[Group]:
    if not keys:
        return [()]
    return sorted(totals, key=lambda g: (-getattr(totals[g], key), g))[:limit]


def _distribution_response(
    counts: dict[Group, list[int]], edges: list[float], index: int, limit: int
) -> dict[str, Any]:
    groups = sorted(counts, key=lambda g: (-sum(counts[g]), g))[:limit] or [()]
    series = [counts.get(g, [0] * len(edges)) for g in groups]
    return {
        "series": series,
        "seriesLabels": [[index, "; ".join(g)] if g else index for g in groups],
        "seriesCollapsed": [[{"setId": "", "value": sum(s)}] for s in series],
        "xValues": bucket_labels(edges),
        "seriesMeta": [{"segmentIndex": 0, "eventIndex": index} for _ in groups],
    }
