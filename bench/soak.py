"""Soak: `revlens serve` under a steady load for a long time; memory must stay flat, latency steady.

    python bench/soak.py --minutes 10 --rate 2400 --pin

Runs one-minute open-loop phases back to back (each with its own event ids), and after each minute
records the server's RSS and that minute's latency percentiles. Passes when RSS at the end is less
than 10 % above RSS after the first minute (the warm-up) and every minute's p99 stays under 50 ms.
Reuses the ingest benchmark's server control and load generator (bench/ingest.py, bench/_loadgen.py).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))
from ingest import HOST, REPO, Server, cli, free_port, machine_info, run_loadgen

RSS_GROWTH_LIMIT = 0.10
P99_LIMIT_MS = 50.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=int, default=10)
    parser.add_argument("--rate", type=float, default=2400.0, help="deliveries/s (about half the measured maximum)")
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--pin", action="store_true")
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    data_dir = Path(tempfile.mkdtemp(prefix="revlens-soak-")) / "data"
    data_dir.mkdir()
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO / "src")
    env["REVLENS_DATA_DIR"] = str(data_dir)
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
        for minute in range(args.minutes):
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
            row = {
                "minute": minute + 1,
                "rss_mb": round(server.rss_mb(), 1),
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
    base = minutes[0]["rss_mb"]
    growth = (minutes[-1]["rss_mb"] - base) / base if base else 0.0
    worst_p99 = max(m["p99_ms"] for m in minutes)
    verdict = {
        "rss_first_mb": base,
        "rss_last_mb": minutes[-1]["rss_mb"],
        "rss_growth": round(growth, 4),
        "worst_minute_p99_ms": worst_p99,
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


if __name__ == "__main__":
    started = time.monotonic()
    code = main()
    print(f"soak took {time.monotonic() - started:.0f} s", file=sys.stderr)
    sys.exit(code)
