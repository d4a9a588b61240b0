"""Retention counted on arrays: one scan, then numpy indexed by user, no join and no DISTINCT.

The SQL form of retention (retention.py) joins each user's start with their returns and keeps the
distinct (user, interval) pairs: two hash tables over millions of rows, and the larger part of the
time of a retention on every event (docs/benchmarks.md). Here one statement reads the rows that
can matter — the start events in the range and the return events that can fall in a counted
interval — as arrays: user, time, and the bucket of the local time (for `se=_new`, the new users
come from `users` and a second statement reads the returns). `user_idx` is dense per project, so
every per-user figure is a plain array indexed by it:

1. each user's first start (`t0`) and cohort bucket: `numpy.minimum.at` over the start rows;
2. each return row's interval: from `time - t0[user]` (24-hour / 7-day / 30-day windows) or from the
   bucket difference (calendar intervals);
3. the (user, interval) pairs as a boolean matrix with one row per cohort member, rows ordered by
   cohort, so a cohort's counts are the column sums of its block of rows (`numpy.add.reduceat`).

The helpers both forms share (`any_as_all`, `new_in_range`, `return_bounds`, the row types) live
here; retention.py imports them. Same answers as the SQL form, which stays for group-bys, cohort segments and Return On (or
brackets) of one event type, where it is as quick (`applies`; the property tests run every query
through both). The matrix takes members × intervals bytes: at most 120 MB for a million members and
120 intervals.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
from sqlglot import exp

from revlens.query.context import QueryContext
from revlens.query.models import EventSpec, RetentionMode, RetentionQuery
from revlens.query.sql import ANY_EVENT, Compiler, and_, col, or_, paren
from revlens.query.timeaxis import step, truncate

MICROS_PER_DAY = 86_400_000_000
NO_TIME = np.iinfo(np.int64).max
NO_BUCKET = np.iinfo(np.int32).max

SizeRow = tuple[datetime, str, int]
CountRow = tuple[datetime, str, int, int]


def any_as_all(spec: EventSpec) -> EventSpec:
    """`_active` counts as `_all` here (every event is an active one); filters stay."""
    return spec if spec.event_type not in ANY_EVENT else spec.model_copy(update={"event_type": "_all"})


def can_answer(q: RetentionQuery) -> bool:
    """The array form answers ungrouped retention, and not within cohorts (their subqueries would
    run once per use of the condition)."""
    seg = q.segment
    return not q.group_by and not seg.cohorts and not seg.not_cohorts


def applies(q: RetentionQuery) -> bool:
    """Whether to use the array form: where it can answer and there are many rows to join, a start
    or return on any event, or returns at any later time (`rm=rolling`). For Return On a single
    event type of ten, DuckDB's join of a few hundred thousand rows is as quick as the arrays,
    whose fixed cost is a few arrays as long as the project has users (docs/benchmarks.md)."""
    any_event = q.start_event.event_type in ANY_EVENT or q.return_event.event_type in ANY_EVENT
    return can_answer(q) and (any_event or q.mode == RetentionMode.rolling)


@dataclass(frozen=True, slots=True)
class _Scan:
    """What the statements of one retention are built from: its compiler, the buckets' unit and
    first bucket, the last interval asked, and the local range of starts [lo, hi)."""

    c: Compiler
    unit: str
    anchor: datetime
    horizon: int
    lo: datetime
    hi: datetime

    def bucket(self, column: exp.Expression) -> exp.Expression:
        """The number of the local bucket (day, week, month) of `column`, from the range's first."""
        local_bucket = exp.func("date_trunc", exp.Literal.string(self.unit), column)
        diff = exp.DateDiff(this=local_bucket, expression=self.c.bind(self.anchor), unit=exp.var(self.unit.upper()))
        return exp.cast(diff, "INT")

    def return_bounds(self, q: RetentionQuery) -> list[exp.Expression]:
        return return_bounds(self.c, q, self.horizon, self.lo, self.hi, "e", first_seen=True)


