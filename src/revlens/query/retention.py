"""Retention (`GET /api/2/retention`): of the users who did the start event, who came back, when.

Each user joins one cohort: the day, week or month (project time zone) of their first start event
in [start, end] (for `se=_new`, of their first event ever, which must fall in the range). Interval
k of a user is, by default, a rolling window from that first start event's exact time: day k is
[t0 + 24h*k, t0 + 24h*(k+1)), week k uses 7-day windows, month k 30-day windows (Amplitude's
default). With `calendar=true`, k counts calendar days, weeks (from Monday) or months instead.
Return events may fall after `end`. The start event itself counts as a return when it matches the
return event, so "Day 0" is 100% when both are the same event.

- Return On (`rm=n-day`): users with a return in interval k exactly.
- Return On or After (`rm=rolling`): users with a return in interval k or later.
- Brackets (`rm=bracket&rb=[[0,1],[1,4]]`): users with a return in any interval lo <= k < hi.

Worked example, weekly Return On: Ann starts Monday 9:00 and returns the next Tuesday (8 days
later, week 1) and 20 days later (week 2): she counts in weeks 0, 1 and 2.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date, datetime, timedelta
from typing import Any

from sqlglot import exp

from revlens.query import retention_arrays
from revlens.query.context import QueryContext
from revlens.query.models import Interval, QueryError, RetentionMode, RetentionQuery
from revlens.query.retention_arrays import MICROS_PER_DAY, CountRow, SizeRow
from revlens.query.sql import and_, col, paren
from revlens.query.timeaxis import UNIT, range_bounds, step, truncate

# Cohort dates accepted: returns are read up to about ten years after the range (120 calendar
# months), and the range is widened by a day on each side for time-zone offsets.
EARLIEST, LATEST = date(1900, 1, 1), date(9899, 12, 31)
INTERVALS = {1: Interval.daily, 7: Interval.weekly, 30: Interval.monthly}
MAX_INTERVALS = 120


def _count_intervals(q: RetentionQuery) -> int:
    if q.intervals is not None:
        return min(q.intervals, MAX_INTERVALS)
    days = (q.end - q.start).days + 1
    return max(1, min(MAX_INTERVALS, -(-days // q.interval)))


def _brackets(q: RetentionQuery, k_max: int) -> list[tuple[int, int]]:
    if q.mode == RetentionMode.bracket:
        if not q.brackets:
            raise QueryError("rb", "required when rm=bracket, e.g. [[0,1],[1,4]]")
        if len(q.brackets) > MAX_INTERVALS:
            raise QueryError("rb", f"at most {MAX_INTERVALS} brackets")
        for lo, hi in q.brackets:
            if not 0 <= lo < hi:
                raise QueryError("rb", f"bracket [{lo},{hi}] needs 0 <= lo < hi (hi is exclusive)")
            if hi > MAX_INTERVALS:
                raise QueryError("rb", f"bracket [{lo},{hi}] ends past interval {MAX_INTERVALS}, the most offered")
        return list(q.brackets)
    return [(k, k + 1) for k in range(k_max)]


def run(q: RetentionQuery, ctx: QueryContext, *, arrays: bool | None = None) -> dict[str, Any]:
    """The retention response. Counted on arrays where that form is the quicker one
    (retention_arrays.py), else in SQL. `arrays` forces one form (True: arrays wherever they can
    answer; False: SQL): the tests compare both with the reference."""
    if q.interval not in INTERVALS:
        raise QueryError("i", "must be 1, 7 or 30")
    unit = UNIT[INTERVALS[q.interval]]
    k_max = _count_intervals(q)
    brackets = _brackets(q, k_max)
    if q.start < EARLIEST:
        raise QueryError("start", f"must be {EARLIEST:%Y%m%d} or later")
    if q.end > LATEST:
        raise QueryError("end", f"must be {LATEST:%Y%m%d} or earlier")
    if q.start_event.event_type == "_new":
        if q.start_event.filters or q.start_event.group_by:
            raise QueryError("se", "_new takes no filters or group-by: it is every user new in the range")
        if q.segment.filters or q.segment.cohorts or q.segment.not_cohorts or q.group_by:
            raise QueryError("se", "_new retention takes no segment or group-by here")
    lo, hi = range_bounds(q.start, q.end)
    use_arrays = retention_arrays.applies(q) if arrays is None else arrays and retention_arrays.can_answer(q)
    if use_arrays:
        size_rows, count_rows = retention_arrays.cells(q, ctx, unit, brackets, lo, hi)
    else:
        size_rows, count_rows = _cells_sql(q, ctx, unit, brackets, lo, hi)
    return _response(q, ctx, unit, brackets, size_rows, count_rows)


def _cells_sql(
    q: RetentionQuery, ctx: QueryContext, unit: str, brackets: list[tuple[int, int]], lo: datetime, hi: datetime
) -> tuple[list[SizeRow], list[CountRow]]:
    """Cohort sizes and per-bracket return counts, by joining each user's start with their returns."""
    horizon = max(b_hi for _, b_hi in brackets)
    c = ctx.compiler()

    # The cohort: each user's first start event in the range. The group column exists only when
    # grouping: carrying a constant through the join and DISTINCT costs about 15 % (docs/benchmarks.md).
    grouped = bool(q.group_by)

    def keys(table: str | None) -> list[exp.Expression]:
        return [col("cohort", table), col("grp", table)] if grouped else [col("cohort", table)]

    def labels(table: str | None) -> list[exp.Expression]:
        return keys(table) if grouped else [col("cohort", table), exp.Literal.string("").as_("grp")]

    if q.start_event.event_type == "_new":
        starts = (
            exp.select(
                col("user_idx", "u"),
                col("first_time", "u").as_("t0"),
                exp.func("date_trunc", exp.Literal.string(unit), col("first_local_time", "u")).as_("cohort"),
            )
            .from_(exp.to_table("users").as_("u"), copy=False)
            .where(retention_arrays.new_in_range(c, ctx.pid, lo, hi), copy=False)
        )
    else:
        spec = retention_arrays.any_as_all(q.start_event)
        starts = (
            exp.select(
                col("user_idx"),
                exp.func("min", col("time")).as_("t0"),
                exp.func("date_trunc", exp.Literal.string(unit), exp.func("min", col("local_time"))).as_("cohort"),
                *([exp.func("arg_min", c.label(q.group_by), col("time")).as_("grp")] if q.group_by else []),
            )
            .from_(exp.to_table("events").as_("e"), copy=False)
            .where(
                and_(
                    c.event_match(spec),
                    c.time_range(lo, hi),
                    exp.Not(this=exp.Is(this=col("user_idx"), expression=exp.null())),
                    *c.segment(q.segment),
                ),
                copy=False,
            )
            .group_by(col("user_idx"), copy=False)
        )

    # Which interval each return falls in, for each user.
    ret = retention_arrays.any_as_all(q.return_event)
    window = q.interval * MICROS_PER_DAY
    if q.calendar:
        k_expr: exp.Expression = exp.DateDiff(
            this=exp.func("date_trunc", exp.Literal.string(unit), col("local_time", "r")),
            expression=col("cohort", "s"),
            unit=exp.var(unit.upper()),
        )
    else:
        k_expr = exp.func(
            "floor",
            exp.Div(
                this=paren(
                    exp.Sub(
                        this=exp.func("epoch_us", col("time", "r")), expression=exp.func("epoch_us", col("t0", "s"))
                    )
                ),
                expression=c.bind(window),
            ),
        )
    bounds: list[exp.Expression] = [
        exp.GTE(this=col("time", "r"), expression=col("t0", "s")),
        # Constant bounds as well, so the scan skips data outside the window.
        *retention_arrays.return_bounds(c, q, horizon, lo, hi, "r", first_seen=False),
    ]
    if q.mode != RetentionMode.rolling and not q.calendar:
        # Returns past the last interval asked for change nothing.
        bounds.append(
            exp.LT(
                this=exp.func("epoch_us", col("time", "r")),
                expression=exp.Add(this=exp.func("epoch_us", col("t0", "s")), expression=c.bind(window * horizon)),
            )
        )
    returns = (
        exp.select(col("user_idx", "s"), *keys("s"), exp.cast(k_expr, "BIGINT").as_("k"))
        .distinct(copy=False)
        .from_(exp.to_table("s"), copy=False)
        .join(
            exp.to_table("events").as_("r"),
            on=and_(exp.EQ(this=col("user_idx", "r"), expression=col("user_idx", "s")), c.event_match(ret, table="r")),
            copy=False,
        )
        .where(and_(*bounds), copy=False)
    )
    sizes = (
        exp.select(*labels(None), exp.Literal.number(-1).as_("j"), exp.Count(this=exp.Star()).as_("n"))
        .from_(exp.to_table("s"), copy=False)
        .group_by(*keys(None), copy=False)
    )
    if q.mode == RetentionMode.n_day:
        # One bracket per interval: the interval number is the column, and x is already distinct per user.
        # Intervals past the horizon (calendar months run a little past it) are ignored below.
        counted = (
            exp.select(*labels(None), col("k", None).as_("j"), exp.Count(this=exp.Star()).as_("n"))
            .from_(exp.to_table("x"), copy=False)
            .group_by(*keys(None), col("k", None), copy=False)
        )
    else:
        bracket_rows = exp.select("*").from_(
            exp.Values(
                expressions=[
                    exp.Tuple(expressions=[c.bind(j), c.bind(b_lo), c.bind(b_hi)])
                    for j, (b_lo, b_hi) in enumerate(brackets)
                ],
                alias=exp.TableAlias(
                    this=exp.to_identifier("b"), columns=[exp.to_identifier(n) for n in ("j", "lo", "hi")]
                ),
            )
        )
        on = exp.GTE(this=col("k", "x"), expression=col("lo", "b"))
        if q.mode == RetentionMode.bracket:
            on = and_(on, exp.LT(this=col("k", "x"), expression=col("hi", "b")))
        counted = (
            exp.select(
                *labels("x"),
                col("j", "b"),
                exp.Count(this=exp.Distinct(expressions=[col("user_idx", "x")])).as_("n"),
            )
            .from_(exp.to_table("x"))
            .join(exp.Subquery(this=bracket_rows, alias=exp.TableAlias(this=exp.to_identifier("b"))), on=on)
            .group_by(*keys("x"), col("j", "b"))
        )
    # copy=False here and above: every part is built for this statement only, and sqlglot's default
    # copy of the tree so far at each step was most of the time spent compiling a retention query.
    statement = (
        exp.union(sizes, counted, distinct=False, copy=False)
        .with_("s", as_=starts, copy=False)
        .with_("x", as_=returns, copy=False)
    )
    size_rows: list[SizeRow] = []
    count_rows: list[CountRow] = []
    for cohort, grp, j, n in ctx.run(c, statement):
        if j == -1:
            size_rows.append((cohort, grp, n))
        elif j >= 0:  # a calendar return bucket before the cohort's (a clock set back) counts nowhere
            count_rows.append((cohort, grp, j, n))
    return size_rows, count_rows


