"""The analytics engine against a slow reference (tests/query_reference.py), on random event logs.

Each example builds an event log with times bunched at the edges that matter (local midnights, Monday
and month boundaries, DST changes, exact multiples of 24 h / 7 d after the same user's earlier
event), loads it into a fresh DuckDB store next to a decoy project (same user ids, other events:
anything that leaks across projects shows), runs the engine from Amplitude-style string parameters
and asserts its answer equals the reference's exactly.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

import query_reference as ref
from query_reference import Bin, Event, Expr, Fn, Lit, Minus, RetQuery, SegQuery, World
from revlens.normalize import AnalyticsEvent
from revlens.query import cohort_sets, cohorts, distribution, ltv, params, retention, segmentation
from revlens.query.cohort_model import CohortDefinition, CohortNode
from revlens.query.context import QueryContext
from revlens.query.models import EventSpec, Filter, Segment
from revlens.store.duckdb_store import DuckDBStore
from revlens.store.models import STORED, Delivery, LoadBatch

# REVLENS_NO_SHRINK=1 reports the first failure unshrunk: quick when checking that each test can
# fail, by breaking the reference on purpose.
PROPERTY_SETTINGS = settings(
    phases=[Phase.explicit, Phase.generate] if os.environ.get("REVLENS_NO_SHRINK") else list(Phase),
    max_examples=60,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

TIMEZONES = ["UTC", "America/New_York", "Asia/Kolkata", "Pacific/Chatham", "Australia/Lord_Howe", "Europe/London"]
EVENT_TYPES = [
    "[Stripe] payment_intent.succeeded",
    "[Stripe] charge.refunded",
    "[Stripe] customer.subscription.created",
    "odd \"type\" 'x'",
]
# Around month ends, Mondays, the 2024 DST changes (US Mar 10 / Nov 3, UK Mar 31 / Oct 27, Chatham and
# Lord Howe Apr 7 / Sep 29 and Oct 6) and the year end.
ERAS = [
    date(2024, 2, 26),
    date(2024, 3, 8),
    date(2024, 3, 29),
    date(2024, 4, 5),
    date(2024, 10, 31),
    date(2024, 12, 30),
]
USERS = ["u1", "u2", "u3", "u4", None]
TIMES_OF_DAY = [
    time(0, 0),
    time(0, 0, 0, 1),
    time(23, 59, 59, 999999),
    time(23, 59, 59),
    time(1, 30),
    time(2, 30),
    time(3, 0),
    time(12, 0),
]
STEPS = [1, 2, 3, 6, 7, 8, 14, 28, 29, 30, 31, 60]
JITTER = [timedelta(0), timedelta(0), timedelta(0), timedelta(microseconds=-1), timedelta(microseconds=1)]
JITTER += [timedelta(seconds=-1), timedelta(seconds=1)]
REVENUES = [None, None, None, Decimal("10.00"), Decimal("-10.00"), Decimal("0.01"), Decimal("19.99")]
REVENUES += [Decimal("-5.5"), Decimal("0.001"), Decimal("100")]
SEATS: list[Any] = [None, None, 0, 1, 3, -2, Decimal("1.50"), Decimal("2.5")]
PLANS = [None, "basic", "Pro", "pro plus", ""]
TAGS: list[Any] = [None, ["a"], ["a", "b"], []]
PRODUCTS = [None, "basic", "pro"]


@dataclass
class Log:
    tz: str
    era: date
    types: list[str]
    events: list[Event]


def _local_to_utc(local: datetime, tz: str, fold: int) -> datetime:
    return ref.utc_of(local.replace(fold=fold), tz)


@st.composite
def logs(draw: st.DrawFn, max_events: int = 40, timezones: list[str] = TIMEZONES) -> Log:
    tz = draw(st.sampled_from(timezones))
    era = draw(st.sampled_from(ERAS))
    types = draw(st.lists(st.sampled_from(EVENT_TYPES), min_size=2, max_size=4, unique=True))
    n = draw(st.integers(0, max_events) if draw(st.integers(0, 4)) == 0 else st.integers(max_events // 2, max_events))
    events: list[Event] = []
    taken: set[tuple[str | None, datetime]] = set()
    for i in range(n):
        user = draw(st.sampled_from(USERS))
        earlier = sorted(e.time for e in events if user is not None and e.user_id == user)
        if earlier and draw(st.booleans()):
            # whole days (or weeks, months of 30 days) after the user's first or another earlier event
            base = earlier[0] if draw(st.booleans()) else draw(st.sampled_from(earlier))
            moment = base + draw(st.sampled_from(STEPS)) * ref.DAY + draw(st.sampled_from(JITTER))
        else:
            day = era + timedelta(days=draw(st.integers(-1, 8) if draw(st.integers(0, 3)) else st.integers(-3, 40)))
            tod = draw(st.sampled_from(TIMES_OF_DAY))
            moment = _local_to_utc(datetime.combine(day, tod), tz, draw(st.integers(0, 1)))
        while (user, moment) in taken:  # one event per user and instant: "first" is never a tie
            moment += timedelta(seconds=1)
        taken.add((user, moment))
        revenue = draw(st.sampled_from(REVENUES))
        product = draw(st.sampled_from(PRODUCTS))
        props: dict[str, Any] = {}
        for key, choices in (("seats", SEATS), ("plan", PLANS), ("tags", TAGS)):
            value = draw(st.sampled_from(choices))
            if value is not None:
                props[key] = value
        if product is not None:
            props["product"] = product
        if revenue is not None:
            props["$revenue"] = revenue
        events.append(
            Event(
                insert_id=f"evt_{i}",
                user_id=user,
                event_type=draw(st.sampled_from(types)),
                time=moment,
                local_time=ref.local_of(moment, tz),
                revenue=revenue,
                product=product,
                properties=props,
            )
        )
    return Log(tz, era, types, events)


def _noon(day: date, tz: str) -> datetime:
    """Local noon as UTC: far from every local midnight, so wall-clock and absolute day counts agree."""
    return ref.utc_of(datetime.combine(day, time(12, 0)), tz)


def _nows(era: date, tz: str, midnights: bool = False) -> st.SearchStrategy[datetime]:
    """Local noon; or, with `midnights`, also local midnight and just before it (where the wall-clock
    and absolute readings of "N days after the cohort" agree: calendar intervals, zones without DST)."""
    noon = st.integers(-2, 80).map(lambda d: _noon(era + timedelta(days=d), tz))
    if not midnights:
        return noon
    midnight = st.builds(
        lambda d, j: ref.utc_of(datetime.combine(era + timedelta(days=d), time(0)), tz) + j,
        st.integers(-2, 20),
        st.sampled_from([timedelta(0), timedelta(microseconds=-1)]),
    )
    return st.one_of(noon, midnight)


WITHOUT_DST = ("UTC", "Asia/Kolkata")


@st.composite
def ranges(draw: st.DrawFn, era: date, max_days: int = 14) -> tuple[date, date]:
    start = era + timedelta(days=draw(st.integers(-1, 4)))
    return start, start + timedelta(days=draw(st.integers(0, max_days - 1)))


# -- the store -------------------------------------------------------------------------------------


class Stores:
    def __init__(self, factory: pytest.TempPathFactory) -> None:
        self.factory = factory
        self.open: list[DuckDBStore] = []

    def load(self, log: Log, batches: int = 1) -> tuple[DuckDBStore, int]:
        """A fresh store: a decoy project (same users, shifted events), then the log's project in
        `batches` loads; with more than one, every month is then rewritten in event-type order."""
        store = DuckDBStore(Path(self.factory.mktemp("q", numbered=True)))
        self.open.append(store)
        decoy, _ = store.create_project("decoy", "USD", log.tz)
        project, _ = store.create_project("main", "USD", log.tz)
        shifted = [
            replace(
                e,
                event_type=log.types[0],
                time=e.time - timedelta(hours=30),
                local_time=ref.local_of(e.time - timedelta(hours=30), log.tz),
                revenue=None if e.revenue is None else e.revenue * 3 + 1,
            )
            for e in reversed(log.events)
        ]
        _insert(store, decoy.pid, shifted, 1)
        _insert(store, project.pid, log.events, batches)
        if batches > 1:  # and every month in event-type order, as the loader leaves closed months
            while store.cluster_closed_month(datetime(2100, 1, 1)) is not None:
                pass
        return store, project.pid

    def close(self) -> None:
        for store in self.open:
            store.close()
        self.open.clear()


def _insert(store: DuckDBStore, pid: int, events: list[Event], batches: int) -> None:
    size = max(1, -(-len(events) // batches))
    for b in range(0, len(events), size):
        chunk = events[b : b + size]
        store.load(
            LoadBatch(
                end=b + len(chunk),
                deliveries=[
                    Delivery(pid, e.insert_id, "we_test", "test.event", None, None, STORED, b + i, e.time, e.time)
                    for i, e in enumerate(chunk)
                ],
                events=[
                    (
                        pid,
                        "we_test",
                        AnalyticsEvent(
                            insert_id=e.insert_id,
                            event_type=e.event_type,
                            time=e.time,
                            local_time=e.local_time,
                            user_id=e.user_id,
                            user_rank=0,
                            customer=None,
                            revenue=e.revenue,
                            product=e.product,
                            fx_missing=False,
                            properties=dict(e.properties),
                        ),
                    )
                    for e in chunk
                ],
            )
        )


@pytest.fixture(scope="module")
def stores(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stores]:
    s = Stores(tmp_path_factory)
    yield s
    s.close()


def _diff(got: Any, want: Any, path: str = "") -> str | None:
    """Where two answers first differ (None when equal; numbers compare with ==, so 1 == 1.0)."""
    if isinstance(got, dict) and isinstance(want, dict):
        if list(got) != list(want):
            return f"{path}: keys {list(got)} != {list(want)}"
        for k in got:
            found = _diff(got[k], want[k], f"{path}[{k!r}]")
            if found:
                return found
        return None
    if isinstance(got, list) and isinstance(want, list):
        if len(got) != len(want):
            return f"{path}: {len(got)} items != {len(want)}: engine {got!r} reference {want!r}"
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            found = _diff(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if got == want else f"{path}: engine {got!r} != reference {want!r}"


def describe(log: Log) -> str:
    lines = [f"tz={log.tz}"]
    for e in sorted(log.events, key=lambda e: e.time):
        lines.append(
            f"  {e.insert_id} {e.user_id} {e.event_type!r} utc={e.time.isoformat()} local={e.local_time.isoformat()}"
            f" rev={e.revenue} product={e.product} props={e.properties}"
        )
    return "\n".join(lines)


def same(got: Any, want: Any, log: Log, what: Any = "") -> None:
    problem = _diff(got, want)
    assert problem is None, f"{what}\n{problem}\n{describe(log)}"
    assert got == want


def _context(store: DuckDBStore, pid: int, log: Log, now: datetime, saved: dict[int, CohortNode]) -> QueryContext:
    return QueryContext(store=store, pid=pid, timezone=log.tz, now=now, cohorts=saved.__getitem__)


# -- parameters ------------------------------------------------------------------------------------

FILTER_CHOICES: list[tuple[str, list[str], list[list[str]]]] = [
    ("product", ["is", "is not"], [["basic"], ["pro", "basic"], ["Pro"]]),
    ("product", ["contains", "does not contain"], [["PR"], ["as", "zzz"]]),
    ("plan", ["is", "is not"], [["basic"], ["Pro", ""], ["pro"]]),
    ("gp:plan", ["contains", "does not contain"], [["pro"], [""]]),
    ("seats", ["is", "is not"], [["1"], ["3", "1.50"], ["2.5"]]),
    ("seats", ["less", "less or equal", "greater", "greater or equal"], [["1"], ["1.5"], ["-2"], ["0"]]),
    ("$revenue", ["less", "less or equal", "greater", "greater or equal"], [["0"], ["10"], ["0.001"]]),
    ("tags", ["set is", "set is not"], [["a"], ["b", "c"]]),
]


@st.composite
def filters(draw: st.DrawFn) -> Filter:
    key, ops, value_sets = draw(st.sampled_from(FILTER_CHOICES))
    return Filter(key=key, op=draw(st.sampled_from(ops)), values=draw(st.sampled_from(value_sets)))


def _event_param(spec: EventSpec) -> str:
    return json.dumps(
        {
            "event_type": spec.event_type,
            "filters": [
                {"subprop_type": "event", "subprop_key": f.key, "subprop_op": f.op, "subprop_value": f.values}
                for f in spec.filters
            ],
            "group_by": [{"type": "event", "value": g} for g in spec.group_by],
        }
    )


def _segment_param(seg: Segment) -> str:
    items: list[dict[str, Any]] = [{"prop": f.key, "op": f.op, "values": f.values} for f in seg.filters]
    if seg.cohorts:
        items.append({"prop": "userdata_cohort", "op": "is", "values": [str(c) for c in seg.cohorts]})
    if seg.not_cohorts:
        items.append({"prop": "userdata_cohort", "op": "is not", "values": [str(c) for c in seg.not_cohorts]})
    return json.dumps(items)


def _day(d: date) -> str:
    return d.strftime("%Y%m%d")


def _event_specs(types: list[str], group_keys: list[str] | None = None) -> st.SearchStrategy[EventSpec]:
    return st.builds(
        EventSpec,
        event_type=st.sampled_from([*types, "_all"]),
        filters=st.lists(filters(), max_size=1),
        group_by=st.sampled_from([[]] + [[k] for k in (group_keys or [])]),
    )


GROUP_KEYS = ["product", "plan", "seats", "gp:plan"]
INTERVALS = {"-3600000": 7, "1": 14, "7": 30, "30": 75}  # i -> the longest range drawn


def _seg_params(q: SegQuery) -> dict[str, str]:
    out = {
        "e": _event_param(q.events[0]),
        "m": q.metric,
        "start": _day(q.start),
        "end": _day(q.end),
        "i": q.interval,
        "s": _segment_param(q.segment),
        "limit": str(q.limit),
    }
    if len(q.events) > 1:
        out["e2"] = _event_param(q.events[1])
    for name, key in zip(("g", "g2"), q.group_by, strict=False):
        out[name] = key
    if q.formula is not None:
        out["formula"] = render(q.formula)
    if q.buckets is not None:
        out["buckets"] = json.dumps(q.buckets)
    return out


def _run_segmentation(ctx: QueryContext, q: SegQuery) -> dict[str, Any]:
    return segmentation.run(params.segmentation(_seg_params(q)), ctx)


def _same_segmentation(ctx: QueryContext, world: World, log: Log, q: SegQuery) -> None:
    """The engine's segmentation answer equals the reference's."""
    same(_run_segmentation(ctx, q), ref.segmentation(world, q), log, _seg_params(q))


# -- segmentation ----------------------------------------------------------------------------------


@st.composite
def seg_setups(draw: st.DrawFn, max_events: int = 40) -> tuple[Log, SegQuery, datetime]:
    log = draw(logs(max_events=max_events))
    interval = draw(st.sampled_from(sorted(INTERVALS)))
    start, end = draw(ranges(log.era, INTERVALS[interval]))
    specs = draw(st.lists(_event_specs(log.types, GROUP_KEYS), min_size=1, max_size=2))
    global_groups = draw(st.sampled_from([[], ["product"], ["plan"]]))
    if any(len(s.group_by) + len(global_groups) > 2 for s in specs):
        global_groups = []
    q = SegQuery(
        events=specs,
        metric="uniques",
        start=start,
        end=end,
        interval=interval,
        segment=Segment(filters=draw(st.lists(filters(), max_size=1)) if draw(st.integers(0, 2)) == 0 else []),
        group_by=global_groups,
        limit=draw(st.sampled_from([100, 100, 1, 2])),
    )
    return log, q, draw(_nows(log.era, log.tz))


@PROPERTY_SETTINGS
@given(setup=seg_setups(), measured=st.sampled_from(["$revenue", "seats", "gp:seats"]))
def test_segmentation_metrics_match_reference(
    stores: Stores, setup: tuple[Log, SegQuery, datetime], measured: str
) -> None:
    log, q, now = setup
    store, pid = stores.load(log)
    try:
        ctx = _context(store, pid, log, now, {})
        world = World(log.events, log.tz, now)
        for metric in ("uniques", "totals", "average", "pct_dau"):
            asked = replace(q, metric=metric)
            _same_segmentation(ctx, world, log, asked)
        # sums and value_avg measure the first event's first group_by
        first = q.events[0]
        own = first.group_by[:1] if not q.group_by else []
        measuring = [first.model_copy(update={"group_by": [measured, *own]}), *q.events[1:]]
        for metric in ("sums", "value_avg"):
            asked = replace(q, metric=metric, events=measuring)
            _same_segmentation(ctx, world, log, asked)
    finally:
        stores.close()


@PROPERTY_SETTINGS
@given(
    setup=seg_setups(),
    edges=st.sampled_from([None, [1, 2, 3], [2, 5], [1, 3, 4, 10], [0.5, 1.5, 2]]),
    hist=st.sampled_from(["HIST(A)", "HIST(B)", None]),
)
def test_frequency_matches_reference(
    stores: Stores, setup: tuple[Log, SegQuery, datetime], edges: list[float] | None, hist: str | None
) -> None:
    log, q, now = setup
    q = replace(q, metric="frequency", buckets=edges)
    if hist is not None and not (hist == "HIST(B)" and len(q.events) < 2):
        q = replace(q, metric="formula", formula=Fn("HIST", 0 if hist == "HIST(A)" else 1))
    store, pid = stores.load(log)
    try:
        world = World(log.events, log.tz, now)
        _same_segmentation(_context(store, pid, log, now, {}), world, log, q)
    finally:
        stores.close()


def test_frequency_counts_per_user_then_per_count() -> None:
    """Users 3 (twice), 5 (once) and 7 (three times): one user each at counts 1, 2 and 3."""
    got = distribution.frequency_counts(np.array([7, 3, 5, 7, 3, 7], dtype=np.int32))
    assert got.tolist() == [0, 1, 1, 1]
    assert distribution.frequency_counts(np.array([], dtype=np.int32)).tolist() == [0]


# -- formulas --------------------------------------------------------------------------------------

PRECEDENCE = {"+": 1, "-": 1, "*": 2, "/": 2}


def render(expr: Expr, outer: int = 0, right: bool = False) -> str:
    """The formula as text, with only the parentheses precedence and left-associativity need."""
    if isinstance(expr, Lit):
        return expr.value
    if isinstance(expr, Fn):
        return f"{expr.function}({chr(65 + expr.event)})"
    if isinstance(expr, Minus):
        return "-" + render(expr.operand, 3)
    p = PRECEDENCE[expr.op]
    text = f"{render(expr.left, p)} {expr.op} {render(expr.right, p, True)}"
    return f"({text})" if p < outer or (p == outer and right) else text


def formulas(functions: list[str]) -> st.SearchStrategy[Expr]:
    leaves = st.one_of(
        st.builds(Fn, st.sampled_from(functions), st.integers(0, 1)),
        st.sampled_from([Lit("2"), Lit("0.5"), Lit("100"), Lit("0"), Lit("3")]),
    )
    return st.recursive(
        leaves,
        lambda inner: st.one_of(
            st.builds(Bin, st.sampled_from(["+", "-", "*", "/"]), inner, inner), st.builds(Minus, inner)
        ),
        max_leaves=5,
    ).filter(lambda e: bool(ref.fns(e)))


@PROPERTY_SETTINGS
@given(
    setup=seg_setups(),
    formula=formulas(["UNIQUES", "TOTALS", "AVG", "PROPSUM", "PROPAVG", "REVENUETOTAL"]),
    measured=st.sampled_from(["$revenue", "seats"]),
)
def test_formula_matches_reference(
    stores: Stores, setup: tuple[Log, SegQuery, datetime], formula: Expr, measured: str
) -> None:
    log, q, now = setup
    specs = list(q.events) + [EventSpec(event_type=log.types[1])] * (2 - len(q.events))
    for i in (0, 1):  # PROPSUM/PROPAVG measure the event's group_by; nothing else is grouped per event
        used = {f.function for f in ref.fns(formula) if f.event == i}
        group = [measured] if used & {"PROPSUM", "PROPAVG"} else []
        specs[i] = specs[i].model_copy(update={"group_by": group})
    q = replace(q, metric="formula", formula=formula, events=specs)
    store, pid = stores.load(log)
    try:
        world = World(log.events, log.tz, now)
        _same_segmentation(_context(store, pid, log, now, {}), world, log, q)
    finally:
        stores.close()


def test_render_parenthesizes_only_where_needed() -> None:
    a, b = Fn("UNIQUES", 0), Fn("TOTALS", 1)
    assert render(Bin("/", a, Bin("*", b, Lit("2")))) == "UNIQUES(A) / (TOTALS(B) * 2)"
    assert render(Bin("-", Bin("-", a, b), Lit("2"))) == "UNIQUES(A) - TOTALS(B) - 2"
    assert render(Bin("-", a, Bin("-", b, Lit("2")))) == "UNIQUES(A) - (TOTALS(B) - 2)"
    assert render(Minus(Bin("+", a, b))) == "-(UNIQUES(A) + TOTALS(B))"


# -- cohorts ---------------------------------------------------------------------------------------


TIMING_DAYS = [1, 2, 7, 30]
EDGE = "edge"  # the type of the events placed exactly at a timing's edge, so one event decides membership


def _during(era: date, offsets: st.SearchStrategy[int], lengths: st.SearchStrategy[int]) -> st.SearchStrategy[Any]:
    """A "during" timing starting `offsets` days after `era` and lasting `lengths` more days."""
    return st.builds(
        lambda a, n: {
            "kind": "during",
            "start": (era + timedelta(days=a)).isoformat(),
            "end": (era + timedelta(days=a + n)).isoformat(),
        },
        offsets,
        lengths,
    )


def _leaf(
    types: list[str], era: date, aimed: list[tuple[str, dict[str, Any]]] | None = None
) -> st.SearchStrategy[dict[str, Any]]:
    """A `performed` condition; with `aimed`, one of the given (event type, timing) pairs, unfiltered."""
    timing = st.one_of(
        st.just({"kind": "all_time"}),
        _during(era, st.integers(-2, 20), st.integers(0, 10)),
        st.builds(lambda d: {"kind": "last_days", "days": d}, st.sampled_from(TIMING_DAYS)),
        st.builds(lambda d: {"kind": "within_first_days", "days": d}, st.sampled_from(TIMING_DAYS)),
    )
    measure = st.one_of(
        st.just({}),
        st.builds(
            lambda op, v: {"kind": "count", "op": op, "value": v},
            st.sampled_from([">=", ">", "=", "<", "<=", "!="]),
            st.sampled_from([0, 1, 2, 3]),
        ),
        st.builds(
            lambda p, op, v: {"kind": "sum", "property": p, "op": op, "value": v},
            st.sampled_from(["$revenue", "seats"]),
            st.sampled_from([">=", ">", "=", "<", "<=", "!="]),
            st.sampled_from(["0", "10", "-5", "1.5", "20"]),
        ),
    )
    if aimed:  # counts that one event more or less changes
        counts = st.builds(
            lambda op, v: {"kind": "count", "op": op, "value": v},
            st.sampled_from([">=", ">", "=", "<", "<=", "!="]),
            st.sampled_from([1, 2]),
        )
        return st.builds(
            lambda pair, m: {"performed": {"event_type": pair[0], "filters": [], "measure": m, "timing": pair[1]}},
            st.sampled_from(aimed),
            st.one_of(counts, measure),
        )
    return st.builds(
        lambda t, fs, m, tm: {"performed": {"event_type": t, "filters": fs, "measure": m, "timing": tm}},
        st.sampled_from([*types, "_all"]),
        st.lists(filters().map(lambda f: f.model_dump()), max_size=1),
        measure,
        timing,
    )


def cohort_trees(
    types: list[str], era: date, leaf: st.SearchStrategy[dict[str, Any]] | None = None, max_leaves: int = 4
) -> st.SearchStrategy[dict[str, Any]]:
    """`all` / `any` / `not` trees of `leaf` conditions (any `performed` condition by default)."""
    return st.recursive(
        leaf if leaf is not None else _leaf(types, era),
        lambda inner: st.one_of(
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"all": xs}),
            st.lists(inner, min_size=1, max_size=3).map(lambda xs: {"any": xs}),
            inner.map(lambda x: {"not": x}),
        ),
        max_leaves=max_leaves,
    )


def _node(tree: dict[str, Any]) -> CohortNode:
    """Through the cohort API's own validation, as a saved cohort's definition."""
    return CohortDefinition.model_validate({"name": "c", "definition": json.loads(json.dumps(tree))}).definition


@st.composite
def cohort_setups(draw: st.DrawFn) -> tuple[Log, dict[str, Any], datetime]:
    log = draw(logs())
    events = list(log.events)
    aimed: list[tuple[str, dict[str, Any]]] = []
    # Events exactly N days (or a microsecond more) after a user's first: the within_first_days edge.
    for _ in range(draw(st.integers(0, 3))):
        users = sorted({e.user_id for e in events if e.user_id is not None})
        if not users:
            break
        user = draw(st.sampled_from(users))
        first = min(e.time for e in events if e.user_id == user)
        days = draw(st.sampled_from(TIMING_DAYS))
        moment = first + days * ref.DAY - draw(st.sampled_from(JITTER[:4]))
        if all((e.user_id, e.time) != (user, moment) for e in events):
            extra = Event(f"evt_x{len(events)}", user, EDGE, moment, ref.local_of(moment, log.tz))
            events.append(extra)
            aimed.append((extra.event_type, {"kind": "within_first_days", "days": days}))
    # "now" is N days (or a microsecond more or less) after the last event, the last_days edge (and
    # after every event: last_days ends now, see test_cohort_last_days_ends_now).
    anchor = max((e.time for e in events), default=_noon(log.era, log.tz))
    user = draw(st.sampled_from(USERS[:-1]))
    while any((e.user_id, e.time) == (user, anchor) for e in events):
        anchor += timedelta(seconds=1)
    events.append(Event(f"evt_y{len(events)}", user, EDGE, anchor, ref.local_of(anchor, log.tz)))
    days = draw(st.sampled_from(TIMING_DAYS))
    now = anchor + days * ref.DAY + draw(st.sampled_from(JITTER[:5]))
    aimed.append((EDGE, {"kind": "last_days", "days": days}))
    log = replace(log, events=[e for e in events if e.time <= now])
    trees = [_leaf(log.types, log.era), cohort_trees(log.types, log.era)]
    if aimed:
        trees += [_leaf(log.types, log.era, aimed)] * 2  # at the timing edges made above
    return log, draw(st.one_of(*trees)), now


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(setup=cohort_setups(), batches=st.integers(1, 3))
def test_cohort_members_match_reference(
    stores: Stores, setup: tuple[Log, dict[str, Any], datetime], batches: int
) -> None:
    log, tree, now = setup
    _check_members(stores, log, tree, now, batches)


def _check_members(stores: Stores, log: Log, tree: dict[str, Any], now: datetime, batches: int) -> None:
    """The engine's members and size of `tree` equal the reference's."""
    node = _node(tree)
    store, pid = stores.load(log, batches)
    try:
        ctx = _context(store, pid, log, now, {})
        expected = sorted(World(log.events, log.tz, now).members(node))
        same([user for _, user in cohorts.members(node, ctx)], expected, log, (tree, now))
        assert cohorts.size(node, ctx) == len(expected)
    finally:
        stores.close()


SET_DAYS = [1, 2, 3, 7, 30, 60]


def _set_leaf(types: list[str], era: date, days: int, edge_type: str) -> st.SearchStrategy[dict[str, Any]]:
    """Conditions the user sets answer (query/cohort_sets.py): unfiltered, "at least once", over all
    time, a date range (long ones hold whole months) or the last N days."""
    timing = st.one_of(
        st.just({"kind": "all_time"}),
        _during(era, st.integers(-2, 20), st.integers(0, 10)),
        # Long ones hold whole months (month sets) and mostly end among the events, mid-month.
        _during(era, st.integers(-70, -1), st.sampled_from([31, 45, 70])),
        # Mostly the N that "now" was drawn N days after an event with (set_cohort_setups).
        st.builds(lambda d: {"kind": "last_days", "days": d}, st.one_of(st.just(days), st.sampled_from(SET_DAYS))),
    )
    once = st.sampled_from([{}, {"kind": "count", "op": ">", "value": 0}, {"kind": "count", "op": ">=", "value": 1}])
    return st.builds(
        lambda t, m, tm: {"performed": {"event_type": t, "measure": m, "timing": tm}},
        st.one_of(st.just(edge_type), st.sampled_from(types)),
        once,
        timing,
    )


@st.composite
def set_cohort_setups(draw: st.DrawFn) -> tuple[Log, dict[str, Any], datetime]:
    log = draw(logs())
    # "now" is N days (give or take a little) after an event, so that event sits on the first, partial
    # day of "the last N days" (read from the events, not the sets); or after the last event.
    # Its type is mostly the conditions' type, and N mostly long enough for whole days in between.
    edge = draw(st.sampled_from(log.events)) if log.events else None
    days = draw(st.sampled_from([7, 30, 60, *SET_DAYS]))
    edge_type = edge.event_type if edge is not None else log.types[0]
    tree = draw(cohort_trees(log.types, log.era, _set_leaf(log.types, log.era, days, edge_type), max_leaves=3))
    anchor = draw(st.sampled_from([edge.time, max(e.time for e in log.events)])) if edge else _noon(log.era, log.tz)
    now = anchor + draw(st.sampled_from([days, 0, 10, 40])) * ref.DAY + draw(st.sampled_from(JITTER))
    return replace(log, events=[e for e in log.events if e.time <= now]), tree, now


@settings(PROPERTY_SETTINGS, max_examples=300)
@given(setup=set_cohort_setups(), batches=st.integers(1, 3))
def test_cohorts_from_user_sets_match_reference(
    stores: Stores, setup: tuple[Log, dict[str, Any], datetime], batches: int
) -> None:
    log, tree, now = setup
    assert cohort_sets.answerable(_node(tree))
    _check_members(stores, log, tree, now, batches)


@st.composite
def cohort_segments(draw: st.DrawFn) -> tuple[Log, SegQuery, datetime, dict[int, dict[str, Any]]]:
    log, q, _ = draw(seg_setups())
    trees = {1: draw(cohort_trees(log.types, log.era)), 2: draw(cohort_trees(log.types, log.era))}
    # after every event (last_days ends now) and at local noon (see test_retention_interval_incomplete_across_dst)
    last = max((e.local_time.date() for e in log.events), default=log.era)
    now = max(_noon(last + ref.DAY, log.tz), draw(_nows(log.era, log.tz)))
    ins, outs = draw(st.sampled_from([([1], []), ([], [2]), ([1], [2]), ([1, 2], [])]))
    return log, replace(q, segment=Segment(filters=q.segment.filters, cohorts=ins, not_cohorts=outs)), now, trees


@PROPERTY_SETTINGS
@given(setup=cohort_segments())
def test_cohort_segments_match_reference(
    stores: Stores, setup: tuple[Log, SegQuery, datetime, dict[int, dict[str, Any]]]
) -> None:
    log, q, now, trees = setup
    saved = {cid: _node(tree) for cid, tree in trees.items()}
    world = World(log.events, log.tz, now, saved)
    if any(not world.saved_members(cid) for cid in q.segment.not_cohorts):
        # Anonymous events and "not in an empty cohort": see test_not_in_empty_cohort_keeps_no_anonymous_events
        log = replace(log, events=[e for e in log.events if e.user_id is not None])
    store, pid = stores.load(log)
    try:
        ctx = _context(store, pid, log, now, saved)
        world = World(log.events, log.tz, now, saved)
        for metric in ("uniques", "totals", "pct_dau"):
            asked = replace(q, metric=metric)
            _same_segmentation(ctx, world, log, asked)
        rq = RetQuery(
            start_event=EventSpec(event_type=q.events[0].event_type, filters=q.events[0].filters),
            return_event=EventSpec(event_type="_all"),
            start=q.start,
            end=q.end,
            segment=q.segment,
        )
        same(retention.run(params.retention(_ret_params(rq)), ctx), ref.retention(world, rq), log, _ret_params(rq))
    finally:
        stores.close()


# -- retention -------------------------------------------------------------------------------------


def _ret_event(spec: EventSpec) -> str:
    if spec.event_type in ("_new", "_active", "_all") and not spec.filters:
        return spec.event_type
    return _event_param(spec)


def _ret_params(q: RetQuery) -> dict[str, str]:
    out = {
        "se": _ret_event(q.start_event),
        "re": _ret_event(q.return_event),
        "rm": q.mode,
        "i": str(q.interval),
        "start": _day(q.start),
        "end": _day(q.end),
        "calendar": "true" if q.calendar else "false",
        "s": _segment_param(q.segment),
    }
    if q.mode == "bracket":
        out["rb"] = json.dumps([list(b) for b in q.brackets])
    if q.group_by:
        out["g"] = q.group_by
    if q.intervals is not None:
        out["intervals"] = str(q.intervals)
    return out


@st.composite
def retention_modes(draw: st.DrawFn, first: int, width: int) -> tuple[str, list[tuple[int, int]]]:
    """A retention mode and, for `bracket`, one to three [from, to) brackets starting by interval
    `first`, each at most `width` intervals wide."""
    mode = draw(st.sampled_from(["n-day", "rolling", "bracket"]))
    if mode != "bracket":
        return mode, []
    bracket = st.tuples(st.integers(0, first), st.integers(1, width)).map(lambda t: (t[0], t[0] + t[1]))
    return mode, draw(st.lists(bracket, min_size=1, max_size=3))


@st.composite
def ret_setups(draw: st.DrawFn) -> tuple[Log, RetQuery, datetime]:
    log = draw(logs())
    interval = draw(st.sampled_from([1, 1, 7, 30]))
    start, end = draw(ranges(log.era, {1: 10, 7: 21, 30: 45}[interval]))
    new = draw(st.integers(0, 4)) == 0
    plain = st.builds(EventSpec, event_type=st.sampled_from([*log.types, "_active", "_all"]))
    filtered = st.builds(
        EventSpec,
        event_type=st.sampled_from([*log.types, "_all", "_active"]),
        filters=st.lists(filters(), min_size=1, max_size=2),
    )
    mode, brackets = draw(retention_modes(first=5, width=4))
    q = RetQuery(
        start_event=EventSpec(event_type="_new") if new else draw(st.one_of(plain, filtered)),
        return_event=draw(st.one_of(plain, filtered)),
        start=start,
        end=end,
        mode=mode,
        brackets=brackets,
        interval=interval,
        calendar=draw(st.booleans()),
        segment=Segment() if new else Segment(filters=draw(st.lists(filters(), max_size=1))),
        group_by=None if new else draw(st.sampled_from([None, None, "product", "plan", "seats"])),
        intervals=draw(st.sampled_from([None, None, 1, 3, 8])),
    )
    if q.calendar and draw(st.booleans()):
        # the start of a calendar interval: where a cell turns complete
        unit = ref.RETENTION_UNITS[interval]
        first = ref.truncate(ref.day_start(start), unit)
        local = ref.advance(first, unit, draw(st.integers(1, 6))) - draw(st.sampled_from(JITTER[3:4] + JITTER[:1]))
        return log, q, ref.utc_of(local, log.tz)
    return log, q, draw(_nows(log.era, log.tz, midnights=q.calendar or log.tz in WITHOUT_DST))


@settings(PROPERTY_SETTINGS, max_examples=100)
@given(setup=ret_setups(), batches=st.integers(1, 3))
def test_retention_matches_reference(stores: Stores, setup: tuple[Log, RetQuery, datetime], batches: int) -> None:
    """Both forms of the engine, SQL and arrays (retention_arrays.py; it answers fewer shapes),
    agree with the reference."""
    log, q, now = setup
    store, pid = stores.load(log, batches)
    try:
        expected = ref.retention(World(log.events, log.tz, now), q)
        ctx = _context(store, pid, log, now, {})
        for arrays in (False, True):
            got = retention.run(params.retention(_ret_params(q)), ctx, arrays=arrays)
            same(got, expected, log, (_ret_params(q), now, f"arrays={arrays}"))
    finally:
        stores.close()


@st.composite
def dense_ret_setups(draw: st.DrawFn) -> tuple[Log, RetQuery, datetime]:
    """Retention on whole logs: starts on any event, on one type or of new users, returns on any
    event or on one type, over a range that holds most of the log, so that most examples have
    cohorts with returns in several intervals (ret_setups' filtered shapes often leave the cohort
    empty)."""
    log = draw(logs())
    interval = draw(st.sampled_from([1, 7, 30]))
    mode, brackets = draw(retention_modes(first=3, width=3))
    event = st.builds(
        EventSpec,
        event_type=st.sampled_from([log.types[0], "_all", "_active"]),
        filters=st.lists(filters(), max_size=1) if draw(st.integers(0, 3)) == 0 else st.just([]),
    )
    q = RetQuery(
        start_event=EventSpec(event_type="_new") if draw(st.integers(0, 4)) == 0 else draw(event),
        return_event=draw(event),
        start=log.era - timedelta(days=draw(st.integers(0, 2))),
        end=log.era + timedelta(days=draw(st.integers(3, 12))),
        mode=mode,
        brackets=brackets,
        interval=interval,
        calendar=draw(st.booleans()),
        intervals=draw(st.sampled_from([None, 2, 5])),
    )
    return log, q, draw(_nows(log.era, log.tz, midnights=q.calendar or log.tz in WITHOUT_DST))


@settings(PROPERTY_SETTINGS, max_examples=60)
@given(setup=dense_ret_setups())
def test_retention_on_arrays_matches_reference(stores: Stores, setup: tuple[Log, RetQuery, datetime]) -> None:
    """The array form (retention_arrays.py) where it has most to count."""
    log, q, now = setup
    store, pid = stores.load(log)
    try:
        got = retention.run(params.retention(_ret_params(q)), _context(store, pid, log, now, {}), arrays=True)
        same(got, ref.retention(World(log.events, log.tz, now), q), log, (_ret_params(q), now))
    finally:
        stores.close()


# -- LTV -------------------------------------------------------------------------------------------


@PROPERTY_SETTINGS
@given(log=logs(), interval=st.sampled_from([1, 7, 30]), data=st.data(), batches=st.integers(1, 3))
def test_ltv_matches_reference(stores: Stores, log: Log, interval: int, data: st.DataObject, batches: int) -> None:
    start, end = data.draw(ranges(log.era, {1: 14, 7: 28, 30: 60}[interval]))
    now = data.draw(_nows(log.era, log.tz, midnights=log.tz in WITHOUT_DST))
    store, pid = stores.load(log, batches)
    try:
        ctx = _context(store, pid, log, now, {})
        world = World(log.events, log.tz, now)
        for metric in range(4):
            asked = {"start": _day(start), "end": _day(end), "i": str(interval), "m": str(metric)}
            same(ltv.run(params.ltv(asked), ctx), ref.ltv(world, start, end, metric, interval), log, (asked, now))
    finally:
        stores.close()


# -- the reference against the documented worked examples ------------------------------------------


def _ev(i: int, user: str | None, etype: str, when: datetime, tz: str = "UTC", **kw: Any) -> Event:
    return Event(f"evt_{i}", user, etype, when, ref.local_of(when, tz), **kw)


def test_reference_matches_the_documented_examples() -> None:
    monday = datetime(2024, 3, 4, 10)
    buys = [_ev(0, "1", "buy", monday), _ev(1, "1", "buy", monday + timedelta(hours=2)), _ev(2, "2", "buy", monday)]
    world = World(buys, "UTC", datetime(2024, 4, 1))
    q = SegQuery(events=[EventSpec(event_type="buy")], metric="average", start=monday.date(), end=monday.date())
    assert ref.segmentation(world, q)["series"] == [[1.5]]
    assert ref.segmentation(world, replace(q, metric="uniques"))["series"] == [[2]]
    assert ref.segmentation(world, replace(q, metric="totals"))["series"] == [[3]]
    # Ann starts Monday 9:00, returns 8 and 20 days later: weekly Return On counts her in weeks 0, 1, 2.
    start = datetime(2024, 3, 4, 9)
    ann = [_ev(0, "ann", "x", start), _ev(1, "ann", "x", start + 8 * ref.DAY), _ev(2, "ann", "x", start + 20 * ref.DAY)]
    rq = RetQuery(
        EventSpec(event_type="x"), EventSpec(event_type="x"), start.date(), start.date(), interval=7, intervals=4
    )
    cells = ref.retention(World(ann, "UTC", datetime(2024, 6, 1)), rq)["series"][0]["values"]["2024-03-04"]
    assert [c["count"] for c in cells] == [1, 1, 1, 1, 0]


# -- engine discrepancies the property tests found, at their minimal examples: regressions, each
# checked against the reference (they were strict xfails until the engine was fixed).


def _fixed(stores: Stores, events: list[Event], tz: str = "UTC") -> tuple[QueryContext, World, Log]:
    log = Log(tz, date(2024, 3, 4), sorted({e.event_type for e in events}), events)
    now = datetime(2024, 6, 1, 12)
    store, pid = stores.load(log)
    return _context(store, pid, log, now, {}), World(events, tz, now), log


NESTED = {
    "not-not": {"not": {"not": {"performed": {"event_type": "P"}}}},
    "any-then-not": {"any": [{"performed": {"event_type": "P"}}, {"not": {"performed": {"event_type": "Q"}}}]},
    "not-then-all": {"all": [{"not": {"performed": {"event_type": "Q"}}}, {"performed": {"event_type": "P"}}]},
}


@pytest.mark.parametrize("name", sorted(NESTED))
def test_negation_nested_in_set_operations(stores: Stores, name: str) -> None:
    t = datetime(2024, 3, 4, 12)
    # u1 did P and Q, u2 only P, u3 only Q.
    events = [
        _ev(0, "u1", "P", t),
        _ev(1, "u1", "Q", t + timedelta(hours=1)),
        _ev(2, "u2", "P", t),
        _ev(3, "u3", "Q", t),
    ]
    try:
        ctx, world, log = _fixed(stores, events)
        node = _node(NESTED[name])
        same([u for _, u in cohorts.members(node, ctx)], sorted(world.members(node)), log, NESTED[name])
    finally:
        stores.close()


def test_ltv_paying_users_after_a_full_refund(stores: Stores) -> None:
    # u1 pays 10 in their first hour and is refunded 10 a day later: by day 2 they have no positive revenue.
    t = datetime(2024, 3, 4, 12)
    events = [
        _ev(0, "u1", "pay", t, revenue=Decimal("10.00")),
        _ev(1, "u1", "refund", t + timedelta(days=1, hours=1), revenue=Decimal("-10.00")),
    ]
    try:
        ctx, world, log = _fixed(stores, events)
        asked = {"start": "20240304", "end": "20240304", "i": "1", "m": "3"}
        got = ltv.run(params.ltv(asked), ctx)
        assert got["series"][0]["values"]["2024-03-04"]["r1d"] == 1
        assert got["series"][0]["values"]["2024-03-04"]["r2d"] == 0
        same(got, ref.ltv(world, date(2024, 3, 4), date(2024, 3, 4), 3, 1), log, asked)
    finally:
        stores.close()


NEW_YORK = "America/New_York"
# Saturday 2024-03-09 23:59 EST; "now" is Monday 2024-03-11 00:30 EDT, 23 h 31 min later: the clocks
# went forward in between, so the user has not lived a full 24 h (Day 0 / r1d) yet.
DST_START = datetime(2024, 3, 10, 4, 59)
DST_NOW = datetime(2024, 3, 11, 4, 30)


def test_retention_interval_incomplete_across_dst(stores: Stores) -> None:
    try:
        ctx, world, log = _fixed(stores, [_ev(0, "u1", "x", DST_START, NEW_YORK)], NEW_YORK)
        ctx.now = world.now = DST_NOW
        rq = RetQuery(EventSpec(event_type="_all"), EventSpec(event_type="_all"), date(2024, 3, 9), date(2024, 3, 9))
        got = retention.run(params.retention(_ret_params(rq)), ctx)
        assert got["series"][0]["values"]["2024-03-09"][1]["incomplete"] is True  # 23 h of real time so far
        same(got, ref.retention(world, rq), log, _ret_params(rq))
    finally:
        stores.close()


def test_retention_interval_complete_at_the_instant_it_ends(stores: Stores) -> None:
    """Day 0 of a daily cohort is complete at the instant it ends, not a microsecond later: for
    24-hour windows when the cohort's latest possible start (its day's end) is a day old, for
    calendar days at the next local midnight."""
    try:
        ctx, world, _log = _fixed(stores, [_ev(0, "u1", "x", datetime(2024, 3, 4, 10))])
        rq = RetQuery(EventSpec(event_type="x"), EventSpec(event_type="x"), date(2024, 3, 4), date(2024, 3, 4))
        for calendar, ends in ((False, datetime(2024, 3, 6)), (True, datetime(2024, 3, 5))):
            asked = {**_ret_params(rq), "i": "1", "calendar": "true" if calendar else "false"}
            for now in (ends - timedelta(microseconds=1), ends):
                ctx.now = world.now = now
                got = retention.run(params.retention(asked), ctx)
                assert got["series"][0]["values"]["2024-03-04"][1]["incomplete"] is (now < ends), (calendar, now)
    finally:
        stores.close()


@pytest.mark.parametrize("arrays", [False, True])
def test_retention_window_ends_before_its_last_instant(stores: Stores, arrays: bool) -> None:
    """Two 7-day windows from the start: u1's return 1 µs before the 14th day counts in week 1,
    u2's exactly 14 days after the start is past both (windows are half-open)."""
    start = datetime(2024, 3, 4, 10)
    events = [
        _ev(0, "u1", "x", start),
        _ev(1, "u1", "x", start + timedelta(days=14, microseconds=-1)),
        _ev(2, "u2", "x", start),
        _ev(3, "u2", "x", start + timedelta(days=14)),
    ]
    try:
        ctx, world, log = _fixed(stores, events)
        for event in ("x", "_all"):
            spec = EventSpec(event_type=event)
            rq = RetQuery(spec, spec, start.date(), start.date(), interval=7, intervals=2)
            got = retention.run(params.retention(_ret_params(rq)), ctx, arrays=arrays)
            assert [c["count"] for c in got["series"][0]["values"]["2024-03-04"]] == [2, 2, 1]
            same(got, ref.retention(world, rq), log, _ret_params(rq))
    finally:
        stores.close()