@dataclass(slots=True)
class _Rows:
    """What the scan gives: the start rows (user, time, local bucket) and the return rows (user,
    time, and the local bucket for calendar intervals)."""

    start_users: np.ndarray
    start_times: np.ndarray
    start_buckets: np.ndarray
    ret_users: np.ndarray
    ret_times: np.ndarray
    ret_buckets: np.ndarray | None


def cells(
    q: RetentionQuery,
    ctx: QueryContext,
    unit: str,
    brackets: list[tuple[int, int]],
    lo: datetime,
    hi: datetime,
) -> tuple[list[SizeRow], list[CountRow]]:
    """Cohort sizes and, per bracket, how many of each cohort returned: the rows retention.run
    turns into its response."""
    anchor = truncate(lo, unit)
    horizon = max(b_hi for _, b_hi in brackets)
    window = q.interval * MICROS_PER_DAY
    reader = _new_user_rows if q.start_event.event_type == "_new" else _event_rows
    rows = reader(q, ctx, _Scan(ctx.compiler(), unit, anchor, horizon, lo, hi))
    if rows is None:
        return [], []

    # 1. Each user's first start and cohort (the bucket of their earliest local start time).
    n_users = int(max(rows.start_users.max(), rows.ret_users.max(initial=0))) + 1
    t0 = np.full(n_users, NO_TIME, dtype=np.int64)
    np.minimum.at(t0, rows.start_users, rows.start_times)
    cohort = np.full(n_users, NO_BUCKET, dtype=np.int32)
    np.minimum.at(cohort, rows.start_users, rows.start_buckets)
    members = np.flatnonzero(cohort != NO_BUCKET)
    if not len(members):
        return [], []
    member_cohort = cohort[members]
    # Members in cohort order. Buckets usually fit in 16 bits (under 32,768 days, weeks or months
    # from the first), where numpy's stable sort is a radix sort.
    narrow = np.int16 if int(member_cohort.max()) < 2**15 else np.int32
    order = np.argsort(member_cohort.astype(narrow), kind="stable")
    members, member_cohort = members[order], member_cohort[order]
    position = np.zeros(n_users, dtype=np.int32)
    position[members] = np.arange(len(members), dtype=np.int32)
    cohort_ids, block_starts, sizes = np.unique(member_cohort, return_index=True, return_counts=True)

    # 2. The interval of each return at or after the user's first start (never for a user without a
    # start: their t0 is NO_TIME).
    ret_users, ret_times, ret_bucket = rows.ret_users, rows.ret_times, rows.ret_buckets
    first = t0.take(ret_users)
    valid = ret_times >= first
    if ret_bucket is not None:
        k = ret_bucket.astype(np.int64)
        k -= cohort.take(ret_users)
        valid &= k >= 0
        if q.mode != RetentionMode.rolling:
            valid &= k < horizon
        k = k[valid]
    else:
        # In place: `first` is not needed again. Where there is no start (t0 = NO_TIME) this can
        # wrap around, but `valid` is already false there.
        since = np.subtract(ret_times, first, out=first)
        if q.mode != RetentionMode.rolling:
            valid &= since < horizon * window
        k = since[valid] // window
    if q.mode == RetentionMode.rolling:
        np.minimum(k, horizon, out=k)  # "or after": later returns count as the last interval asked
    ret_pos = position.take(ret_users[valid]).astype(np.intp)

    # 3. Per member, per bracket: returned or not; summed per cohort block.
    if q.mode == RetentionMode.rolling:
        latest = np.full(len(members), -1, dtype=np.int64)
        np.maximum.at(latest, ret_pos, k)
        matrix = latest[:, None] >= np.array([b_lo for b_lo, _ in brackets], dtype=np.int64)[None, :]
    else:
        seen = np.zeros((len(members), horizon), dtype=np.bool_)
        seen.reshape(-1)[ret_pos * horizon + k] = True
        if q.mode == RetentionMode.n_day:
            matrix = seen
        else:
            matrix = np.empty((len(members), len(brackets)), dtype=np.bool_)
            for j, (b_lo, b_hi) in enumerate(brackets):
                seen[:, b_lo:b_hi].any(axis=1, out=matrix[:, j])
    counts = np.add.reduceat(matrix, block_starts, axis=0, dtype=np.int64)

    size_rows: list[SizeRow] = []
    count_rows: list[CountRow] = []
    for i, bucket_no in enumerate(cohort_ids.tolist()):
        when = step(anchor, unit, bucket_no)
        size_rows.append((when, "", int(sizes[i])))
        for j, n in enumerate(counts[i].tolist()):
            if n:
                count_rows.append((when, "", j, n))
    return size_rows, count_rows