def _response(
    q: RetentionQuery,
    ctx: QueryContext,
    unit: str,
    brackets: list[tuple[int, int]],
    size_rows: list[SizeRow],
    count_rows: list[CountRow],
) -> dict[str, Any]:

    cohort_size: dict[str, dict[datetime, int]] = {}
    for cohort, grp, n in size_rows:
        cohort_size.setdefault(str(grp), {})[cohort] = int(n)
    counts: dict[tuple[str, datetime, int], int] = {}
    for cohort, grp, j, n in count_rows:
        counts[(str(grp), cohort, int(j))] = int(n)

    series = []
    for grp in sorted(cohort_size) or [""]:
        sizes_of = cohort_size.get(grp, {})
        dates = sorted(sizes_of, reverse=True)
        values: dict[str, list[dict[str, Any]]] = {}
        combined_count = [0] * len(brackets)
        combined_outof = [0] * len(brackets)
        total = 0
        for cohort in dates:
            size = sizes_of[cohort]
            total += size
            cells = [{"count": size, "outof": size, "incomplete": False}]
            lived = _lived_through(cohort, unit, q, ctx)
            for j, (_, b_hi) in enumerate(brackets):
                complete = lived(b_hi)
                n = counts.get((grp, cohort, j), 0)
                cells.append({"count": n, "outof": size, "incomplete": not complete})
                if complete:
                    combined_count[j] += n
                    combined_outof[j] += size
            values[cohort.strftime("%Y-%m-%d")] = cells
        combined = [{"count": total, "outof": total, "retainedSetId": None, "incomplete": False}]
        combined += [
            {
                "count": combined_count[j],
                "outof": combined_outof[j],
                "retainedSetId": None,
                "incomplete": combined_outof[j] == 0,
            }
            for j in range(len(brackets))
        ]
        item: dict[str, Any] = {
            "dates": [d.strftime("%Y-%m-%d") for d in dates],
            "values": values,
            "combined": combined,
        }
        if q.group_by:
            item["label"] = grp
        series.append(item)
    return {"series": series, "seriesMeta": [{"segmentIndex": 0, "eventIndex": 0} for _ in series]}


def _lived_through(cohort: datetime, unit: str, q: RetentionQuery, ctx: QueryContext) -> Callable[[int], bool]:
    """Whether every user of the cohort has lived through the intervals below a bound by now.

    Calendar intervals end on the project's wall clock. Rolling windows are lengths of real time from
    each user's start event, so they are measured in UTC from the latest start the cohort can hold
    (the instant its bucket ends): across a DST change a day of wall clock is 23 or 25 hours. The
    cohort's own bounds are worked out once, not once per cell."""
    if q.calendar:
        local_now = ctx.local_now
        return lambda upper: step(cohort, unit, upper) <= local_now
    last_start = ctx.utc_of(step(truncate(cohort, unit), unit, 1))
    return lambda upper: last_start + timedelta(days=q.interval * upper) <= ctx.now