@pytest.mark.parametrize("arrays", [False, True])
def test_new_user_cohort_is_their_local_week(stores: Stores, arrays: bool) -> None:
    """A new user whose first event is Sunday 23:30 in New York (Monday 03:30 UTC) joins the weekly
    cohort of the week that Sunday ends, in the project's time zone, not the UTC week after it."""
    first = datetime(2024, 3, 11, 3, 30)  # Sunday 2024-03-10 23:30 EDT
    events = [_ev(0, "u1", "x", first, NEW_YORK), _ev(1, "u1", "x", first + timedelta(days=8), NEW_YORK)]
    try:
        ctx, world, log = _fixed(stores, events, NEW_YORK)
        rq = RetQuery(
            EventSpec(event_type="_new"), EventSpec(event_type="_all"), date(2024, 3, 4), date(2024, 3, 17), interval=7
        )
        got = retention.run(params.retention(_ret_params(rq)), ctx, arrays=arrays)
        assert got["series"][0]["dates"] == ["2024-03-04"]
        same(got, ref.retention(world, rq), log, _ret_params(rq))
    finally:
        stores.close()


def test_ltv_day_not_reached_across_dst(stores: Stores) -> None:
    events = [_ev(0, "u1", "pay", DST_START, NEW_YORK, revenue=Decimal("5.00"))]
    try:
        ctx, world, log = _fixed(stores, events, NEW_YORK)
        ctx.now = world.now = DST_NOW
        asked = {"start": "20240309", "end": "20240309", "i": "1", "m": "2"}
        got = ltv.run(params.ltv(asked), ctx)
        assert got["series"][0]["values"]["2024-03-09"]["r1d"] is None  # not 24 h of real time yet
        same(got, ref.ltv(world, date(2024, 3, 9), date(2024, 3, 9), 2, 1), log, asked)
    finally:
        stores.close()


