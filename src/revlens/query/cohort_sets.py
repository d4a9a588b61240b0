"""Cohorts answered from the user sets kept at ingest (store/user_sets.py) instead of the events.

A leaf "performed the event at least once, without filters" over all time, during a date range or
in the last N days is a union of the period sets of that event type; `all`, `any` and `not` are
intersections, unions and differences of those. Whole months come from month sets, the other whole
days from day sets; only "the last N days" has partial days (it starts and ends at an instant), and
those few days are read from the events. A definition with any other leaf (a count or sum condition,
filters, "within N days of the first event", any event) returns None and is computed in SQL
(query/sql.py); both give the same members (tests/test_query_properties.py).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal
from functools import reduce

from pyroaring import BitMap
from sqlglot import exp

from revlens.query.cohort_model import CohortNode, Measure, Performed
from revlens.query.context import QueryContext
from revlens.query.sql import ANY_EVENT, Compiler, and_, col, not_, or_, paren
from revlens.query.timeaxis import range_bounds, truncate, whole_span
from revlens.store import user_sets


def users(node: CohortNode, ctx: QueryContext) -> BitMap | None:
    """The members (`user_idx`) of a definition, or None when the sets cannot answer it."""
    if not answerable(node):
        return None
    return _users(node, ctx)


def answerable(node: CohortNode) -> bool:
    if node.performed is not None:
        return _leaf_answerable(node.performed)
    if node.not_ is not None:
        return answerable(node.not_)
    return all(answerable(child) for child in node.all or node.any or [])


def _leaf_answerable(leaf: Performed) -> bool:
    return (
        not leaf.filters
        and leaf.event_type not in ANY_EVENT
        and _at_least_once(leaf.measure)
        and leaf.timing.kind in ("all_time", "during", "last_days")
    )


def _at_least_once(measure: Measure) -> bool:
    """Whether the condition on a user's event count is exactly "one or more" (counts are integers)."""
    if measure.kind != "count":
        return False
    if measure.op == ">=":
        return Decimal(0) < measure.value <= 1
    return measure.op == ">" and Decimal(0) <= measure.value < 1


def _users(node: CohortNode, ctx: QueryContext) -> BitMap:
    if node.performed is not None:
        return _performed(node.performed, ctx)
    if node.not_ is not None:
        return _all_users(ctx) - _users(node.not_, ctx)
    children = [_users(child, ctx) for child in node.all or node.any or []]
    return reduce(BitMap.intersection if node.all else BitMap.union, children[1:], children[0])


def _all_users(ctx: QueryContext) -> BitMap:
    c = ctx.compiler()
    return ctx.user_set(c, c.all_users())


def _performed(leaf: Performed, ctx: QueryContext) -> BitMap:
    timing = leaf.timing
    if timing.kind == "during" and timing.start and timing.end:
        lo, hi = range_bounds(timing.start, timing.end)
        return _from_sets(ctx, leaf.event_type, lo, hi)
    if timing.kind == "last_days" and timing.days:
        return _last_days(ctx, leaf.event_type, ctx.now - timedelta(days=timing.days), ctx.now)
    return _from_sets(ctx, leaf.event_type, None, None)


def _last_days(ctx: QueryContext, event_type: str, since: datetime, until: datetime) -> BitMap:
    """Users with the event at an instant in [since, until] (naive UTC).

    Local days two or more days after `since`'s and before `until`'s are whole inside the window
    (a clock change moves a day's instants by hours, not a day), so their sets answer; the days
    at the two ends are read from the events, bounded by the instants themselves.
    """
    first = truncate(ctx.local_of(since), "day") + timedelta(days=2)
    last = truncate(ctx.local_of(until), "day") - timedelta(days=1)
    if first >= last:
        return _from_events(ctx, event_type, since, until, None)
    found = _from_sets(ctx, event_type, first, last)
    found |= _from_events(ctx, event_type, since, until, (first, last))
    return found


def _from_events(
    ctx: QueryContext, event_type: str, since: datetime, until: datetime, skip: tuple[datetime, datetime] | None
) -> BitMap:
    """Users with the event at an instant in [since, until], leaving out local days [skip)."""
    c = ctx.compiler()
    where: list[exp.Expression] = [
        exp.EQ(this=col("pid", "e"), expression=c.bind(ctx.pid)),
        exp.EQ(this=col("event_type", "e"), expression=c.bind(event_type)),
        exp.Not(this=exp.Is(this=col("user_idx", "e"), expression=exp.null())),
    ]
    window = _between(c, since, until)
    if skip is not None:
        where.append(not_(c.time_range(skip[0], skip[1])))
        # The same in instants, a day wider on each side, so the scan skips the middle of the range.
        window = or_(
            _between(c, since, min(ctx.utc_of(skip[0]) + timedelta(days=1), until)),
            _between(c, max(ctx.utc_of(skip[1]) - timedelta(days=1), since), until),
        )
    q = (  # copy=False: built for this query only (sqlglot copies the tree at every step by default)
        exp.select(col("user_idx", "e"))
        .from_(exp.to_table("events").as_("e"), copy=False)
        .where(and_(*where, paren(window)), copy=False)
    )
    return ctx.user_set(c, q)


def _between(c: Compiler, since: datetime, until: datetime) -> exp.Expression:
    """since <= time <= until (both ends included)."""
    return and_(
        exp.GTE(this=col("time", "e"), expression=c.bind(since)),
        exp.LTE(this=col("time", "e"), expression=c.bind(until)),
    )


def _from_sets(ctx: QueryContext, event_type: str, lo: datetime | None, hi: datetime | None) -> BitMap:
    """The union of the sets of local days [lo, hi) (all time when None): whole months from month
    sets, the days around them from day sets."""
    c = ctx.compiler()
    d = "d"
    if lo is None or hi is None:
        periods: exp.Expression = exp.EQ(this=col("grain", d), expression=c.bind("month"))
    else:
        months_lo, months_hi = whole_span(lo, hi, "month")
        periods = or_(
            c.set_period("month", months_lo, months_hi, d),
            c.set_period("day", lo, months_lo, d),
            c.set_period("day", months_hi, hi, d),
        )
    q = (
        exp.select(col("users", d))
        .from_(exp.to_table("user_sets").as_(d), copy=False)
        .where(
            and_(
                exp.EQ(this=col("pid", d), expression=c.bind(ctx.pid)),
                exp.EQ(this=col("event_type", d), expression=c.bind(event_type)),
                exp.Is(this=col("product", d), expression=exp.Null()),
                paren(periods),
            ),
            copy=False,
        )
    )
    return user_sets.union(row[0] for row in ctx.run(c, q))
