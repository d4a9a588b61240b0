"""The crash test, CI size: bench/chaos.py with ~3,000 deliveries, 3 SIGKILLs of the server's process
group in 10 seconds, a Stripe-like retrying sender on 64 connections, some deliveries sent twice.

Passes when every acknowledged delivery is stored exactly once and nothing else is, every log record is
loaded, the store opens cleanly, and the query results equal those of a crash-free run of the same
deliveries (totals and $revenue sums per type as ingested; user counts and retention after
`reprocess`, since ingest-time identity links depend on arrival order, see bench/README.md).
The full run (10 kills, ~40,000 deliveries) is `python bench/chaos.py`.
"""

from __future__ import annotations

import json
from pathlib import Path

from benchload import load_bench

chaos = load_bench("chaos")


def test_sigkill_under_load_loses_and_doubles_nothing(tmp_path: Path) -> None:
    cfg = chaos.ChaosConfig(
        events=3000, seed=11, kills=3, duration=10.0, concurrency=64, workdir=tmp_path, in_process_setup=True
    )
    report = chaos.run_chaos(cfg, progress=False)
    summary = {k: report.get(k) for k in ("failures", "kills", "crash_send", "exactly_once", "queries")}
    assert report["verdict"] == "PASS", json.dumps(summary, indent=1, default=str)[:6000]
    send = report["crash_send"]
    assert report["kills"]["done"] == 3
    assert send["retries"] > 0  # the kills were felt by the sender
    assert send["acknowledged"] == send["deliveries"] == report["deliveries"]["slots"]
    assert report["deliveries"]["sent_twice"] > 0
    once = report["exactly_once"]
    assert once["missing_count"] == once["extra_count"] == once["duplicate_insert_ids"] == 0
    assert report["crash_store"]["opens_cleanly"]
    assert report["queries"]["as_ingested_order_free_differing"] == []
    assert report["queries"]["after_reprocess_differing"] == []