def test_cohort_last_days_ends_now(stores: Stores) -> None:
    try:
        ctx, world, log = _fixed(stores, [_ev(0, "u1", "x", datetime(2024, 3, 6))])
        ctx.now = world.now = datetime(2024, 3, 5)
        tree = {"performed": {"event_type": "x", "timing": {"kind": "last_days", "days": 7}}}
        node = _node(tree)
        got = [u for _, u in cohorts.members(node, ctx)]
        same(got, sorted(world.members(node)), log, tree)
    finally:
        stores.close()


def test_within_first_days_after_the_first_event_moves_earlier(stores: Stores) -> None:
    """u1's purchase is stored first; an event ten days earlier arrives in a later load. The purchase
    is then no longer within 7 days of u1's first event (u2, in order, still is)."""
    t = datetime(2024, 3, 14, 12)
    events = [
        _ev(0, "u1", "buy", t, revenue=Decimal("150")),
        _ev(1, "u2", "buy", t, revenue=Decimal("150")),
        _ev(2, "u1", "visit", t - 10 * ref.DAY),
    ]
    log = Log("UTC", date(2024, 3, 4), ["buy", "visit"], events)
    try:
        store, pid = stores.load(log, batches=3)  # one event per load, in this order
        now = datetime(2024, 6, 1)
        ctx = _context(store, pid, log, now, {})
        tree = {
            "performed": {
                "event_type": "buy",
                "measure": {"kind": "sum", "property": "$revenue", "op": ">", "value": 100},
                "timing": {"kind": "within_first_days", "days": 7},
            }
        }
        node = _node(tree)
        got = [u for _, u in cohorts.members(node, ctx)]
        assert got == ["u2"]
        same(got, sorted(World(events, "UTC", now).members(node)), log, tree)
    finally:
        stores.close()