def _flag(condition: exp.Expression) -> exp.Expression:
    """A condition as a column: false, not NULL (masked), where it reads a missing property."""
    return exp.func("coalesce", paren(condition), exp.false())


def _event_rows(q: RetentionQuery, ctx: QueryContext, scan: _Scan) -> _Rows | None:
    """Starts and returns from one scan of `events`: every row that can be either."""
    c = scan.c
    start_spec, ret_spec = any_as_all(q.start_event), any_as_all(q.return_event)
    # The constant bounds on local_time (they contain the range of starts) and, when both are the
    # same event, its conditions stay outside the OR, where the scan can skip row groups by them.
    where = [
        exp.EQ(this=col("pid"), expression=c.bind(ctx.pid)),
        exp.Not(this=exp.Is(this=col("user_idx"), expression=exp.null())),
        *scan.return_bounds(q),
    ]
    is_start = and_(c.time_range(scan.lo, scan.hi), *c.segment(q.segment))
    is_return: exp.Expression | None = None  # None: every row read is a return
    if ret_spec == start_spec:
        where.append(c.event_match(start_spec))
    elif ret_spec.event_type == "_all" and not ret_spec.filters:
        is_start = and_(c.event_match(start_spec), is_start)
    else:
        is_start = and_(c.event_match(start_spec), is_start)
        is_return = c.event_match(ret_spec)
        where.append(or_(paren(is_start.copy()), paren(is_return.copy())))
    columns: list[exp.Expression] = [col("user_idx").as_("u"), exp.func("epoch_us", col("time")).as_("t")]
    if q.calendar:
        columns += [scan.bucket(col("local_time")).as_("b"), _flag(is_start).as_("s")]
    else:
        # The bucket only matters for starts: -1 marks every other row.
        start_bucket = exp.Case(
            ifs=[exp.If(this=is_start, true=scan.bucket(col("local_time")))],
            default=exp.Literal.number(-1),
        )
        columns.append(start_bucket.as_("c"))
    if is_return is not None:
        columns.append(_flag(is_return).as_("r"))
    statement = exp.select(*columns, copy=False).from_(exp.to_table("events").as_("e"), copy=False)
    arrays = ctx.columns(c, statement.where(and_(*where), copy=False))
    if not len(arrays["u"]):
        return None
    # As numpy's index type: `take` and `ufunc.at` with int32 indices convert them on every call.
    users = np.asarray(arrays["u"]).astype(np.intp)
    times = np.asarray(arrays["t"])
    if q.calendar:
        row_bucket: np.ndarray | None = np.asarray(arrays["b"])
        starts = np.asarray(arrays["s"])
        start_buckets = np.asarray(arrays["b"])[starts]
    else:
        row_bucket = None
        start_col = np.asarray(arrays["c"])
        starts = start_col >= 0
        start_buckets = start_col[starts]
    if not starts.any():
        return None
    if is_return is None:
        return _Rows(users[starts], times[starts], start_buckets, users, times, row_bucket)
    returns = np.asarray(arrays["r"])
    ret_buckets = row_bucket[returns] if row_bucket is not None else None
    return _Rows(users[starts], times[starts], start_buckets, users[returns], times[returns], ret_buckets)


