"""Revenue LTV (`GET /api/2/revenue/ltv`): cumulative revenue of new-user cohorts, day by day.

A user's cohort is the day, week or month (project time zone) of their first event. Day N of a
user covers revenue (`$revenue`, refunds included) with time < first event + N days, so `r1d` is
the first 24 hours. m: 0 ARPU = revenue / cohort users, 1 ARPPU = revenue / users who ever paid,
2 total revenue, 3 paying users (users whose revenue up to day N is positive: a refunded payer drops out). A day that not every user
of the cohort has reached yet is null.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlglot import exp

from revlens.query.context import QueryContext
from revlens.query.models import Interval, LtvQuery, QueryError
from revlens.query.sql import and_, col, paren
from revlens.query.timeaxis import UNIT, range_bounds, step

DAYS = 90
MICROS_PER_DAY = 86_400_000_000
# ARPU and ARPPU are shown to six decimal places.
PER_USER = Decimal("0.000001")


def run(q: LtvQuery, ctx: QueryContext) -> dict[str, Any]:
    interval = {1: Interval.daily, 7: Interval.weekly, 30: Interval.monthly}.get(q.interval)
    if interval is None:
        raise QueryError("i", "must be 1, 7 or 30")
    if q.metric not in (0, 1, 2, 3):
        raise QueryError("m", "must be 0 (ARPU), 1 (ARPPU), 2 (total revenue) or 3 (paying users)")
    unit = UNIT[interval]
    lo, hi = range_bounds(q.start, q.end)
    c = ctx.compiler()
    cohort = exp.func("date_trunc", exp.Literal.string(unit), col("first_local_time", "u"))
    in_range = and_(
        exp.EQ(this=col("pid", "u"), expression=c.bind(ctx.pid)), c.time_range(lo, hi, "first_local_time", "u")
    )
    sizes = (
        exp.select(cohort.as_("cohort"), exp.Count(this=exp.Star()))
        .from_(exp.to_table("users").as_("u"))
        .where(in_range)
        .group_by(exp.column("cohort"))
    )
    day = exp.cast(
        exp.func(
            "floor",
            exp.Div(
                this=paren(
                    exp.Sub(
                        this=exp.func("epoch_us", col("time", "e")),
                        expression=exp.func("epoch_us", col("first_time", "u")),
                    )
                ),
                expression=c.bind(MICROS_PER_DAY),
            ),
        ),
        "BIGINT",
    )
    revenue = (
        exp.select(cohort.as_("cohort"), col("user_idx", "u"), day.as_("d"), exp.func("sum", col("revenue", "e")))
        .from_(exp.to_table("users").as_("u"))
        .join(
            exp.to_table("events").as_("e"),
            on=and_(
                exp.EQ(this=col("pid", "e"), expression=col("pid", "u")),
                exp.EQ(this=col("user_idx", "e"), expression=col("user_idx", "u")),
            ),
        )
        .where(and_(in_range, exp.Not(this=exp.Is(this=col("revenue", "e"), expression=exp.null()))))
        .group_by(exp.column("cohort"), col("user_idx", "u"), exp.column("d"))
    )
    size_of = {r[0]: int(r[1]) for r in ctx.run(c, sizes)}
    per_user: dict[datetime, dict[int, list[tuple[int, Decimal]]]] = defaultdict(lambda: defaultdict(list))
    for cohort_start, user, d, amount in ctx.run(c, revenue):
        per_user[cohort_start][int(user)].append((int(d), Decimal(amount)))
    values: dict[str, dict[str, Any]] = {}
    for cohort_start in sorted(size_of, reverse=True):
        users = per_user.get(cohort_start, {})
        n = size_of[cohort_start]
        by_day = [Decimal(0)] * (DAYS + 1)  # revenue on day d (d >= DAYS lumped at the end)
        paying_change = [0] * (DAYS + 1)  # +1 when a user's running total turns positive on day d, -1 back
        paid = 0
        total = Decimal(0)
        for items in users.values():
            running = Decimal(0)
            positive = False
            per_day: dict[int, Decimal] = defaultdict(Decimal)
            for d, amount in items:
                per_day[min(d, DAYS)] += amount
            for d in sorted(per_day):
                by_day[d] += per_day[d]
                running += per_day[d]
                if (running > 0) != positive:
                    positive = running > 0
                    paying_change[d] += 1 if positive else -1
            total += running
            if running > 0:
                paid += 1
        cell: dict[str, Any] = {"count": n, "paid": paid, "total_amount": total}
        # Days are 24 h of real time from each user's first event: measured in UTC from the latest first
        # event the cohort can hold (the instant its bucket ends), whatever DST does to the wall clock.
        last_first_event = ctx.utc_of(step(cohort_start, unit))
        revenue_k, payers_k = Decimal(0), 0
        for k in range(1, DAYS + 1):
            revenue_k += by_day[k - 1]
            payers_k += paying_change[k - 1]
            if last_first_event + timedelta(days=k) > ctx.now:
                cell[f"r{k}d"] = None
                continue
            options: list[Any] = [
                (revenue_k / n).quantize(PER_USER) if n else Decimal(0),
                (revenue_k / paid).quantize(PER_USER) if paid else Decimal(0),
                revenue_k,
                payers_k,
            ]
            cell[f"r{k}d"] = options[q.metric]
        values[cohort_start.strftime("%Y-%m-%d")] = cell
    return {"seriesLabels": [""], "series": [{"dates": list(values), "values": values}]}