def test_not_in_empty_cohort_keeps_no_anonymous_events(stores: Stores) -> None:
    t = datetime(2024, 3, 4, 12)
    events = [_ev(0, "u1", "x", t), _ev(1, None, "x", t)]
    try:
        ctx, world, log = _fixed(stores, events)
        saved = {1: _node({"performed": {"event_type": "nobody did this"}})}
        ctx.cohorts = saved.__getitem__
        world = World(events, "UTC", world.now, saved)
        q = SegQuery(
            events=[EventSpec(event_type="x")],
            metric="totals",
            start=t.date(),
            end=t.date(),
            segment=Segment(not_cohorts=[1]),
        )
        got = _run_segmentation(ctx, q)
        assert got["series"] == [[1]]  # the anonymous event is dropped, as with a non-empty cohort
        same(got, ref.segmentation(world, q), log, _seg_params(q))
    finally:
        stores.close()


def test_calendar_month_retention_keeps_late_returns(stores: Stores) -> None:
    events = [_ev(0, "u1", "x", datetime(2024, 1, 1, 12)), _ev(1, "u1", "x", datetime(2033, 12, 20, 12))]
    try:
        ctx, world, log = _fixed(stores, events)
        ctx.now = world.now = datetime(2040, 1, 1)
        rq = RetQuery(
            EventSpec(event_type="x"),
            EventSpec(event_type="x"),
            date(2024, 1, 1),
            date(2024, 1, 1),
            interval=30,
            calendar=True,
            intervals=120,
        )
        got = retention.run(params.retention(_ret_params(rq)), ctx)
        assert got["series"][0]["values"]["2024-01-01"][120]["count"] == 1  # the return in month 119
        same(got, ref.retention(world, rq), log, _ret_params(rq))
    finally:
        stores.close()


def test_sums_beyond_64_bits_stay_exact(stores: Stores) -> None:
    """Sums from the daily totals are read as 64-bit integers when they fit, exactly when not."""
    t = datetime(2024, 3, 4, 12)
    big = 2**62 - 1  # the largest amount kept in the typed column
    events = [_ev(i, "u1", "inv", t + timedelta(minutes=i), properties={"amount_paid": big}) for i in range(3)]
    events.append(_ev(3, "u2", "inv", t + ref.DAY, properties={"amount_paid": 250}))
    try:
        ctx, _, _ = _fixed(stores, events)
        asked = {
            "e": json.dumps({"event_type": "inv", "group_by": [{"type": "event", "value": "amount_paid"}]}),
            "m": "sums",
            "start": "20240304",
            "end": "20240305",
            "i": "1",
        }
        got = segmentation.run(params.segmentation(asked), ctx)
        assert got["series"] == [[3 * big, 250]] and got["seriesCollapsed"] == [[{"setId": "", "value": 3 * big + 250}]]
    finally:
        stores.close()
