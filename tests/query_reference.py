"""A slow, obviously correct reference for the query engine (`revlens.query`), over a plain list of events.

Nothing here touches SQL or imports the engine's own logic: every function re-derives the answer from
the documented semantics (the module docstrings of `revlens.query.*` and docs/api.md) by looping over
Python objects, so that tests/test_query_properties.py can assert the engine's answer equals it exactly.
The engine's pydantic models (`EventSpec`, `Filter`, `Segment`, `CohortNode`) are used only as plain
data containers for the question being asked.

Conventions decided here (where the contract is silent, the clearest reading, listed in the report):
- A property's text is what `CAST(... AS VARCHAR)` of it gives: JSON strings as is, JSON numbers in
  their JSON spelling, Decimals (stored as JSON strings) as `str(Decimal)`, `$revenue` (DECIMAL(18,3))
  with three decimals. Missing properties are None (and '(none)' as group labels).
- Events without a user id count as events (totals, sums) but never as users.
- "Complete" cells (retention, LTV) use the worst case of the cohort bucket: the last possible first
  event of the bucket (its end), plus the intervals, in absolute time, must be <= now.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from typing import Any
from zoneinfo import ZoneInfo

import orjson

from revlens.query.cohort_model import CohortNode, Performed
from revlens.query.models import EventSpec, Filter, Segment

ANY = ("_all", "_active")
DAY = timedelta(days=1)
_NUMBER = re.compile(r"-?\d+(\.\d+)?")


@dataclass(frozen=True)
class Event:
    insert_id: str
    user_id: str | None
    event_type: str
    time: datetime  # UTC, naive
    local_time: datetime  # project time zone, naive
    revenue: Decimal | None = None
    product: str | None = None
    properties: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)


def local_of(utc: datetime, tz: str) -> datetime:
    """Wall-clock time in `tz` of a naive UTC time (what normalization stores as local_time)."""
    return utc.replace(tzinfo=UTC).astimezone(ZoneInfo(tz)).replace(tzinfo=None)


def utc_of(local: datetime, tz: str) -> datetime:
    """The UTC instant of a local wall-clock time (fold=0 for repeated times)."""
    return local.replace(tzinfo=ZoneInfo(tz)).astimezone(UTC).replace(tzinfo=None)


# -- properties and filters ------------------------------------------------------------------------


def prop(ev: Event, key: str) -> Any:
    key = key.removeprefix("gp:")
    if key == "$revenue":
        return ev.revenue
    if key == "product":
        return ev.product
    if key == "user_id":
        return ev.user_id
    if key == "event_type":
        return ev.event_type
    return ev.properties.get(key)


def text(ev: Event, key: str) -> str | None:
    value = prop(ev, key)
    if value is None:
        return None
    if key.removeprefix("gp:") == "$revenue":
        return str(Decimal(value).quantize(Decimal("0.001")))
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int | Decimal):
        return str(value)
    return orjson.dumps(value).decode()


def number(ev: Event, key: str) -> Decimal | None:
    value = prop(ev, key)
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, str) and _NUMBER.fullmatch(value):
        return Decimal(value)
    return None


def label(ev: Event, key: str) -> str:
    value = text(ev, key)
    return "(none)" if value is None else value


def condition(ev: Event, f: Filter) -> bool:
    values = [str(v) for v in f.values]
    if f.op in ("is", "is not"):
        t = text(ev, f.key)
        hit = t is not None and t in values
        return hit if f.op == "is" else not hit
    if f.op in ("contains", "does not contain"):
        t = text(ev, f.key)
        hit = t is not None and any(v.lower() in t.lower() for v in values)
        return hit if f.op == "contains" else not hit
    if f.op in ("less", "less or equal", "greater", "greater or equal"):
        n = number(ev, f.key)
        if n is None:
            return False
        v = Decimal(values[0])
        return {"less": n < v, "less or equal": n <= v, "greater": n > v, "greater or equal": n >= v}[f.op]
    raw = ev.properties.get(f.key.removeprefix("gp:"))
    hit = isinstance(raw, list) and any(str(x) in values for x in raw)
    return hit if f.op == "set is" else not hit


def matches(ev: Event, spec: EventSpec) -> bool:
    if spec.event_type not in ANY and ev.event_type != spec.event_type:
        return False
    return all(condition(ev, f) for f in spec.filters)


def day_start(d: date) -> datetime:
    return datetime(d.year, d.month, d.day)


def in_days(ev: Event, start: date, end: date) -> bool:
    return day_start(start) <= ev.local_time < day_start(end) + DAY


# -- cohorts ---------------------------------------------------------------------------------------


class World:
    """The events of one project, with what every query needs to know about them."""

    def __init__(self, events: Iterable[Event], tz: str, now: datetime, cohorts: dict[int, CohortNode] | None = None):
        self.events = list(events)
        self.tz = tz
        self.now = now  # UTC, naive
        self.saved = cohorts or {}
        self._saved_members: dict[int, set[str]] = {}
        self.first: dict[str, Event] = {}
        for ev in sorted(self.events, key=lambda e: e.time):
            if ev.user_id is not None and ev.user_id not in self.first:
                self.first[ev.user_id] = ev

    @property
    def users(self) -> set[str]:
        return set(self.first)

    @property
    def local_now(self) -> datetime:
        return local_of(self.now, self.tz)

    def members(self, node: CohortNode) -> set[str]:
        if node.performed is not None:
            return self._performed(node.performed)
        if node.not_ is not None:
            return self.users - self.members(node.not_)
        if node.all is not None:
            result = self.members(node.all[0])
            for child in node.all[1:]:
                result &= self.members(child)
            return result
        assert node.any is not None
        return set().union(*(self.members(child) for child in node.any))

    def _performed(self, leaf: Performed) -> set[str]:
        spec = EventSpec(event_type=leaf.event_type, filters=leaf.filters)
        timing = leaf.timing
        done: dict[str, list[Event]] = {}
        for ev in self.events:
            if ev.user_id is None or not matches(ev, spec):
                continue
            if timing.kind == "during":
                assert timing.start is not None and timing.end is not None
                if not in_days(ev, timing.start, timing.end):
                    continue
            elif timing.kind == "last_days":
                assert timing.days is not None
                if not self.now - timing.days * DAY <= ev.time <= self.now:
                    continue
            elif timing.kind == "within_first_days":
                assert timing.days is not None
                first = self.first[ev.user_id].time
                if not first <= ev.time < first + timing.days * DAY:
                    continue
            done.setdefault(ev.user_id, []).append(ev)
        measure = leaf.measure
        out = set()
        for user, evs in done.items():
            if measure.kind == "sum":
                assert measure.property is not None
                amount = sum((n for e in evs if (n := number(e, measure.property)) is not None), Decimal(0))
            else:
                amount = Decimal(len(evs))
            if _compare(amount, measure.op, measure.value):
                out.add(user)
        return out

    def saved_members(self, cohort_id: int) -> set[str]:
        if cohort_id not in self._saved_members:
            self._saved_members[cohort_id] = self.members(self.saved[cohort_id])
        return self._saved_members[cohort_id]

    def in_segment(self, ev: Event, seg: Segment) -> bool:
        if not all(condition(ev, f) for f in seg.filters):
            return False
        if seg.cohorts or seg.not_cohorts:
            if ev.user_id is None:  # an event without a user is in no cohort, and "not in" none either
                return False
            if any(ev.user_id not in self.saved_members(cid) for cid in seg.cohorts):
                return False
            if any(ev.user_id in self.saved_members(cid) for cid in seg.not_cohorts):
                return False
        return True


def _compare(left: Decimal, op: str, right: Decimal) -> bool:
    return {
        ">=": left >= right,
        ">": left > right,
        "=": left == right,
        "<": left < right,
        "<=": left <= right,
        "!=": left != right,
    }[op]


# -- time buckets ----------------------------------------------------------------------------------

UNITS = {"-3600000": "hour", "1": "day", "7": "week", "30": "month"}


def truncate(moment: datetime, unit: str) -> datetime:
    if unit == "hour":
        return datetime(moment.year, moment.month, moment.day, moment.hour)
    day = datetime(moment.year, moment.month, moment.day)
    if unit == "day":
        return day
    if unit == "week":
        return day - timedelta(days=day.weekday())
    return datetime(moment.year, moment.month, 1)


def advance(moment: datetime, unit: str, n: int = 1) -> datetime:
    if unit == "hour":
        return moment + timedelta(hours=n)
    if unit == "day":
        return moment + n * DAY
    if unit == "week":
        return moment + 7 * n * DAY
    months = moment.year * 12 + moment.month - 1 + n
    return datetime(months // 12, months % 12 + 1, 1)


def axis(start: date, end: date, unit: str) -> list[datetime]:
    out = []
    current = truncate(day_start(start), unit)
    while current < day_start(end) + DAY:
        out.append(current)
        current = advance(current, unit)
    return out


def axis_label(moment: datetime, unit: str) -> str:
    return moment.strftime("%Y-%m-%dT%H:00:00" if unit == "hour" else "%Y-%m-%d")


# -- segmentation ----------------------------------------------------------------------------------


@dataclass
class Stats:
    users: set[str] = field(default_factory=set)
    events: int = 0
    total: Decimal = Decimal(0)
    measured: int = 0

    def add(self, ev: Event, measured: str | None) -> None:
        if ev.user_id is not None:
            self.users.add(ev.user_id)
        self.events += 1
        if measured is not None:
            n = number(ev, measured)
            if n is not None:
                self.total += n
                self.measured += 1


@dataclass(frozen=True)
class Fn:
    """A formula call: UNIQUES(A) is Fn("UNIQUES", 0)."""

    function: str
    event: int


@dataclass(frozen=True)
class Lit:
    value: str  # as written, e.g. "2" or "0.5"


@dataclass(frozen=True)
class Bin:
    op: str
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Minus:
    operand: Expr


Expr = Fn | Lit | Bin | Minus


def fns(expr: Expr) -> list[Fn]:
    if isinstance(expr, Fn):
        return [expr]
    if isinstance(expr, Bin):
        return fns(expr.left) + fns(expr.right)
    if isinstance(expr, Minus):
        return fns(expr.operand)
    return []


def evaluate(expr: Expr, value_of: Callable[[Fn], float | None]) -> float | None:
    if isinstance(expr, Lit):
        return float(expr.value)
    if isinstance(expr, Fn):
        return value_of(expr)
    if isinstance(expr, Minus):
        inner = evaluate(expr.operand, value_of)
        return None if inner is None else -inner
    a, b = evaluate(expr.left, value_of), evaluate(expr.right, value_of)
    if a is None or b is None:
        return None
    if expr.op == "+":
        return a + b
    if expr.op == "-":
        return a - b
    if expr.op == "*":
        return a * b
    return None if b == 0 else a / b


@dataclass
class SegQuery:
    events: list[EventSpec]
    metric: str
    start: date
    end: date
    interval: str = "1"  # Amplitude's i
    segment: Segment = field(default_factory=Segment)
    group_by: list[str] = field(default_factory=list)
    limit: int = 100
    formula: Expr | None = None
    buckets: list[float] | None = None


def _measured_for(q: SegQuery, i: int) -> str | None:
    spec = q.events[i]
    if q.formula is None:
        return spec.group_by[0] if q.metric in ("sums", "value_avg") and i == 0 else None
    functions = {f.function for f in fns(q.formula) if f.event == i}
    if not functions & {"PROPSUM", "PROPAVG", "REVENUETOTAL"}:
        return None
    if not spec.group_by and "REVENUETOTAL" in functions:
        return "$revenue"
    return spec.group_by[0]


def _keys_for(q: SegQuery, i: int, measured: str | None) -> list[str]:
    own = q.events[i].group_by
    if measured is not None and own and own[0] == measured:
        own = own[1:]
    return list(own) + list(q.group_by)


def _selected(world: World, q: SegQuery, spec: EventSpec) -> list[Event]:
    return [
        ev
        for ev in world.events
        if matches(ev, spec) and in_days(ev, q.start, q.end) and world.in_segment(ev, q.segment)
    ]


def _table(
    world: World, q: SegQuery, i: int, unit: str
) -> tuple[dict[tuple[str, ...], dict[datetime, Stats]], dict[tuple[str, ...], Stats], list[str]]:
    measured = _measured_for(q, i)
    keys = _keys_for(q, i, measured)
    per_bucket: dict[tuple[str, ...], dict[datetime, Stats]] = {}
    totals: dict[tuple[str, ...], Stats] = {}
    for ev in _selected(world, q, q.events[i]):
        group = tuple(label(ev, k) for k in keys)
        per_bucket.setdefault(group, {}).setdefault(truncate(ev.local_time, unit), Stats()).add(ev, measured)
        totals.setdefault(group, Stats()).add(ev, measured)
    return per_bucket, totals, keys


def _metric_value(metric: str, s: Stats, active: int) -> Any:
    u, t = len(s.users), s.events
    if metric == "uniques":
        return u
    if metric == "totals":
        return t
    if metric == "average":
        return float(Fraction(t, u)) if u else 0
    if metric == "pct_dau":
        return float(Fraction(100 * u, active)) if active else 0
    if metric == "sums":
        return s.total
    if metric == "value_avg":
        return s.total / s.measured if s.measured else 0
    raise ValueError(metric)


RANK = {"uniques": "u", "totals": "t", "pct_dau": "u", "average": "t", "sums": "s", "value_avg": "s", "formula": "u"}


def _rank_value(s: Stats, key: str) -> Any:
    return {"u": len(s.users), "t": s.events, "s": s.total}[key]


def _ranked(totals: dict[tuple[str, ...], Stats], key: str, limit: int, keys: list[str]) -> list[tuple[str, ...]]:
    if not keys:
        return [()]
    return sorted(totals, key=lambda g: (-_rank_value(totals[g], key), g))[:limit]


def _call_value(fn: Fn, s: Stats) -> float | None:
    u, t = len(s.users), s.events
    if fn.function == "UNIQUES":
        return float(u)
    if fn.function == "TOTALS":
        return float(t)
    if fn.function == "AVG":
        return float(Fraction(t, u)) if u else None
    if fn.function in ("PROPSUM", "REVENUETOTAL"):
        return float(s.total)
    if fn.function == "PROPAVG":
        return float(Fraction(s.total) / s.measured) if s.measured else None
    raise ValueError(fn.function)


def _finite(value: float | None) -> float | None:
    if value is None or value != value or value in (float("inf"), float("-inf")):
        return None
    return value


DEFAULT_EDGES = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0, 11.0, 21.0, 51.0]


def edge_labels(edges: list[float]) -> list[str]:
    def fmt(x: float) -> str:
        return str(int(x)) if float(x).is_integer() else f"{x:g}"

    out = []
    for i, lo in enumerate(edges):
        if i == len(edges) - 1:
            out.append(f"{fmt(lo)}+")
            continue
        hi = edges[i + 1]
        if float(lo).is_integer() and float(hi).is_integer():
            out.append(fmt(lo) if hi - lo == 1 else f"{fmt(lo)}-{fmt(hi - 1)}")
        else:
            out.append(f"{fmt(lo)}-{fmt(hi)}")
    return out


def frequency(world: World, q: SegQuery, index: int) -> dict[str, Any]:
    """Users by how many times they did event `index` in the range (HIST), per group."""
    edges = [float(b) for b in (q.buckets or DEFAULT_EDGES)]
    keys = _keys_for(q, index, None)
    times: dict[tuple[tuple[str, ...], str], int] = {}
    for ev in _selected(world, q, q.events[index]):
        if ev.user_id is None:
            continue
        group = tuple(label(ev, k) for k in keys)
        times[(group, ev.user_id)] = times.get((group, ev.user_id), 0) + 1
    counts: dict[tuple[str, ...], list[int]] = {}
    for (group, _), n in times.items():
        slots = [j for j, edge in enumerate(edges) if n >= edge]
        if slots:  # users below the first edge are not shown (nor is a group of only such users)
            counts.setdefault(group, [0] * len(edges))[slots[-1]] += 1
    groups = sorted(counts, key=lambda g: (-sum(counts[g]), g))[: q.limit] or [()]
    series = [counts.get(g, [0] * len(edges)) for g in groups]
    return {
        "series": series,
        "seriesLabels": [[index, "; ".join(g)] if g else index for g in groups],
        "seriesCollapsed": [[{"setId": "", "value": sum(s)}] for s in series],
        "xValues": edge_labels(edges),
        "seriesMeta": [{"segmentIndex": 0, "eventIndex": index} for _ in groups],
    }


def segmentation(world: World, q: SegQuery) -> dict[str, Any]:
    unit = UNITS[q.interval]
    x = axis(q.start, q.end, unit)
    if q.metric == "frequency":
        return frequency(world, q, 0)
    if q.formula is not None and isinstance(q.formula, Fn) and q.formula.function == "HIST":
        return frequency(world, q, q.formula.event)
    indexes = sorted({f.event for f in fns(q.formula)}) if q.formula is not None else list(range(len(q.events)))
    tables = {i: _table(world, q, i, unit) for i in indexes}
    series: list[list[Any]] = []
    labels: list[Any] = []
    collapsed: list[list[dict[str, Any]]] = []
    meta: list[dict[str, int]] = []
    if q.formula is not None:
        formula = q.formula
        first = indexes[0]
        keys = tables[first][2]
        for group in _ranked(tables[first][1], "u", q.limit, keys):

            def at(bucket: datetime | None, group: tuple[str, ...] = group) -> float | None:
                def value_of(fn: Fn) -> float | None:
                    per_bucket, totals, _ = tables[fn.event]
                    s = totals.get(group) if bucket is None else per_bucket.get(group, {}).get(bucket)
                    return _call_value(fn, s or Stats())

                return _finite(evaluate(formula, value_of))

            series.append([at(b) for b in x])
            collapsed.append([{"setId": "", "value": at(None)}])
            labels.append([0, "; ".join(group)] if keys else 0)
            meta.append({"segmentIndex": 0, "eventIndex": 0, "formulaIndex": 0})
    else:
        active_by_bucket: dict[datetime, set[str]] = {}
        active_all: set[str] = set()
        for ev in _selected(world, q, EventSpec(event_type="_active")):
            if ev.user_id is not None:
                active_by_bucket.setdefault(truncate(ev.local_time, unit), set()).add(ev.user_id)
                active_all.add(ev.user_id)
        for i in indexes:
            per_bucket, totals, keys = tables[i]
            for group in _ranked(totals, RANK[q.metric], q.limit, keys):
                row = per_bucket.get(group, {})
                series.append(
                    [_metric_value(q.metric, row.get(b, Stats()), len(active_by_bucket.get(b, ()))) for b in x]
                )
                collapsed.append(
                    [{"setId": "", "value": _metric_value(q.metric, totals.get(group, Stats()), len(active_all))}]
                )
                labels.append([i, "; ".join(group)] if keys else i)
                meta.append({"segmentIndex": 0, "eventIndex": i})
    return {
        "series": series,
        "seriesLabels": labels,
        "seriesCollapsed": collapsed,
        "xValues": [axis_label(b, unit) for b in x],
        "seriesMeta": meta,
    }


# -- retention -------------------------------------------------------------------------------------

RETENTION_UNITS = {1: "day", 7: "week", 30: "month"}


@dataclass
class RetQuery:
    start_event: EventSpec  # event_type "_new" for new users, "_active"/"_all" for any event
    return_event: EventSpec
    start: date
    end: date
    mode: str = "n-day"
    brackets: list[tuple[int, int]] = field(default_factory=list)
    interval: int = 1
    calendar: bool = False
    segment: Segment = field(default_factory=Segment)
    group_by: str | None = None
    intervals: int | None = None


def _months(moment: datetime) -> int:
    return moment.year * 12 + moment.month - 1


def interval_index(q: RetQuery, t0: datetime, cohort: datetime, ret: Event) -> int:
    """Which interval a return falls in, for a user whose first start event was at t0 (UTC)."""
    if not q.calendar:
        return (ret.time - t0) // (q.interval * DAY)
    unit = RETENTION_UNITS[q.interval]
    bucket = truncate(ret.local_time, unit)
    if unit == "day":
        return (bucket - cohort).days
    if unit == "week":
        return (bucket - cohort).days // 7
    return _months(bucket) - _months(cohort)


def retention(world: World, q: RetQuery) -> dict[str, Any]:
    unit = RETENTION_UNITS[q.interval]
    if q.intervals is not None:
        k_max = min(q.intervals, 120)
    else:
        days = (q.end - q.start).days + 1
        k_max = max(1, min(120, -(-days // q.interval)))
    brackets = list(q.brackets) if q.mode == "bracket" else [(k, k + 1) for k in range(k_max)]

    # Each user's first start event in the range: (t0, cohort bucket, group).
    starts: dict[str, tuple[datetime, datetime, str]] = {}
    if q.start_event.event_type == "_new":
        for user, ev in world.first.items():
            if in_days(ev, q.start, q.end):
                starts[user] = (ev.time, truncate(ev.local_time, unit), "")
    else:
        spec = q.start_event
        for ev in sorted(world.events, key=lambda e: e.time):
            if (
                ev.user_id is None
                or ev.user_id in starts
                or not matches(ev, spec)
                or not in_days(ev, q.start, q.end)
                or not world.in_segment(ev, q.segment)
            ):
                continue
            group = label(ev, q.group_by) if q.group_by else ""
            starts[ev.user_id] = (ev.time, truncate(ev.local_time, unit), group)

    # The intervals each user returned in (the start event itself counts when it matches).
    returned: dict[str, set[int]] = {user: set() for user in starts}
    for ev in world.events:
        if ev.user_id in starts and matches(ev, q.return_event):
            t0, cohort, _ = starts[ev.user_id]
            if ev.time >= t0:
                returned[ev.user_id].add(interval_index(q, t0, cohort, ev))

    def kept(user: str, lo: int, hi: int) -> bool:
        if q.mode == "rolling":
            return any(k >= lo for k in returned[user])
        return any(lo <= k < hi for k in returned[user])

    local_now = world.local_now

    def complete(cohort: datetime, hi: int) -> bool:
        if q.calendar:
            return advance(cohort, unit, hi) <= local_now
        last_first = utc_of(advance(cohort, unit), world.tz)  # the latest possible first start event
        return last_first + q.interval * hi * DAY <= world.now

    groups = sorted({g for _, _, g in starts.values()}) or [""]
    series = []
    for grp in groups:
        members: dict[datetime, list[str]] = {}
        for user, (_, cohort, g) in starts.items():
            if g == grp:
                members.setdefault(cohort, []).append(user)
        dates = sorted(members, reverse=True)
        values: dict[str, list[dict[str, Any]]] = {}
        c_count = [0] * len(brackets)
        c_outof = [0] * len(brackets)
        for cohort in dates:
            users = members[cohort]
            n = len(users)
            cells: list[dict[str, Any]] = [{"count": n, "outof": n, "incomplete": False}]
            for j, (lo, hi) in enumerate(brackets):
                count = sum(1 for u in users if kept(u, lo, hi))
                done = complete(cohort, hi)
                cells.append({"count": count, "outof": n, "incomplete": not done})
                if done:
                    c_count[j] += count
                    c_outof[j] += n
            values[cohort.strftime("%Y-%m-%d")] = cells
        total = sum(len(v) for v in members.values())
        combined: list[dict[str, Any]] = [{"count": total, "outof": total, "retainedSetId": None, "incomplete": False}]
        combined += [
            {"count": c_count[j], "outof": c_outof[j], "retainedSetId": None, "incomplete": c_outof[j] == 0}
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


# -- LTV -------------------------------------------------------------------------------------------

LTV_DAYS = 90
SIX_PLACES = Decimal("0.000001")


def _per_user(total: Decimal, n: int) -> Decimal:
    """total / n rounded once, half to even, to six decimal places."""
    exact = Fraction(total) / n
    scaled = exact * 10**6
    whole = scaled.numerator // scaled.denominator
    rest = scaled - whole
    if rest > Fraction(1, 2) or (rest == Fraction(1, 2) and whole % 2 == 1):
        whole += 1
    return Decimal(whole).scaleb(-6).quantize(SIX_PLACES)


def ltv(world: World, start: date, end: date, metric: int, interval: int) -> dict[str, Any]:
    unit = RETENTION_UNITS[interval]
    cohorts: dict[datetime, list[str]] = {}
    for user, ev in world.first.items():
        if in_days(ev, start, end):
            cohorts.setdefault(truncate(ev.local_time, unit), []).append(user)
    values: dict[str, dict[str, Any]] = {}
    for cohort in sorted(cohorts, reverse=True):
        users = cohorts[cohort]
        n = len(users)
        revenue = {u: [ev for ev in world.events if ev.user_id == u and ev.revenue is not None] for u in users}
        first = {u: world.first[u].time for u in users}
        totals = {u: sum((ev.revenue for ev in revenue[u] if ev.revenue is not None), Decimal(0)) for u in users}
        paid = sum(1 for u in users if totals[u] > 0)
        cell: dict[str, Any] = {"count": n, "paid": paid, "total_amount": sum(totals.values(), Decimal(0))}
        last_first = utc_of(advance(cohort, unit), world.tz)
        for k in range(1, LTV_DAYS + 1):
            if last_first + k * DAY > world.now:
                cell[f"r{k}d"] = None
                continue
            by_k = {
                u: sum(
                    (ev.revenue for ev in revenue[u] if ev.revenue is not None and ev.time < first[u] + k * DAY),
                    Decimal(0),
                )
                for u in users
            }
            amount = sum(by_k.values(), Decimal(0))
            options: list[Any] = [
                _per_user(amount, n),
                _per_user(amount, paid) if paid else Decimal(0),
                amount,
                sum(1 for u in users if by_k[u] > 0),
            ]
            cell[f"r{k}d"] = options[metric]
        values[cohort.strftime("%Y-%m-%d")] = cell
    return {"seriesLabels": [""], "series": [{"dates": list(values), "values": values}]}
