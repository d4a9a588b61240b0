"""Time buckets in the project's time zone: the x axis of every chart.

Events carry `local_time`, their wall-clock time in the project's zone, so bucketing is a truncation
of that column and needs no time-zone arithmetic at query time. Weeks start on Monday (ISO).
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlglot import exp

from revlens.query.models import Interval, QueryError

UNIT = {Interval.hourly: "hour", Interval.daily: "day", Interval.weekly: "week", Interval.monthly: "month"}
# Amplitude's documented limits on a range per interval (shared/reference/amplitude.md 2.2 and 4.3).
MAX_BUCKETS = {Interval.hourly: 24 * 7, Interval.daily: 366, Interval.weekly: 53, Interval.monthly: 37}


def truncate(moment: datetime, unit: str) -> datetime:
    """The start of the bucket holding `moment` (same rule as SQL date_trunc)."""
    if unit == "hour":
        return moment.replace(minute=0, second=0, microsecond=0)
    day = datetime(moment.year, moment.month, moment.day)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    return datetime(moment.year, moment.month, 1)


def step(moment: datetime, unit: str, n: int = 1) -> datetime:
    if unit == "hour":
        return moment + timedelta(hours=n)
    if unit == "day":
        return moment + timedelta(days=n)
    if unit == "week":
        return moment + timedelta(weeks=n)
    month = moment.month - 1 + n
    return moment.replace(year=moment.year + month // 12, month=month % 12 + 1)


def whole_span(lo: datetime, hi: datetime, unit: str) -> tuple[datetime, datetime]:
    """[whole_lo, whole_hi): the whole periods of `unit` inside [lo, hi), an empty span at or before
    `hi` when there is none; [lo, whole_lo) and [whole_hi, hi) are the partial days at the edges."""
    start = truncate(lo, unit)
    whole_lo = min(start if start == lo else step(start, unit), hi)
    return whole_lo, max(truncate(hi, unit), whole_lo)


def range_bounds(start: date, end: date) -> tuple[datetime, datetime]:
    """[start 00:00, day after end 00:00) in local time: `start` and `end` are inclusive days."""
    if end < start:
        raise QueryError("end", "must not be before start")
    return datetime.combine(start, datetime.min.time()), datetime.combine(end + timedelta(days=1), datetime.min.time())


def buckets(start: date, end: date, interval: Interval) -> list[datetime]:
    if interval not in UNIT:
        raise QueryError("i", "real-time (-300000) is not offered; use -3600000, 1, 7 or 30")
    unit = UNIT[interval]
    lo, hi = range_bounds(start, end)
    out: list[datetime] = []
    current = truncate(lo, unit)
    while current < hi:
        out.append(current)
        current = step(current, unit)
        if len(out) > MAX_BUCKETS[interval]:
            raise QueryError("end", f"too many {unit}s in the range (at most {MAX_BUCKETS[interval]})")
    return out


def label(moment: datetime, interval: Interval) -> str:
    return moment.strftime("%Y-%m-%dT%H:00:00") if interval == Interval.hourly else moment.strftime("%Y-%m-%d")


def bucket_sql(interval: Interval, column: exp.Expression) -> exp.Expression:
    return exp.func("date_trunc", exp.Literal.string(UNIT[interval]), column)
