"""Ingest benchmark: durable Stripe webhook deliveries into a real `revlens serve`, on this machine.

It starts the server itself in a fresh data folder (project and Stripe endpoint created with the CLI),
waits for /-/health, runs four phases with bench/_loadgen.py in a separate process, prints a table
against the targets, writes JSON to bench/results/ingest-<UTC>.json and always stops the server.

Phases (run in this order so the heavy one cannot leave a backlog behind the light ones):
  single     1 connection, closed loop: unloaded acknowledgement latency (target p50 < 2 ms)
  rate       open loop at --rate/s (1,000) on a clock, latency from the scheduled send time
             (target p99 < 50 ms, max < 1 s)
  queryable  open loop at --query-rate/s (500); every n-th acknowledged event is polled on
             /-/deliveries/<id> until queryable (target p95 < 1 s)
  throughput --connections (64) closed-loop senders (target >= 3,000 deliveries/s, no errors)
Between phases it waits until the last acknowledged event is queryable, so each phase starts drained.

    PYTHONPATH=src /work/venv/bin/python bench/ingest.py --pin          # the real run (~2 minutes)
    PYTHONPATH=src /work/venv/bin/python bench/ingest.py --quick        # smoke run (~30 s)
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH_DIR = Path(__file__).resolve().parent
REPO = BENCH_DIR.parent
RESULTS_DIR = BENCH_DIR / "results"
LOADGEN = BENCH_DIR / "_loadgen.py"
HOST = "127.0.0.1"

# Targets from the ingest issue (2-core machine, one server process); see bench/README.md.
TARGET_THROUGHPUT = 3000.0  # durable deliveries/s at 64 connections
TARGET_RATE_P99_MS = 50.0  # at 1,000 deliveries/s offered
TARGET_RATE_MAX_MS = 1000.0
TARGET_SINGLE_P50_MS = 2.0
TARGET_QUERYABLE_P95_MS = 1000.0

HEALTH_TIMEOUT_S = 60.0
DRAIN_TIMEOUT_S = 60.0
CLI_TIMEOUT_S = 120.0


class BenchError(RuntimeError):
    """The benchmark could not run (server did not start, CLI failed, ...)."""


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short phases for a smoke run")
    p.add_argument("--duration", type=float, help="measured seconds per phase (default 10; quick 3)")
    p.add_argument("--warmup", type=float, help="warm-up seconds before each phase (default 2; quick 0.5)")
    p.add_argument("--connections", type=int, default=64, help="closed-loop senders in the throughput phase")
    p.add_argument("--rate", type=float, default=1000.0, help="offered deliveries/s in the rate phase")
    p.add_argument("--query-rate", type=float, default=500.0, help="offered deliveries/s while sampling")
    p.add_argument("--samples", type=int, help="events sampled for queryable delay (default 200; quick 30)")
    p.add_argument("--poll-interval", type=float, default=0.02, help="seconds between polls of one event")
    p.add_argument("--single-duration", type=float, help="measured seconds of the single phase (default 5)")
    p.add_argument("--max-rate", type=float, default=10000.0, help="closed loop: requests pre-built per s")
    p.add_argument(
        "--phases",
        default="single,rate,queryable,throughput",
        help="comma-separated subset of single,rate,queryable,throughput",
    )
    p.add_argument("--pin", action="store_true", help="server on core 0 (taskset), load generator on core 1")
    p.add_argument("--keep", action="store_true", help="keep the data folder (and server log) afterwards")
    p.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    p.add_argument("--seed", type=int, default=7, help="seed of the demo event generator")
    p.add_argument(
        "--stored-only",
        action="store_true",
        help="send only event types revlens writes (by default ~13%% of the demo mix is acknowledged as ignored)",
    )
    p.add_argument("--check", action="store_true", help="exit 1 if any target is missed")
    p.add_argument("--python", default=sys.executable, help="interpreter for the server, CLI and loadgen")
    a = p.parse_args(argv)
    a.duration = a.duration if a.duration is not None else (3.0 if a.quick else 10.0)
    a.warmup = a.warmup if a.warmup is not None else (0.5 if a.quick else 2.0)
    a.samples = a.samples if a.samples is not None else (30 if a.quick else 200)
    a.single_duration = a.single_duration if a.single_duration is not None else (2.0 if a.quick else 5.0)
    a.phases = [x.strip() for x in a.phases.split(",") if x.strip()]
    unknown = set(a.phases) - {"single", "rate", "queryable", "throughput"}
    if unknown:
        p.error(f"unknown phases: {sorted(unknown)}")
    return a


# --------------------------------------------------------------------------------------------- server


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def cli(python: str, env: dict[str, str], *args: str) -> dict[str, Any]:
    """Run `python -m revlens ARGS` and return the JSON object it prints."""
    cmd = [python, "-m", "revlens", *args]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=CLI_TIMEOUT_S, check=False)
    if proc.returncode != 0:
        raise BenchError(f"{' '.join(cmd)} exited {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    out = proc.stdout.strip()
    try:
        doc = json.loads(out)
    except ValueError:
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if not lines:
            raise BenchError(f"{' '.join(cmd)} printed no JSON:\n{out}") from None
        doc = json.loads(lines[-1])
    if not isinstance(doc, dict):
        raise BenchError(f"{' '.join(cmd)} printed {doc!r}, not an object")
    return doc


def http_get(port: int, path: str, token: str | None = None, timeout: float = 2.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        conn.request("GET", path, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


class Server:
    """`revlens serve` in its own process group, stopped by that group."""

    def __init__(self, python: str, env: dict[str, str], data_dir: Path, port: int, pin: bool) -> None:
        self.port = port
        self.log_path = data_dir.parent / f"{data_dir.name}.server.log"
        self.cmd = [python, "-m", "revlens", "serve", "--host", HOST, "--port", str(port)]
        self.cmd += ["--data-dir", str(data_dir)]
        if pin:
            self.cmd = ["taskset", "-c", "0", *self.cmd]
        self._log = open(self.log_path, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            self.cmd, env=env, stdout=self._log, stderr=subprocess.STDOUT, start_new_session=True
        )

    def wait_healthy(self) -> float:
        t0 = time.monotonic()
        while time.monotonic() - t0 < HEALTH_TIMEOUT_S:
            if self.proc.poll() is not None:
                raise BenchError(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_get(self.port, "/-/health", timeout=1.0)[0] == 200:
                    return time.monotonic() - t0
            time.sleep(0.05)
        raise BenchError(f"server not healthy after {HEALTH_TIMEOUT_S:.0f}s:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """utime+stime of every process in the server's group (all their threads included)."""
        tick = os.sysconf("SC_CLK_TCK")
        total = 0
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == self.proc.pid:  # field 5 (pgrp), counted after "pid (comm)"
                total += int(fields[11]) + int(fields[12])
        return total / tick

    def rss_mb(self) -> float:
        try:
            for line in Path(f"/proc/{self.proc.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def log_tail(self, lines: int = 40) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> int | None:
        if self.proc.poll() is None:
            for sig, wait in ((signal.SIGINT, 10.0), (signal.SIGTERM, 5.0), (signal.SIGKILL, 5.0)):
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, sig)
                try:
                    self.proc.wait(timeout=wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        # Anything the server forked into its group goes too.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        self._log.close()
        return self.proc.returncode


# --------------------------------------------------------------------------------------------- phases


def run_loadgen(python: str, env: dict[str, str], spec: dict[str, Any]) -> dict[str, Any]:
    budget = spec.get("warmup", 0) + spec["duration"] + spec.get("poll_timeout", 0) + 300
    proc = subprocess.run(
        [python, str(LOADGEN)],
        input=json.dumps(spec),
        env=env,
        capture_output=True,
        text=True,
        timeout=budget,
        check=False,
    )
    if proc.stderr.strip():
        print(proc.stderr.rstrip(), file=sys.stderr)
    if proc.returncode != 0:
        raise BenchError(f"load generator exited {proc.returncode}:\n{proc.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(proc.stdout)
    return result


def drain(port: int, token: str, event_id: str | None) -> float | None:
    """Seconds until `event_id` is queryable (None if it never became so within the bound)."""
    if not event_id:
        return None
    t0 = time.monotonic()
    while time.monotonic() - t0 < DRAIN_TIMEOUT_S:
        with contextlib.suppress(OSError, http.client.HTTPException, ValueError):
            status, body = http_get(port, f"/-/deliveries/{event_id}", token)
            if status == 200 and json.loads(body).get("queryable", True) is not False:
                return time.monotonic() - t0
        time.sleep(0.02)
    return None


def measure(server: Server, name: str, fn: Callable[[], dict[str, Any]], port: int, token: str) -> dict[str, Any]:
    print(f"== phase {name} ...", file=sys.stderr, flush=True)
    cpu0, wall0 = server.cpu_seconds(), time.monotonic()
    result = fn()
    cpu1, wall1 = server.cpu_seconds(), time.monotonic()
    # Includes the load generator's start-up and request building (server idle) and any polling tail.
    result["server_group_cpu_s_whole_phase"] = round(cpu1 - cpu0, 3)
    result["phase_wall_s"] = round(wall1 - wall0, 3)
    result["server_rss_mb"] = round(server.rss_mb(), 1)
    result["drain_s"] = drain(port, token, result.get("last_ok_event_id"))
    if server.proc.poll() is not None:
        raise BenchError(f"server died during phase {name}:\n{server.log_tail()}")
    return result


# --------------------------------------------------------------------------------------------- report


def _ms(x: float | None) -> str:
    return "n/a" if x is None else (f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms")


def checks(res: dict[str, Any], args: argparse.Namespace) -> list[tuple[str, str, str, bool | None]]:
    """(label, value, target, passed) rows; passed None = informative only."""
    rows: list[tuple[str, str, str, bool | None]] = []
    ph = res["phases"]
    if "throughput" in ph:
        t = ph["throughput"]
        lat = t["latency_ms"]
        errs = t["non_2xx_in_window"] + sum(t["errors"].values())
        c = t["connections"]
        rows.append(
            (
                f"throughput, {c} conns",
                f"{t['throughput_per_s']:,.0f} /s",
                ">= 3,000 /s",
                t["throughput_per_s"] >= TARGET_THROUGHPUT,
            )
        )
        rows.append((f"  errors (non-2xx + conn), {c} conns", str(errs), "0", errs == 0))
        stored = f"{100 * t.get('stored_type_fraction', 1.0):.0f} %"
        rows.append(("  deliveries of stored types", stored, "-", None))
        for k in ("p50", "p99", "max"):
            rows.append((f"  latency {k}, {c} conns", _ms(lat.get(k)), "-", None))
        rows.append(("  server / client CPU during phase", _cpu(t), "-", None))
        rows.append(("  backlog drain after phase", _s(t["drain_s"]), "-", None))
    if "rate" in ph:
        r = ph["rate"]
        lat = r["latency_ms"]
        errs = r["non_2xx_in_window"] + sum(r["errors"].values())
        rate = f"{r['rate_offered']:,.0f}/s"
        rows.append((f"latency p50 @ {rate}", _ms(lat.get("p50")), "-", None))
        p99_ok = lat.get("p99", 1e9) < TARGET_RATE_P99_MS
        rows.append((f"latency p99 @ {rate}", _ms(lat.get("p99")), "< 50 ms", p99_ok))
        rows.append((f"latency max @ {rate}", _ms(lat.get("max")), "< 1 s", lat.get("max", 1e9) < TARGET_RATE_MAX_MS))
        rows.append((f"  errors @ {rate}", str(errs), "0", errs == 0))
        rows.append((f"  achieved @ {rate}", f"{r['throughput_per_s']:,.0f} /s", "-", None))
        rows.append((f"  client send lag p99 @ {rate}", _ms(r["send_lag_ms"].get("p99")), "-", None))
        rows.append((f"  server / client CPU @ {rate}", _cpu(r), "-", None))
    if "single" in ph:
        s = ph["single"]
        lat = s["latency_ms"]
        errs = s["non_2xx_in_window"] + sum(s["errors"].values())
        rows.append(("single sender p50", _ms(lat.get("p50")), "< 2 ms", lat.get("p50", 1e9) < TARGET_SINGLE_P50_MS))
        rows.append(("  single sender p99", _ms(lat.get("p99")), "-", None))
        rows.append(("  single sender max", _ms(lat.get("max")), "-", None))
        rows.append(("  single sender rate", f"{s['throughput_per_s']:,.0f} /s", "-", None))
        rows.append(("  single sender errors", str(errs), "0", errs == 0))
        rows.append(("  server / client CPU, single sender", _cpu(s), "-", None))
    if "queryable" in ph:
        q = ph["queryable"]["queryable"]
        lag = q["lag_ms"]
        never = q["never_queryable"] + q["unresolved_at_end"]
        rate = f"{ph['queryable']['rate_offered']:,.0f}/s"
        rows.append((f"queryable delay p50 @ {rate}", _ms(lag.get("p50")), "-", None))
        rows.append(
            (
                f"queryable delay p95 @ {rate}",
                _ms(lag.get("p95")),
                "< 1 s",
                lag.get("p95", 1e9) < TARGET_QUERYABLE_P95_MS and never == 0,
            )
        )
        rows.append((f"queryable delay max @ {rate}", _ms(lag.get("max")), "-", None))
        rows.append(("  sampled / never queryable", f"{q['sampled']} / {never}", "never = 0", never == 0))
    return rows


def _cpu(phase: dict[str, Any]) -> str:
    server = phase.get("server_cpu_pct_timed")
    return f"{'?' if server is None else f'{server:.0f}'} / {phase['client_cpu_pct_timed']:.0f} %"


def _s(x: float | None) -> str:
    return "not drained" if x is None else f"{x:.2f} s"


def print_table(rows: list[tuple[str, str, str, bool | None]]) -> None:
    w = max(len(r[0]) for r in rows)
    print(f"\n{'metric':<{w}}  {'value':>14}  {'target':<12}  result")
    print(f"{'-' * w}  {'-' * 14}  {'-' * 12}  ------")
    for label, value, target, ok in rows:
        verdict = "" if ok is None else ("PASS" if ok else "FAIL")
        print(f"{label:<{w}}  {value:>14}  {target:<12}  {verdict}")


# ----------------------------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    # SIGTERM must run the finally block that stops the server.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    data_dir = Path(tempfile.mkdtemp(prefix="revlens-bench-")) / "data"
    data_dir.mkdir()
    env = dict(os.environ)
    src = str(REPO / "src")
    env["PYTHONPATH"] = src + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env["REVLENS_DATA_DIR"] = str(data_dir)
    port = args.port or free_port()
    server: Server | None = None
    res: dict[str, Any] = {
        "benchmark": "ingest",
        "started_utc": stamp,
        "machine": machine_info(),
        "args": {k: v for k, v in vars(args).items() if k != "python"},
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "phases": {},
    }
    try:
        project = cli(
            args.python,
            env,
            "projects",
            "create",
            "bench",
            "--currency",
            "USD",
            "--timezone",
            "UTC",
            "--json",
        )
        secret = "whsec_" + secrets.token_urlsafe(24)
        endpoint = cli(
            args.python,
            env,
            "stripe",
            "add-endpoint",
            "--project",
            str(project["name"]),
            "--signing-secret",
            secret,
            "--json",
        )
        server = Server(args.python, env, data_dir, port, args.pin)
        res["server"] = {"command": server.cmd, "startup_s": round(server.wait_healthy(), 3)}
        token_file = data_dir / "admin_token"
        for _ in range(100):
            if token_file.exists() and token_file.read_text().strip():
                break
            time.sleep(0.05)
        token = token_file.read_text().strip()
        base: dict[str, Any] = {
            "host": HOST,
            "port": port,
            "url_path": endpoint["url_path"],
            "signing_secret": secret,
            "admin_token": token,
            "seed": args.seed,
            "cpu": 1 if args.pin else None,
            "server_pid": server.proc.pid,
            "stored_only": args.stored_only,
        }

        def phase(**spec: Any) -> Callable[[], dict[str, Any]]:
            return lambda: run_loadgen(args.python, env, {**base, **spec})

        # At most ~10 sampled events per second, so the polling stays a small load next to the deliveries.
        q_duration = max(args.duration, args.samples / 10)
        specs: dict[str, Callable[[], dict[str, Any]]] = {
            "single": phase(
                mode="closed",
                connections=1,
                warmup=min(1.0, args.warmup),
                duration=args.single_duration,
                max_rate=5000.0,
            ),
            "rate": phase(mode="open", connections=64, rate=args.rate, warmup=args.warmup, duration=args.duration),
            "queryable": phase(
                mode="open",
                connections=32,
                rate=args.query_rate,
                warmup=0.0,
                duration=q_duration,
                samples=args.samples,
                poll_interval=args.poll_interval,
                poll_timeout=30.0,
            ),
            "throughput": phase(
                mode="closed",
                connections=args.connections,
                warmup=args.warmup,
                duration=args.duration,
                max_rate=args.max_rate,
            ),
        }
        for name in ("single", "rate", "queryable", "throughput"):
            if name in args.phases:
                res["phases"][name] = measure(server, name, specs[name], port, token)
    except (BenchError, subprocess.TimeoutExpired, KeyError, OSError) as exc:
        res["error"] = f"{type(exc).__name__}: {exc}"
        print(f"\nbenchmark failed: {res['error']}", file=sys.stderr)
    finally:
        if server is not None:
            res.setdefault("server", {})["exit_code"] = server.stop()
            res["server"]["log_tail"] = server.log_tail(20)
        if args.keep:
            res["data_dir"] = str(data_dir)
            print(f"kept data folder {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir.parent, ignore_errors=True)
    rows = checks(res, args) if res["phases"] else []
    res["checks"] = [{"label": a, "value": b, "target": c, "pass": d} for a, b, c, d in rows]
    RESULTS_DIR.mkdir(exist_ok=True)
    out = RESULTS_DIR / f"ingest-{stamp}.json"
    out.write_text(json.dumps(res, indent=2, default=str) + "\n")
    if rows:
        print_table(rows)
    print(f"\nresults: {out.relative_to(REPO)}")
    if "error" in res:
        return 2
    failed = [r for r in rows if r[3] is False]
    return 1 if (args.check and failed) else 0


def machine_info() -> dict[str, Any]:
    model = ""
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {
        "nproc": os.cpu_count(),
        "cpu_model": model,
        "python": sys.version.split()[0],
        "kernel": os.uname().release,
    }


if __name__ == "__main__":
    sys.exit(main())
