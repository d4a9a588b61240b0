"""Query benchmark: revlens' engine against hand-written DuckDB SQL and pandas on the same synthetic data.

For each data size (1 M events / 100 k users, 10 M events / 1 M users; a year, ten event types) it times
the seven charts of Amplitude's Stripe guide plus a 12-week retention on any event and a "last 30 days"
cohort, each answered three ways:

- revlens: the query engine (`revlens.query`: params -> compiler -> DuckDB -> response), as the API runs
  it, Python post-processing included;
- hand SQL: the obvious correct DuckDB SQL on the raw `events` table (no `users` table, no rollups),
  using the integer `user_idx` for distinct counts: the floor for our compiler;
- pandas: a straightforward pandas implementation on the same rows, loaded once into a DataFrame
  (`event_type` and `product` as categoricals, `amount_paid` pre-extracted from the JSON; load time
  is reported separately and not counted).

Each answer is reduced to a comparable dictionary (per week, per product, per retention cell ...) and
the three are checked to agree; a disagreement prints a warning and is recorded in the JSON.

    /work/venv/bin/python bench/queries.py                 # 1M and 10M, 5 runs each
    /work/venv/bin/python bench/queries.py --quick         # 1M only, 3 runs
    /work/venv/bin/python bench/queries.py --sizes 10m --with-ingest --explain

Results go to bench/results/queries-<UTC>.json; with --explain, the EXPLAIN ANALYZE of every SQL
statement the engine ran goes to bench/results/queries-<UTC>-explain/.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import signal
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import numpy as np
import pandas as pd
from pyroaring import BitMap

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
T = TypeVar("T")
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(REPO / "src"))

import _synth  # noqa: E402
from _background_ingest import BackgroundIngest  # noqa: E402
from revlens.query import cohorts, distribution, params, retention, segmentation  # noqa: E402
from revlens.query.cohort_model import CohortNode  # noqa: E402
from revlens.query.context import Executor, QueryContext  # noqa: E402
from revlens.store.duckdb_store import DuckDBStore  # noqa: E402

PURCHASE = "[Stripe] payment_intent.succeeded"
INVOICE = "[Stripe] invoice.payment_succeeded"
NOW = datetime(2026, 11, 1)
START, END = "20251101", "20261031"  # the whole year of data
LO, HI = datetime(2025, 11, 1), datetime(2026, 11, 1)
# 12 weekly cohorts (Monday to Sunday), early in the year so that all 12 return weeks are complete.
RET_START, RET_END = "20251103", "20260125"
RET_LO, RET_HI = datetime(2025, 11, 3), datetime(2026, 1, 26)
RET_WEEKS = 12
FREQ_EDGES = distribution.DEFAULT_FREQUENCY_BUCKETS
TARGET_P95_MS, TARGET_P50_MS, TARGET_PANDAS_X = 500.0, 100.0, 10.0
US_PER_WEEK = 7 * 86_400_000_000

Answer = dict[Any, float]


# ----------------------------------------------------------------------------------------- questions


def _seg(e: dict[str, Any], m: str, i: str = "7") -> dict[str, str]:
    return {"e": json.dumps(e), "m": m, "start": START, "end": END, "i": i}


def _series(resp: dict[str, Any]) -> Answer:
    """Segmentation response -> {(week, group): value}, zeros dropped."""
    out: Answer = {}
    for label, values in zip(resp["seriesLabels"], resp["series"], strict=True):
        group = label[1] if isinstance(label, list) else ""
        for x, v in zip(resp["xValues"], values, strict=True):
            if v:
                out[(x, group)] = float(v)
    return out


def _frequency(resp: dict[str, Any]) -> Answer:
    return {x: float(v) for x, v in zip(resp["xValues"], resp["series"][0], strict=True) if v}


def _retention(resp: dict[str, Any]) -> Answer:
    out: Answer = {}
    for cohort, cells in resp["series"][0]["values"].items():
        out[(cohort, "size")] = float(cells[0]["count"])
        for k, cell in enumerate(cells[1:]):
            if cell["count"]:
                out[(cohort, k)] = float(cell["count"])
    return out


def _rows(rows: list[tuple[Any, ...]], groups: bool = False) -> Answer:
    """Hand-SQL rows (week, [group,] value) -> {(week, group): value}."""
    out: Answer = {}
    for row in rows:
        week = row[0].strftime("%Y-%m-%d")
        group = str(row[1]) if groups else ""
        value = row[-1]
        if value:
            out[(week, group)] = float(value)
    return out


def _freq_label(n: float) -> str:
    labels = distribution.bucket_labels([float(e) for e in FREQ_EDGES])
    slot = int(np.searchsorted(np.asarray(FREQ_EDGES), n, side="right")) - 1
    return labels[slot]


def _pd_week(s: pd.Series) -> pd.Series:
    """Monday of the week, as date_trunc('week', ...) does."""
    return s.dt.normalize() - pd.to_timedelta(s.dt.day_of_week, unit="D")


def _pd_series(s: pd.Series) -> Answer:
    """pandas result indexed by week or (week, group) -> {(week, group): value}."""
    out: Answer = {}
    for key, value in s.items():
        week, group = (key[0], str(key[1])) if isinstance(key, tuple) else (key, "")
        if value and not (isinstance(value, float) and math.isnan(value)):
            out[(pd.Timestamp(week).strftime("%Y-%m-%d"), group)] = float(value)
    return out


# -- hand-written SQL (raw `events` table only) ----------------------------------------------------

SQL_REVENUE = """
SELECT date_trunc('week', local_time) AS w, sum(amount_paid) AS revenue
FROM events WHERE pid = $pid AND event_type = $t AND local_time >= $lo AND local_time < $hi
GROUP BY w"""
SQL_AVERAGE = """
SELECT date_trunc('week', local_time) AS w, count(*) / count(DISTINCT user_idx) AS avg
FROM events WHERE pid = $pid AND event_type = $t AND local_time >= $lo AND local_time < $hi
GROUP BY w"""
SQL_FREQUENCY = """
SELECT n, count(*) FROM (
    SELECT user_idx, count(*) AS n FROM events
    WHERE pid = $pid AND event_type = $t AND local_time >= $lo AND local_time < $hi AND user_idx IS NOT NULL
    GROUP BY user_idx)
