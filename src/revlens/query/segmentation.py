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
from decimal import Decimal
from typing import Any

from sqlglot import exp

from revlens.query import distribution, summaries
from revlens.query import formula as fx
from revlens.query.context import QueryContext
from revlens.query.figures import NO_EVENTS, Group, Stats, range_totals
from revlens.query.models import EventSpec, QueryError, SegmentationQuery
from revlens.query.sql import Compiler, and_, col
from revlens.query.timeaxis import bucket_sql, buckets, label, range_bounds

PROPERTY_METRICS = ("sums", "value_avg", "histogram")
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
    if summaries.summarizable(query, spec, measured, keys):
        per_bucket = summaries.buckets_from_daily_totals(ctx, query, spec, measured, keys)
        collapsed = range_totals(per_bucket)
        if "u" in needed:
            summaries.users_from_sets(ctx, query, spec, keys, per_bucket, collapsed)
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
        collapsed = range_totals(per_bucket)
    return per_bucket, collapsed


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
        edges = [float(b) for b in (query.buckets or distribution.DEFAULT_FREQUENCY_BUCKETS)]
        c = ctx.compiler()
        counts = distribution.frequency(ctx, c, _where(c, ctx, query, query.events[index]), freq_keys, edges)
        return distribution.response(counts, edges, index, query.limit)
    if node is not None and any(c.function == "HIST" for c in fx.calls(node)):
        raise QueryError("formula", "HIST(A) stands alone")
    if query.metric == "histogram":
        measured = _measured(query, 0, None)
        assert measured is not None
        keys = _groups(query, 0, measured)
        c = ctx.compiler()
        counts, edges = distribution.histogram(
            ctx,
            c,
            _where(c, ctx, query, query.events[0]),
            measured,
            keys,
            [float(b) for b in query.buckets] if query.buckets else None,
        )
        return distribution.response(counts, edges, 0, query.limit)

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