def _new_user_rows(q: RetentionQuery, ctx: QueryContext, scan: _Scan) -> _Rows | None:
    """Starts of `se=_new`, the users whose first event falls in the range (from `users`), and
    their returns (from `events`). Only rows of users first seen from a day before the range are
    read: an event's stored first seen time is never before its user's first event (that only
    moves earlier), whose local time is in the range, so its UTC time is at most 14 hours before
    the range starts."""
    c = scan.c
    new_users = (
        exp.select(
            col("user_idx", "u").as_("u"),
            exp.func("epoch_us", col("first_time", "u")).as_("t"),
            scan.bucket(col("first_local_time", "u")).as_("c"),
            copy=False,
        )
        .from_(exp.to_table("users").as_("u"), copy=False)
        .where(new_in_range(c, ctx.pid, scan.lo, scan.hi), copy=False)
    )
    starts = ctx.columns(c, new_users)
    if not len(starts["u"]):
        return None
    first_seen = col("user_first_time")
    not_before = exp.GTE(this=first_seen, expression=c.bind(scan.lo - timedelta(days=1)))
    columns: list[exp.Expression] = [col("user_idx").as_("u"), exp.func("epoch_us", col("time")).as_("t")]
    if q.calendar:
        columns.append(scan.bucket(col("local_time")).as_("b"))
    returns = (
        exp.select(*columns, copy=False)
        .from_(exp.to_table("events").as_("e"), copy=False)
        .where(
            and_(
                c.event_match(any_as_all(q.return_event)),
                exp.Not(this=exp.Is(this=col("user_idx"), expression=exp.null())),
                *scan.return_bounds(q),
                paren(or_(not_before, exp.Is(this=first_seen.copy(), expression=exp.null()))),
            ),
            copy=False,
        )
    )
    rets = ctx.columns(c, returns)
    return _Rows(
        np.asarray(starts["u"]).astype(np.intp),
        np.asarray(starts["t"]),
        np.asarray(starts["c"]),
        np.asarray(rets["u"]).astype(np.intp),
        np.asarray(rets["t"]),
        np.asarray(rets["b"]) if q.calendar else None,
    )


def new_in_range(c: Compiler, pid: int, lo: datetime, hi: datetime) -> exp.Expression:
    """The users (table `u`) whose first event falls in the local range [lo, hi): `se=_new`."""
    return and_(exp.EQ(this=col("pid", "u"), expression=c.bind(pid)), c.time_range(lo, hi, "first_local_time", "u"))


def return_bounds(
    c: Compiler, q: RetentionQuery, horizon: int, lo: datetime, hi: datetime, table: str, first_seen: bool
) -> list[exp.Expression]:
    """Constant bounds on the rows that can be returns: nothing before the range (a day early, for
    any offset), nothing past the last interval asked, except for "or after" (`rm=rolling`); and,
    with `first_seen`, only users first seen before the range ends (a day late, for any offset),
    since no one else has a start in it. The last holds unless some user's first event moved
    earlier after they were first seen (a backfill of older history; their events carry the later
    first seen time). It reads one more column: worth it where there are many rows to hold in
    arrays, not for the SQL join, which only probes with them (docs/benchmarks.md)."""
    bounds: list[exp.Expression] = [exp.GTE(this=col("local_time", table), expression=c.bind(lo - timedelta(days=1)))]
    if q.mode != RetentionMode.rolling:
        # A calendar month lasts up to 31 days; the cohort's own bucket adds up to one more interval.
        per_interval = 31 if q.calendar and q.interval == 30 else q.interval
        span_days = per_interval * horizon + (31 if q.calendar else 0)
        bounds.append(exp.LT(this=col("local_time", table), expression=c.bind(hi + timedelta(days=span_days + 1))))
    if first_seen and c.first_moves is not None and not c.first_moves():
        seen_before = exp.LT(this=col("user_first_time", table), expression=c.bind(hi + timedelta(days=1)))
        unknown = exp.Is(this=col("user_first_time", table), expression=exp.null())  # bulk loads may leave it
        bounds.append(paren(or_(seen_before, unknown)))
    return bounds
