"""`revlens serve` ingesting signed webhook deliveries in the background, on a throwaway data folder:
the load `bench/queries.py --with-ingest` times its questions under (the issue's targets are "while
ingest is running")."""

from __future__ import annotations

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
import threading
import time
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
sys.path.insert(0, str(REPO / "src"))

from revlens.store.duckdb_store import DuckDBStore  # noqa: E402


class BackgroundIngest:
    """`revlens serve` on its own throwaway data folder, fed signed webhook deliveries by
    bench/_loadgen.py (open loop at `rate`/s, in back-to-back segments) until stopped."""

    SEGMENT_S = 120.0

    def __init__(self, python: str, rate: float, pool: int) -> None:
        self.python, self.rate, self.pool = python, rate, pool
        self.root = Path(tempfile.mkdtemp(prefix="revlens-bench-ingest-"))
        self.data = self.root / "data"
        self.env = dict(os.environ)
        self.env["PYTHONPATH"] = str(REPO / "src") + (
            os.pathsep + self.env["PYTHONPATH"] if self.env.get("PYTHONPATH") else ""
        )
        self.env["REVLENS_DATA_DIR"] = str(self.data)
        self.server: subprocess.Popen[bytes] | None = None
        self.loadgen: subprocess.Popen[str] | None = None
        self.segments: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._marks: list[tuple[float, int, float]] = []
        self.started: float | None = None
        self.seconds = 0.0
        self.events_stored = 0

    def _cli(self, *cli_args: str) -> dict[str, Any]:
        proc = subprocess.run(
            [self.python, "-m", "revlens", *cli_args],
            env=self.env,
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        out = proc.stdout.strip()
        doc: dict[str, Any] = json.loads(out[out.index("{") :])
        return doc

    def start(self) -> None:
        self.data.mkdir(parents=True)
        project = self._cli("projects", "create", "ingest", "--currency", "USD", "--timezone", "UTC", "--json")
        secret = "whsec_" + secrets.token_urlsafe(24)
        endpoint = self._cli(
            "stripe", "add-endpoint", "--project", str(project["name"]), "--signing-secret", secret, "--json"
        )
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = int(s.getsockname()[1])
        self.log = open(self.root / "server.log", "wb")  # noqa: SIM115 - closed in stop()
        self.server = subprocess.Popen(
            [
                self.python,
                "-m",
                "revlens",
                "serve",
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--data-dir",
                str(self.data),
            ],
            env=self.env,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while True:
            if self.server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"revlens serve did not start; see {self.root / 'server.log'}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
                conn.request("GET", "/-/health")
                if conn.getresponse().status == 200:
                    break
            time.sleep(0.1)
        self.spec = {
            "mode": "open",
            "host": "127.0.0.1",
            "port": port,
            "url_path": endpoint["url_path"],
            "signing_secret": secret,
            "connections": 16,
            "rate": self.rate,
            "warmup": 0.0,
            "duration": self.SEGMENT_S,
            "pool": self.pool,
            "samples": 0,
            "server_pid": self.server.pid,
            "stored_only": True,
        }
        self.started = time.monotonic()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        print(
            f"ingest: revlens serve on 127.0.0.1:{port} ({self.data}), {self.rate:.0f} deliveries/s offered", flush=True
        )

    def _loop(self) -> None:
        while not self._stop.is_set():
            self.loadgen = subprocess.Popen(
                [self.python, str(BENCH / "_loadgen.py")],
                env=self.env,
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.DEVNULL,
                text=True,
                start_new_session=True,
            )
            out, _ = self.loadgen.communicate(json.dumps(self.spec))
            with contextlib.suppress(ValueError):
                r = json.loads(out)
                self.segments.append(
                    {
                        k: r.get(k)
                        for k in ("ok_in_window", "throughput_per_s", "non_2xx_total", "errors", "server_cpu_pct_timed")
                    }
                )

    def stored(self) -> int:
        """Events the server has stored so far (its status route is not needed: count the log)."""
        return sum(int(s.get("ok_in_window") or 0) for s in self.segments)

    def server_cpu(self) -> float:
        if self.server is None:
            return 0.0
        try:
            fields = Path(f"/proc/{self.server.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return 0.0
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def mark(self) -> dict[str, Any] | None:
        """Called at the start and end of a size's timings: the server CPU share in between."""
        now = (time.monotonic(), len(self.segments), self.server_cpu())
        self._marks.append(now)
        if len(self._marks) < 2:
            return None
        (t0, s0, c0), (t1, s1, c1) = self._marks[-2], self._marks[-1]
        return {
            "seconds": round(t1 - t0, 1),
            "server_cpu_pct_of_one_core": round(100 * (c1 - c0) / max(t1 - t0, 1e-9), 1),
            "loadgen_segments_finished": self.segments[s0:s1],
        }

    def stop(self) -> None:
        self._stop.set()
        for proc in (self.loadgen, self.server):
            if proc is not None and proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGINT if proc is self.server else signal.SIGTERM)
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait(timeout=5)
        if self._thread is not None:
            self._thread.join(timeout=10)
        if hasattr(self, "log"):
            self.log.close()
        with contextlib.suppress(Exception):
            store = DuckDBStore(self.data, read_only=True)
            self.events_stored = store.event_count()
            store.close()
        if self.started is not None:
            self.seconds = time.monotonic() - self.started
        shutil.rmtree(self.root, ignore_errors=True)