GROUP BY n"""
SQL_RETENTION = """
WITH s AS (
    SELECT user_idx, min(time) AS t0, date_trunc('week', min(local_time)) AS cohort FROM events
    WHERE pid = $pid {start_type} AND local_time >= $lo AND local_time < $hi AND user_idx IS NOT NULL
    GROUP BY user_idx
), r AS (
    SELECT DISTINCT s.cohort, s.user_idx, (epoch_us(e.time) - epoch_us(s.t0)) // $week_us AS k
    FROM s JOIN events e ON e.user_idx = s.user_idx
    WHERE e.pid = $pid {return_type} AND e.time >= s.t0 AND e.time < s.t0 + to_microseconds($weeks * $week_us)
)
SELECT cohort, 'size', count(*) FROM s GROUP BY cohort
UNION ALL
SELECT cohort, k, count(*) FROM r GROUP BY cohort, k"""
SQL_REVENUE_BY_PRODUCT = """
SELECT date_trunc('week', local_time) AS w, coalesce(product, '(none)') AS product, sum(revenue)
FROM events WHERE pid = $pid AND event_type = $t AND local_time >= $lo AND local_time < $hi
GROUP BY w, product"""
SQL_UNIQUES_BY_PRODUCT = """
SELECT date_trunc('week', local_time) AS w, coalesce(product, '(none)') AS product, count(DISTINCT user_idx)
FROM events WHERE pid = $pid AND event_type = $t AND local_time >= $lo AND local_time < $hi
GROUP BY w, product"""
SQL_COHORT_FIRST_7D = """
WITH first AS (SELECT user_idx, min(time) AS t0 FROM events WHERE pid = $pid GROUP BY user_idx)
SELECT count(*) FROM (
    SELECT e.user_idx FROM events e JOIN first f ON f.user_idx = e.user_idx
    WHERE e.pid = $pid AND e.event_type = $t AND e.time >= f.t0 AND e.time < f.t0 + INTERVAL 7 DAY
    GROUP BY e.user_idx HAVING sum(e.revenue) > 100)"""
SQL_COHORT_LAST_30D = """
SELECT count(DISTINCT user_idx) FROM events WHERE pid = $pid AND event_type = $t AND time >= $since"""


def _hand_retention(store: Executor, pid: int, event_type: str | None) -> Answer:
    typed = "AND event_type = $t" if event_type else ""
    sql = SQL_RETENTION.format(start_type=typed, return_type=typed.replace("event_type", "e.event_type"))
    args: dict[str, Any] = {"pid": pid, "lo": RET_LO, "hi": RET_HI, "week_us": US_PER_WEEK, "weeks": RET_WEEKS}
    if event_type:
        args["t"] = event_type
    out: Answer = {}
    for cohort, k, n in store.execute(sql, args):
        key = (cohort.strftime("%Y-%m-%d"), "size" if k == "size" else int(k))
        out[key] = float(n)
    return out


# -- pandas ---------------------------------------------------------------------------------------


def _pd_range(df: pd.DataFrame, event_type: str | None, lo: datetime, hi: datetime) -> pd.DataFrame:
    mask = (df["local_time"] >= lo) & (df["local_time"] < hi)
    if event_type is not None:
        mask &= df["event_type"] == event_type
    return df[mask]


def _pd_retention(df: pd.DataFrame, event_type: str | None) -> Answer:
    d = _pd_range(df, event_type, RET_LO, RET_HI)
    starts = d.groupby("user_idx").agg(t0=("time", "min"), first_local=("local_time", "min"))
    starts["cohort"] = _pd_week(starts["first_local"])
    r = df if event_type is None else df[df["event_type"] == event_type]
    m = r[["user_idx", "time"]].merge(starts[["t0", "cohort"]], left_on="user_idx", right_index=True)
    m["k"] = (m["time"] - m["t0"]) // pd.Timedelta(days=7)
    m = m[(m["k"] >= 0) & (m["k"] < RET_WEEKS)].drop_duplicates(["user_idx", "k"])
    out: Answer = {}
    for cohort, n in starts.groupby("cohort").size().items():
        out[(pd.Timestamp(cohort).strftime("%Y-%m-%d"), "size")] = float(n)
    for (cohort, k), n in m.groupby(["cohort", "k"]).size().items():
        out[(pd.Timestamp(cohort).strftime("%Y-%m-%d"), int(k))] = float(n)
    return out


def _pd_first_7d(df: pd.DataFrame) -> Answer:
    first = df.groupby("user_idx")["time"].min().rename("t0")
    d = df.loc[df["event_type"] == PURCHASE, ["user_idx", "time", "revenue"]].join(first, on="user_idx")
    d = d[(d["time"] >= d["t0"]) & (d["time"] < d["t0"] + pd.Timedelta(days=7))]
    per_user = d.groupby("user_idx")["revenue"].sum()
    return {"size": float((per_user > 100).sum())}


def _pd_frequency(df: pd.DataFrame) -> Answer:
    n = _pd_range(df, PURCHASE, LO, HI).groupby("user_idx").size()
    out: Answer = {}
    for count, users in n.value_counts().items():
        label = _freq_label(float(count))
        out[label] = out.get(label, 0.0) + float(users)
    return out


@dataclass
class Question:
    key: str
    title: str
    engine: Callable[[QueryContext], Answer]
    hand: Callable[[Executor, int], Answer]
    pandas: Callable[[pd.DataFrame], Answer]


def _questions() -> list[Question]:
    def seg_engine(p: dict[str, str], reduce: Callable[[dict[str, Any]], Answer]) -> Callable[[QueryContext], Answer]:
        query = params.segmentation(p)  # parsed once; parsing is microseconds either way
        return lambda ctx: reduce(segmentation.run(query, ctx))

    def hand(sql: str, groups: bool = False, **extra: Any) -> Callable[[Executor, int], Answer]:
        def run(store: Executor, pid: int) -> Answer:
            args = {"pid": pid, "lo": LO, "hi": HI, **extra}
            return _rows(store.execute(sql, args), groups)

        return run

    def hand_frequency(store: Executor, pid: int) -> Answer:
        out: Answer = {}
        for n, users in store.execute(SQL_FREQUENCY, {"pid": pid, "t": PURCHASE, "lo": LO, "hi": HI}):
            label = _freq_label(float(n))
            out[label] = out.get(label, 0.0) + float(users)
        return out

    def ret_engine(event_type: str) -> Callable[[QueryContext], Answer]:
        e = json.dumps({"event_type": event_type})
        query = params.retention({"se": e, "re": e, "start": RET_START, "end": RET_END, "i": "7", "rm": "n-day"})
        return lambda ctx: _retention(retention.run(query, ctx))

    def cohort_engine(definition: dict[str, Any]) -> Callable[[QueryContext], Answer]:
        node = CohortNode.model_validate(definition)
        return lambda ctx: {"size": float(cohorts.size(node, ctx))}

    def pd_revenue(df: pd.DataFrame) -> Answer:
        d = _pd_range(df, INVOICE, LO, HI)
        return _pd_series(d.groupby(_pd_week(d["local_time"]))["amount_paid"].sum())

    def pd_average(df: pd.DataFrame) -> Answer:
        d = _pd_range(df, PURCHASE, LO, HI)
        g = d.groupby(_pd_week(d["local_time"]))["user_idx"].agg(["size", "nunique"])
        return _pd_series(g["size"] / g["nunique"])

    def pd_by_product(column: str, how: str) -> Callable[[pd.DataFrame], Answer]:
        def run(df: pd.DataFrame) -> Answer:
            d = _pd_range(df, PURCHASE, LO, HI)
            g = d.groupby([_pd_week(d["local_time"]), "product"], observed=True)[column]
            return _pd_series(g.sum() if how == "sum" else g.nunique())

        return run

    def pd_last_30d(df: pd.DataFrame) -> Answer:
        d = df[(df["event_type"] == PURCHASE) & (df["time"] >= NOW - timedelta(days=30))]
        return {"size": float(d["user_idx"].nunique())}

    return [
        Question(
            "revenue",
            "1. total revenue (sum amount_paid, invoice.payment_succeeded, weekly)",
            seg_engine(
                _seg({"event_type": INVOICE, "group_by": [{"type": "event", "value": "amount_paid"}]}, "sums"), _series
            ),
            hand(SQL_REVENUE, t=INVOICE),
            pd_revenue,
        ),
        Question(
            "average",
            "2. average purchases per user (payment_intent.succeeded, weekly)",
            seg_engine(_seg({"event_type": PURCHASE}, "average"), _series),
            hand(SQL_AVERAGE, t=PURCHASE),
            pd_average,
        ),
        Question(
            "frequency",
            "3. purchase frequency distribution (whole year)",
            seg_engine(_seg({"event_type": PURCHASE}, "frequency"), _frequency),
            hand_frequency,
            _pd_frequency,
        ),
        Question(
            "retention",
            "4. 12-week retention, invoice.payment_succeeded (Return On, 12 weekly cohorts)",
            ret_engine(INVOICE),
            lambda store, pid: _hand_retention(store, pid, INVOICE),
            lambda df: _pd_retention(df, INVOICE),
        ),
        Question(
            "revenue_by_product",
            "5. revenue by product (sum $revenue, payment_intent.succeeded, weekly)",
            seg_engine(
                _seg({"event_type": PURCHASE, "group_by": [{"value": "$revenue"}, {"value": "product"}]}, "sums"),
                _series,
            ),
            hand(SQL_REVENUE_BY_PRODUCT, groups=True, t=PURCHASE),
            pd_by_product("revenue", "sum"),
        ),
        Question(
            "orders_by_product",
            "6. orders by product (uniques, payment_intent.succeeded, weekly)",
            seg_engine(_seg({"event_type": PURCHASE, "group_by": [{"value": "product"}]}, "uniques"), _series),
            hand(SQL_UNIQUES_BY_PRODUCT, groups=True, t=PURCHASE),
            pd_by_product("user_idx", "nunique"),
        ),
        Question(
            "cohort_first_7d",
            "7. cohort: $revenue > 100 within 7 days of first event",
            cohort_engine(
                {
                    "performed": {
                        "event_type": PURCHASE,
                        "measure": {"kind": "sum", "property": "$revenue", "op": ">", "value": 100},
                        "timing": {"kind": "within_first_days", "days": 7},
                    }
                }
            ),
            lambda store, pid: {"size": float(store.execute(SQL_COHORT_FIRST_7D, {"pid": pid, "t": PURCHASE})[0][0])},
            _pd_first_7d,
        ),
        Question(
            "retention_all",
            "+ 12-week retention, any event (_all / _all)",
            ret_engine("_all"),
            lambda store, pid: _hand_retention(store, pid, None),
            lambda df: _pd_retention(df, None),
        ),
        Question(
            "cohort_last_30d",
            "+ cohort: payment_intent.succeeded in the last 30 days",
            cohort_engine({"performed": {"event_type": PURCHASE, "timing": {"kind": "last_days", "days": 30}}}),
            lambda store, pid: {
                "size": float(
                    store.execute(SQL_COHORT_LAST_30D, {"pid": pid, "t": PURCHASE, "since": NOW - timedelta(days=30)})[
                        0
                    ][0]
                )
            },
            pd_last_30d,
        ),
    ]


# ------------------------------------------------------------------------------------------- timing


def _time(fn: Callable[[], Answer], runs: int, warmup: int) -> tuple[list[float], Answer]:
    answer: Answer = {}
    for _ in range(warmup):
        answer = fn()
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        answer = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return times, answer


def _time_pair(
    a: Callable[[], Answer], b: Callable[[], Answer], runs: int
) -> tuple[list[float], Answer, list[float], Answer]:
    """Time two ways of answering alternately (a, b, a, b, ...) after one warm-up each, so that a burst
    of load from elsewhere on the machine hits both rather than one."""
    ans_a, ans_b = a(), b()
    ta: list[float] = []
    tb: list[float] = []
    for _ in range(runs):
        for fn, out in ((a, ta), (b, tb)):
            t0 = time.perf_counter()
            res = fn()
            out.append((time.perf_counter() - t0) * 1000)
            if fn is a:
                ans_a = res
            else:
                ans_b = res
    return ta, ans_a, tb, ans_b


def _p95(times: list[float]) -> float:
    """Nearest-rank 95th percentile (with 5 runs: the slowest)."""
    ordered = sorted(times)
    return ordered[max(0, math.ceil(0.95 * len(ordered)) - 1)]


def _diff(a: Answer, b: Answer) -> list[str]:
    """Keys whose values differ (relative 1e-6), as readable strings (at most 5)."""
    bad = []
    for key in sorted(set(a) | set(b), key=str):
        x, y = a.get(key, 0.0), b.get(key, 0.0)
        if abs(x - y) > 1e-6 * max(1.0, abs(x), abs(y)):
            bad.append(f"{key}: {x} vs {y}")
    return bad


class Tracer:
    """An Executor that records the SQL the engine runs, with parameters and time."""

    def __init__(self, store: DuckDBStore) -> None:
        self.store = store
        self.dialect = store.dialect
        self.calls: list[tuple[str, Any, float]] = []

    def _timed(self, run: Callable[[str, Any], T], sql: str, args: Any) -> T:
        t0 = time.perf_counter()
        result = run(sql, args)
        self.calls.append((sql, args, (time.perf_counter() - t0) * 1000))
        return result

    def execute(self, sql: str, args: dict[str, Any] | list[Any] | None = None) -> list[tuple[Any, ...]]:
        return self._timed(self.store.execute, sql, args)

    def user_set(self, sql: str, args: dict[str, Any] | list[Any] | None = None) -> BitMap:
        return self._timed(self.store.user_set, sql, args)

    def columns(self, sql: str, args: dict[str, Any] | list[Any] | None = None) -> dict[str, np.ndarray]:
        return self._timed(self.store.columns, sql, args)


def _explain(store: DuckDBStore, sql: str, args: Any) -> str:
    """EXPLAIN ANALYZE as a compact operator tree (time, rows, the details that matter)."""
    rows = store.execute("EXPLAIN (ANALYZE, FORMAT json) " + sql, args)
    profile = json.loads(rows[0][1])
    qinfo = profile.get("query", {})
    lines = [
        f"total {1000 * float(qinfo.get('total_time', 0)):.1f} ms, cpu {1000 * float(qinfo.get('cpu_time', 0)):.1f} ms, "
        f"rows scanned {qinfo.get('total_rows_scanned')}, peak memory {profile.get('system', {}).get('peak_buffer_memory')} B "
        "(operator times are CPU summed over threads)"
    ]
    keep = ("Table", "Filters", "Groups", "Aggregates", "Conditions", "Join Type", "Projections", "Function")

    def walk(node: dict[str, Any], depth: int) -> None:
        info = node.get("extra_info", {})
        details = "; ".join(f"{k}: {info[k]}" for k in keep if info.get(k))
        if node.get("type") not in ("RESULT_COLLECTOR", "EXPLAIN_ANALYZE"):
            lines.append(
                f"{'  ' * depth}{node.get('name')}  {1000 * float(node.get('timing', 0)):.1f} ms  "
                f"{node.get('intermediate_rows', '')} rows  {details[:400]}"
            )
            depth += 1
        for child in node.get("children", []):
            walk(child, depth)

    for op in profile.get("operator", []):
        walk(op, 0)
    return "\n".join(lines)


def load_frame(store: DuckDBStore, pid: int) -> pd.DataFrame:
    df = (
        store.cursor()
        .execute(
            "SELECT event_type, time, local_time, user_idx, CAST(revenue AS DOUBLE) AS revenue, product, "
            "amount_paid FROM events WHERE pid = ?",
            [pid],
        )
        .df()
    )
    df["event_type"] = df["event_type"].astype("category")
    df["product"] = df["product"].astype("category")
    return df


def bench_size(
    label: str, args: argparse.Namespace, explain_dir: Path | None, ingest: BackgroundIngest | None
) -> dict[str, Any]:
    ds = _synth.generate(label, args.seed, args.regenerate)
    gen = "cached" if ds.generate_s is None else f"generated in {ds.generate_s:.1f} s"
    print(f"\n== {label}: {ds.events:,} events, {ds.users:,} users, {ds.db_bytes / 2**20:.0f} MiB ({gen}) {ds.path}")
    store = DuckDBStore(ds.path, read_only=True)
    if args.threads:
        store.execute(f"SET threads = {int(args.threads)}")
    ctx = QueryContext(store=store, pid=ds.pid, timezone="UTC", now=NOW)
    t0 = time.perf_counter()
    df = load_frame(store, ds.pid) if not args.no_pandas else pd.DataFrame()
    load_s = time.perf_counter() - t0
    if not args.no_pandas:
        print(
            f"pandas frame: {len(df):,} rows, {df.memory_usage(deep=True).sum() / 2**20:.0f} MiB, loaded in {load_s:.1f} s"
        )
    if ingest is not None:
        ingest.mark()
    results = []
    wanted = set(args.only.split(",")) if args.only else None
    for q in _questions():
        if wanted and q.key not in wanted:
            continue
        load_before = os.getloadavg()[0]
        eng_t, eng_a, hand_t, hand_a = _time_pair(
            lambda q=q: q.engine(ctx), lambda q=q: q.hand(store, ds.pid), args.runs
        )
        pd_t: list[float] = []
        pd_a: Answer = {}
        if not args.no_pandas:
            pd_t, pd_a = _time(lambda q=q: q.pandas(df), args.pandas_runs, 0)
        tracer = Tracer(store)
        q.engine(QueryContext(store=tracer, pid=ds.pid, timezone="UTC", now=NOW))
        statements = [
            {"ms": round(ms, 1), "sql": sql, "params": {k: str(v) for k, v in dict(a or {}).items()}}
            for sql, a, ms in tracer.calls
        ]
        if explain_dir is not None:
            hand_tracer = Tracer(store)
            q.hand(hand_tracer, ds.pid)
            for who, calls in (("revlens", tracer.calls), ("hand", hand_tracer.calls)):
                for i, (sql, a, _) in enumerate(calls):
                    path = explain_dir / f"{label}-{q.key}-{who}-{i}.txt"
                    path.write_text(f"-- params: {a}\n{sql}\n\n{_explain(store, sql, a)}\n")
        mismatches = {"hand_sql": _diff(eng_a, hand_a)}
        if not args.no_pandas:
            mismatches["pandas"] = _diff(eng_a, pd_a)
        for other, bad in mismatches.items():
            if bad:
                print(f"WARNING {label} {q.key}: revlens and {other} disagree on {len(bad)} values, e.g. {bad[:3]}")
        p50, p95 = statistics.median(eng_t), _p95(eng_t)
        hand50 = statistics.median(hand_t)
        pd50 = statistics.median(pd_t) if pd_t else None
        row = {
            "key": q.key,
            "title": q.title,
            "revlens_ms": [round(t, 2) for t in eng_t],
            "revlens_p50_ms": round(p50, 2),
            "revlens_p95_ms": round(p95, 2),
            "hand_sql_ms": [round(t, 2) for t in hand_t],
            "hand_sql_p50_ms": round(hand50, 2),
            "pandas_ms": [round(t, 2) for t in pd_t],
            "pandas_p50_ms": round(pd50, 2) if pd50 is not None else None,
            "speedup_vs_pandas": round(pd50 / p50, 1) if pd50 else None,
            "vs_hand_sql": round(p50 / hand50, 2),
            "loadavg_1m_before_after": [round(load_before, 2), round(os.getloadavg()[0], 2)],
            "answer_size": len(eng_a),
            "answer_total": round(sum(v for k, v in eng_a.items() if not (isinstance(k, tuple) and k[1] == "size")), 3),
            "mismatches": {k: v[:20] for k, v in mismatches.items()},
            "engine_statements": statements,
            "pass": {
                "p95_under_500ms": p95 < TARGET_P95_MS,
                "p50_under_100ms": p50 < TARGET_P50_MS,
                "not_slower_than_hand_sql": p50 <= hand50,
                "10x_faster_than_pandas": (pd50 / p50 >= TARGET_PANDAS_X) if pd50 else None,
                "answers_agree": not any(mismatches.values()),
            },
        }
        results.append(row)
        _print_row(row)
    ingest_stats = ingest.mark() if ingest is not None else None
    store.close()
    return {
        "size": label,
        "events": ds.events,
        "users": ds.users,
        "db_bytes": ds.db_bytes,
        "data_dir": str(ds.path),
        "generate_s": ds.generate_s,
        "pandas_load_s": round(load_s, 2) if not args.no_pandas else None,
        "ingest_during_queries": ingest_stats,
        "questions": results,
    }


def _yn(v: bool | None) -> str:
    return "-" if v is None else ("pass" if v else "FAIL")


HEADER = (
    f"{'question':<20} {'revlens p50':>11} {'p95':>8} {'hand SQL':>9} {'pandas':>9} {'x pandas':>8} "
    f"{'x hand':>6}  p95<500 p50<100 <=hand  10x  agree"
)


def _print_row(r: dict[str, Any]) -> None:
    p = r["pass"]
    pd50 = f"{r['pandas_p50_ms']:.0f}" if r["pandas_p50_ms"] is not None else "-"
    spd = f"{r['speedup_vs_pandas']:.1f}" if r["speedup_vs_pandas"] is not None else "-"
    print(
        f"{r['key']:<20} {r['revlens_p50_ms']:>11.1f} {r['revlens_p95_ms']:>8.1f} {r['hand_sql_p50_ms']:>9.1f} "
        f"{pd50:>9} {spd:>8} {r['vs_hand_sql']:>6.2f}  {_yn(p['p95_under_500ms']):>7} {_yn(p['p50_under_100ms']):>7} "
        f"{_yn(p['not_slower_than_hand_sql']):>6} {_yn(p['10x_faster_than_pandas']):>4} {_yn(p['answers_agree']):>6}",
        flush=True,
    )


def markdown(size: dict[str, Any]) -> str:
    lines = [
        f"{size['size']}: {size['events']:,} events, {size['users']:,} users (times in ms; pandas frame load "
        f"{size['pandas_load_s']} s, not counted)",
        "",
        "| question | revlens p50 | revlens p95 | hand SQL p50 | pandas p50 | revlens ÷ hand | pandas ÷ revlens "
        "| p95 < 500 | p50 < 100 | ≤ hand | ≥ 10× pandas | answers agree |",
        "|---|---:|---:|---:|---:|---:|---:|---|---|---|---|---|",
    ]
    for r in size["questions"]:
        p = r["pass"]
        pd50 = f"{r['pandas_p50_ms']:,.0f}" if r["pandas_p50_ms"] is not None else "-"
        spd = f"{r['speedup_vs_pandas']:.1f}×" if r["speedup_vs_pandas"] is not None else "-"
        lines.append(
            f"| {r['title']} | {r['revlens_p50_ms']:,.1f} | {r['revlens_p95_ms']:,.1f} | {r['hand_sql_p50_ms']:,.1f} "
            f"| {pd50} | {r['vs_hand_sql']:.2f}× | {spd} | {_yn(p['p95_under_500ms'])} | {_yn(p['p50_under_100ms'])} "
            f"| {_yn(p['not_slower_than_hand_sql'])} | {_yn(p['10x_faster_than_pandas'])} | {_yn(p['answers_agree'])} |"
        )
    return "\n".join(lines)


# ------------------------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1m,10m", help="comma-separated: 1m, 10m (default both)")
    ap.add_argument("--quick", action="store_true", help="1m only, 3 runs")
    ap.add_argument("--runs", type=int, default=5, help="timed runs per question after one warm-up (default 5)")
    ap.add_argument("--pandas-runs", type=int, default=3, help="timed pandas runs, no warm-up (default 3)")
    ap.add_argument("--no-pandas", action="store_true", help="skip the pandas baseline")
    ap.add_argument("--only", default="", help="comma-separated question keys")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--regenerate", action="store_true", help="rebuild the cached data folders under /tmp")
    ap.add_argument("--with-ingest", action="store_true", help="time while revlens serve ingests webhooks")
    ap.add_argument("--ingest-rate", type=float, default=500.0, help="deliveries/s offered with --with-ingest")
    ap.add_argument("--explain", action="store_true", help="save EXPLAIN ANALYZE of every engine statement")
    ap.add_argument("--threads", type=int, default=0, help="DuckDB threads for the benchmark (0: DuckDB default)")
    args = ap.parse_args(argv)
    if args.quick:
        args.sizes, args.runs, args.pandas_runs = "1m", 3, min(args.pandas_runs, 3)
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    out_dir = BENCH / "results"
    out_dir.mkdir(exist_ok=True)
    explain_dir = out_dir / f"queries-{stamp}-explain" if args.explain else None
    if explain_dir is not None:
        explain_dir.mkdir()
    ingest = BackgroundIngest(sys.executable, args.ingest_rate, 5000) if args.with_ingest else None
    doc: dict[str, Any] = {
        "benchmark": "queries",
        "started_utc": stamp,
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "machine": {"nproc": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        "args": vars(args),
        "now": NOW.isoformat(),
        "sizes": [],
    }
    try:
        import duckdb

        doc["machine"]["duckdb"] = duckdb.__version__
        doc["machine"]["pandas"] = pd.__version__
        if ingest is not None:
            ingest.start()
            time.sleep(5)  # let the first segment's requests get built and flowing
        for label in args.sizes.split(","):
            print(HEADER)
            doc["sizes"].append(bench_size(label.strip(), args, explain_dir, ingest))
    finally:
        if ingest is not None:
            ingest.stop()
            doc["ingest"] = {
                "rate_offered": args.ingest_rate,
                "seconds": round(ingest.seconds, 1),
                "events_stored": ingest.events_stored,
                "stored_per_s": round(ingest.events_stored / max(ingest.seconds, 1e-9), 1),
                "segments": ingest.segments,
            }
            print(f"ingest: {ingest.events_stored:,} events stored in {ingest.seconds:.0f} s")
        path = out_dir / f"queries-{stamp}.json"
        path.write_text(json.dumps(doc, indent=1, default=str))
        print(f"\nresults: {path}")
    for size in doc["sizes"]:
        print("\n" + markdown(size))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
