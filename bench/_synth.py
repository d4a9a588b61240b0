"""Synthetic revlens data folders for bench/queries.py: a year of Stripe-like events, written in bulk.

Shape (after shared/reference/performance.md B.1):
- `users` users with ids 1..N (`user_id` 'user_0000123', `customer` 'cus_0000123'); each gets a signup
  moment uniform over the year;
- `events` events, each for a user drawn uniformly, at signup + (rest of the year) * u^3 with u uniform,
  so activity is concentrated after signup and retention decays;
- ten `[Stripe] ...` event types at 10 % each;
- `revenue` (DECIMAL) 5.00-200.00 on payment_intent.succeeded and -(5.00-200.00) on charge.refunded;
- `product` (50 values, skewed) on payment, refund, invoice and checkout events;
- `properties` JSON: `currency` on every event, `product` where there is one, `amount_paid` (integer
  cents) on invoice.payment_succeeded / invoice.paid, `$revenue` (a string, as revlens stores Decimals)
  on revenue events;
- rows in time order, as appends would leave them, then every closed month (all but the last, at
  2026-11-01) rewritten in event-type order as the loader does in the background
  (store/clustering.py); `users.first_time` = each user's first event, also on every event as
  `user_first_time` (what the loader keeps).

The numbers are drawn with numpy; DuckDB builds the strings and the JSON (`INSERT ... SELECT` from a
registered Arrow table), which takes seconds rather than minutes at 10 M rows. Folders are cached under
/tmp keyed by size and seed; `generate(..., regenerate=True)` rebuilds.
"""

from __future__ import annotations

import json
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import pyarrow as pa

from revlens.store.duckdb_store import DuckDBStore
from revlens.store.writes import rebuild_summaries

FORMAT_VERSION = 4
CACHE_ROOT = Path("/tmp")
YEAR_START = datetime(2025, 11, 1)  # the data covers [2025-11-01, 2026-11-01) UTC
DAYS = 365
US_PER_DAY = 86_400_000_000
EVENT_TYPES = (
    "[Stripe] payment_intent.succeeded",
    "[Stripe] invoice.payment_succeeded",
    "[Stripe] charge.succeeded",
    "[Stripe] invoice.paid",
    "[Stripe] charge.refunded",
    "[Stripe] checkout.session.completed",
    "[Stripe] customer.subscription.created",
    "[Stripe] invoice.created",
    "[Stripe] charge.failed",
    "[Stripe] customer.subscription.updated",
)
PURCHASE, INVOICE_SUCCEEDED, INVOICE_PAID, REFUND, CHECKOUT = 0, 1, 3, 4, 5
WITH_PRODUCT = (PURCHASE, INVOICE_SUCCEEDED, INVOICE_PAID, REFUND, CHECKOUT)
WITH_AMOUNT_PAID = (INVOICE_SUCCEEDED, INVOICE_PAID)
PRODUCTS = tuple(f"plan_{i:02d}" for i in range(50))
SIZES = {"1m": (1_000_000, 100_000), "10m": (10_000_000, 1_000_000)}


@dataclass
class Dataset:
    label: str
    path: Path  # the data folder (holds revlens.duckdb)
    events: int
    users: int
    seed: int
    pid: int
    generate_s: float | None  # None when read from the cache
    db_bytes: int


def folder(label: str, seed: int) -> Path:
    return CACHE_ROOT / f"revlens-bench-{label}-s{seed}-v{FORMAT_VERSION}"


