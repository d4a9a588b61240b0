"""Soak: `revlens serve` under a steady load for a long time; memory must stay flat, latency steady.

    python bench/soak.py --minutes 10 --rate 2400 --warmup-minutes 3 --store-memory-limit 256MB

Runs one-minute open-loop phases back to back (each with its own event ids). The first
`--warmup-minutes` fill DuckDB's block cache up to the store's memory limit (the cache of a growing
table grows until that limit, by design) and are reported but not judged; the `--minutes` after them
are measured. For each minute: the server's RSS every 5 s (median, max and the last sample), DuckDB's
own account of its memory by kind (from /metrics), and the minute's latency percentiles. Passes when
the median RSS of the last measured minute is less than 10 % above that of the first, and every
measured minute's p99 stays under 50 ms, with no errors. (The median, because a single sample can
land on a checkpoint, which briefly takes memory up to the store's limit and gives it back.) Reuses the ingest benchmark's server control and load generator
(bench/ingest.py, bench/_loadgen.py).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import shutil
import signal
import statistics
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from ingest import HOST, REPO, Server, cli, free_port, http_get, machine_info, run_loadgen

RSS_GROWTH_LIMIT = 0.10
P99_LIMIT_MS = 50.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=2400.0, help="deliveries/s (about half the measured maximum)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--warmup-minutes", type=int, default=3, help="minutes run before the measured ones")
    parser.add_argument("--store-memory-limit", default="256MB", help="the server's store_memory_limit (DuckDB's cap)")
    parser.add_argument("--pin", action="store_true")
    parser.add_argument("--keep", action="store_true", help="keep the server's data folder (gigabytes)")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    data_dir = Path(tempfile.mkdtemp(prefix="revlens-soak-")) / "data"
    data_dir.mkdir()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src")
    env["REVLENS_DATA_DIR"] = str(data_dir)
    env["REVLENS_STORE_MEMORY_LIMIT"] = args.store_memory_limit
    python = sys.executable
    cli(python, env, "projects", "create", "soak", "--json")
    secret = "whsec_" + secrets.token_urlsafe(24)
    endpoint = cli(python, env, "stripe", "add-endpoint", "--project", "soak", "--signing-secret", secret, "--json")
    port = free_port()
    server = Server(python, env, data_dir, port, args.pin)
    minutes: list[dict[str, Any]] = []
    try:
        server.wait_healthy()
        token = (data_dir / "admin_token").read_text().strip()
        for minute in range(args.warmup_minutes + args.minutes):
            trace = RssTrace(server)
            result = run_loadgen(
                python,
                env,
                {
                    "mode": "open",
                    "host": HOST,
                    "port": port,
                    "url_path": endpoint["url_path"],
                    "signing_secret": secret,
                    "admin_token": token,
                    "connections": args.connections,
                    "rate": args.rate,
                    "warmup": 0.0,
                    "duration": 60.0,
                    "seed": 1000 + minute,
                    "cpu": 1 if args.pin else None,
                    "server_pid": server.proc.pid,
                },
            )
            trace.stop()
            row = {
                "minute": minute + 1,
                "warmup": minute < args.warmup_minutes,
                "rss_mb": round(server.rss_mb(), 1),
                "rss_median_mb": round(trace.median_mb, 1),
                "rss_max_mb": round(trace.max_mb, 1),
                "store_memory_mb": store_memory_mb(port, token),
                "throughput_per_s": round(result["throughput_per_s"], 1),
                "p50_ms": result["latency_ms"]["p50"],
                "p99_ms": result["latency_ms"]["p99"],
                "max_ms": result["latency_ms"]["max"],
                "non_2xx": result["non_2xx_total"],
                "errors": sum(result.get("errors", {}).values()),
            }
            minutes.append(row)
            print(json.dumps(row), flush=True)
            if server.proc.poll() is not None:
                raise RuntimeError("server died")
    finally:
        server.stop()
        if not args.keep:  # ten minutes at 2,400/s leave about 8 GB of log and store behind
            shutil.rmtree(data_dir.parent, ignore_errors=True)
    measured = [m for m in minutes if not m["warmup"]]
    base = measured[0]["rss_median_mb"]
    growth = (measured[-1]["rss_median_mb"] - base) / base if base else 0.0
    worst_p99 = max(m["p99_ms"] for m in measured)
    verdict = {
        "rss_first_minute_median_mb": base,
        "rss_last_minute_median_mb": measured[-1]["rss_median_mb"],
        "rss_growth": round(growth, 4),
        "rss_max_mb": max(m["rss_max_mb"] for m in measured),
        "worst_minute_p99_ms": worst_p99,
        "deliveries": round(sum(m["throughput_per_s"] * 60 for m in minutes)),
        "errors": sum(m["errors"] + m["non_2xx"] for m in minutes),
        "pass": growth < RSS_GROWTH_LIMIT
        and worst_p99 < P99_LIMIT_MS
        and all(m["errors"] + m["non_2xx"] == 0 for m in minutes),
    }
    out = REPO / "bench" / "results" / f"soak-{datetime.now(UTC).strftime('%Y%m%dT%H%M%SZ')}.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(
        json.dumps({"machine": machine_info(), "args": vars(args), "minutes": minutes, "verdict": verdict}, indent=1)
    )
    print(json.dumps(verdict))
    return 0 if verdict["pass"] else 1


class RssTrace:
    """The server's RSS every 5 s while a minute runs."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.samples: list[float] = []
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._done.wait(5.0):
            self.samples.append(self.server.rss_mb())

    def stop(self) -> None:
        self._done.set()
        self._thread.join()
        self.samples.append(self.server.rss_mb())

    @property
    def max_mb(self) -> float:
        return max(self.samples)

    @property
    def median_mb(self) -> float:
        return statistics.median(self.samples)


def store_memory_mb(port: int, token: str) -> dict[str, float]:
    """DuckDB's memory by kind, from the server's /metrics (revlens_store_memory_bytes{tag})."""
    status, body = http_get(port, "/metrics", token, timeout=5.0)
    if status != 200:
        return {}
    found: dict[str, float] = {}
    for line in body.decode().splitlines():
        if line.startswith("revlens_store_memory_bytes{"):
            tag = line.split('"')[1]
            found[tag] = round(float(line.rsplit(" ", 1)[1]) / 2**20, 1)
    return found


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"soak took {time.monotonic() - started:.0f} s", file=sys.stderr)
    sys.exit(code)