def _arrays(n_events: int, n_users: int, seed: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    signup = rng.random(n_users) * DAYS  # days since YEAR_START, fractional
    user = rng.integers(0, n_users, n_events, dtype=np.int64)
    start = signup[user]
    days = start + (DAYS - start) * rng.random(n_events) ** 3
    t_us = (days * US_PER_DAY).astype(np.int64)
    order = np.argsort(t_us, kind="stable")
    t_us, user = t_us[order], user[order]
    etype = rng.integers(0, len(EVENT_TYPES), n_events, dtype=np.int8)
    cents = rng.integers(500, 20_001, n_events, dtype=np.int64)
    revenue = np.where(etype == PURCHASE, cents, np.where(etype == REFUND, -cents, 0))
    weights = 1.0 / (np.arange(len(PRODUCTS)) + 5.0)
    product = rng.choice(len(PRODUCTS), n_events, p=weights / weights.sum()).astype(np.int8)
    product = np.where(np.isin(etype, WITH_PRODUCT), product, -1).astype(np.int8)
    amount_paid = np.where(np.isin(etype, WITH_AMOUNT_PAID), rng.integers(500, 50_001, n_events), -1)
    base = np.datetime64(YEAR_START, "us")
    return pa.table(
        {
            "i": pa.array(np.arange(n_events, dtype=np.int64)),
            "user_idx": pa.array((user + 1).astype(np.int32)),
            "etype": pa.array(etype),
            "t": pa.array(base + t_us.astype("timedelta64[us]")),
            "rev_cents": pa.array(revenue.astype(np.int64)),
            "product": pa.array(product),
            "amount_paid": pa.array(amount_paid.astype(np.int64)),
        }
    )


INSERT_EVENTS = """
INSERT INTO events BY NAME
SELECT
    $pid AS pid,
    'evt_' || lpad(CAST(i AS VARCHAR), 10, '0') AS insert_id,
    (CAST($types AS VARCHAR[]))[etype + 1] AS event_type,
    t AS time,
    t AS local_time,
    'user_' || lpad(CAST(user_idx AS VARCHAR), 7, '0') AS user_id,
    user_idx,
    min(t) OVER (PARTITION BY user_idx) AS user_first_time,
    0 AS user_rank,
    'cus_' || lpad(CAST(user_idx AS VARCHAR), 7, '0') AS customer,
    CASE WHEN rev_cents <> 0 THEN CAST(rev_cents AS DECIMAL(18, 3)) / 100 END AS revenue,
    CASE WHEN product >= 0 THEN (CAST($products AS VARCHAR[]))[product + 1] END AS product,
    CASE WHEN amount_paid >= 0 THEN amount_paid END AS amount_paid,
    false AS fx_missing,
    'we_bench' AS endpoint_id,
    CASE
        WHEN amount_paid >= 0 THEN json_object('currency', 'usd', 'product', (CAST($products AS VARCHAR[]))[product + 1],
                                               'amount_paid', amount_paid)
        WHEN rev_cents <> 0 THEN json_object('currency', 'usd', 'product', (CAST($products AS VARCHAR[]))[product + 1],
                                             '$revenue', CAST(CAST(rev_cents AS DECIMAL(18, 3)) / 100 AS VARCHAR))
        WHEN product >= 0 THEN json_object('currency', 'usd', 'product', (CAST($products AS VARCHAR[]))[product + 1])
        ELSE json_object('currency', 'usd', 'livemode', false)
    END AS properties
FROM synth ORDER BY i
"""

INSERT_USERS = """
INSERT INTO users BY NAME
SELECT pid, user_idx, min(user_id) AS user_id, min(time) AS first_time, min(local_time) AS first_local_time,
       min(time) AS first_seen_time
FROM events WHERE pid = $pid GROUP BY pid, user_idx ORDER BY user_idx
"""


def _build(path: Path, n_events: int, n_users: int, seed: int) -> tuple[float, int]:
    t0 = time.perf_counter()
    table = _arrays(n_events, n_users, seed)
    store = DuckDBStore(path)
    try:
        project, _ = store.create_project("bench", "USD", "UTC")
        with store.transaction() as cur:
            cur.register("synth", table)
            params = {"pid": project.pid, "types": list(EVENT_TYPES), "products": list(PRODUCTS)}
            cur.execute(INSERT_EVENTS, params)
            cur.unregister("synth")
            cur.execute(INSERT_USERS, {"pid": project.pid})
            rebuild_summaries(cur, [project.pid])  # what the loader keeps current at ingest
        # What the loader does to closed months in the background: every month but the last.
        while store.cluster_closed_month(YEAR_START.replace(year=YEAR_START.year + 1)) is not None:
            pass
        store.checkpoint()
    finally:
        store.close()
    return time.perf_counter() - t0, project.pid


def generate(label: str, seed: int = 1, regenerate: bool = False) -> Dataset:
    """The data folder for size `label` ('1m' or '10m'): from the cache, or generated now."""
    n_events, n_users = SIZES[label]
    path = folder(label, seed)
    marker = path / "bench-synth.json"
    if marker.exists() and not regenerate:
        DuckDBStore(
            path
        ).close()  # brings a cached folder up to the current schema (builds the summaries kept at ingest)
        meta = json.loads(marker.read_text())
        meta.pop("built_s", None)
        return Dataset(**{**meta, "path": path, "generate_s": None})
    if path.exists():
        shutil.rmtree(path)
    tmp = path.with_name(path.name + ".tmp")
    if tmp.exists():
        shutil.rmtree(tmp)
    seconds, pid = _build(tmp, n_events, n_users, seed)
    ds = Dataset(label, path, _count(tmp, "events"), _count(tmp, "users"), seed, pid, round(seconds, 2), 0)
    ds.db_bytes = sum(f.stat().st_size for f in tmp.iterdir() if f.is_file())
    meta = {k: v for k, v in asdict(ds).items() if k not in ("path", "generate_s")}
    (tmp / "bench-synth.json").write_text(json.dumps({**meta, "built_s": ds.generate_s}))
    tmp.rename(path)
    return ds


def _count(path: Path, table: str) -> int:
    store = DuckDBStore(path, read_only=True)
    try:
        return int(store.execute(f"SELECT count(*) FROM {table}")[0][0])
    finally:
        store.close()
