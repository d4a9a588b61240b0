"""`revlens serve` as a real process on a loopback port, fed signed deliveries over HTTP,
including duplicates, bad signatures and a SIGKILL restart in the middle."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import httpx
import orjson
import pytest

from revlens import malloc
from revlens.demo.generator import DemoConfig, generate_events
from revlens.normalize import SUPPORTED_TYPES
from revlens.webhook.signature import sign

SECRET = "whsec_e2e_0123456789abcdef"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(data_dir: Path, *args: str) -> dict:  # type: ignore[type-arg]
    out = subprocess.run(
        [sys.executable, "-m", "revlens", *args, "--data-dir", str(data_dir), "--json"],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    )
    return orjson.loads(out.stdout)  # type: ignore[no-any-return]


class Server:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log = open(data_dir / "server.log", "ab")  # noqa: SIM115 - closed in stop()
        self.extra_env: dict[str, str] = {}

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "revlens",
                "serve",
                "--port",
                str(self.port),
                "--data-dir",
                str(self.data_dir),
                "--log-level",
                "warning",
            ],
            stdout=subprocess.DEVNULL,
            stderr=self.log,
            start_new_session=True,
            env={**os.environ, **self.extra_env},
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/-/health", timeout=0.5).status_code == 200:
                    return
            except httpx.HTTPError:
                time.sleep(0.05)
        raise AssertionError("server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(30)
        self.log.flush()

    @property
    def token(self) -> str:
        return (self.data_dir / "admin_token").read_text().strip()


@pytest.fixture
def server(tmp_path: Path) -> Iterator[Server]:
    srv = Server(tmp_path)
    yield srv
    srv.stop()
    srv.log.close()


def _post(client: httpx.Client, url: str, body: bytes, secret: str = SECRET) -> int:
    for _ in range(50):  # like Stripe: retry until acknowledged (connection refused while restarting)
        try:
            return client.post(url, content=body, headers={"Stripe-Signature": sign(body, secret)}).status_code
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError("never acknowledged")


def test_serve_end_to_end_with_duplicates_bad_signatures_and_a_crash(server: Server) -> None:
    project = _cli(server.data_dir, "projects", "create", "acme", "--currency", "USD", "--timezone", "UTC")
    assert set(project) == {"id", "name", "api_key", "secret_key", "currency", "timezone"}
    endpoint = _cli(server.data_dir, "stripe", "add-endpoint", "--project", "acme", "--signing-secret", SECRET)
    assert set(endpoint) == {"id", "project", "url_path"}
    url = endpoint["url_path"]
    assert url == f"/webhooks/stripe/{endpoint['id']}"

    events = generate_events(DemoConfig(events=600, seed=3))
    supported = [e for e in events if e["type"] in SUPPORTED_TYPES]
    bodies = [orjson.dumps(e) for e in events]
    server.start()
    half = len(bodies) // 2
    with httpx.Client(base_url=server.url, timeout=10) as client, ThreadPoolExecutor(8) as pool:
        first = list(pool.map(lambda b: _post(client, url, b), bodies[:half]))
        assert set(first) == {200}
        server.kill()  # SIGKILL: no shutdown, no flush
        server.start()
        # Bad signatures are refused and store nothing.
        assert _post(client, url, bodies[0], "whsec_not_the_secret") == 400
        assert client.post(url, content=bodies[1]).status_code == 400
        # Everything again (Stripe retrying what it may not have seen acknowledged), then the rest.
        again = list(pool.map(lambda b: _post(client, url, b), bodies))
        assert set(again) == {200}
        headers = {"Authorization": f"Bearer {server.token}"}
        kept = len({e["id"] for e in supported})
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            status = client.get("/-/status", headers=headers).json()["endpoints"][0]
            if status["stored"] + status["duplicates"] >= kept + sum(1 for e in events[:half] if e in supported):
                break
            time.sleep(0.1)
        assert status["stored"] == kept
        assert status["rejected_signatures"] == 2
        assert status["duplicates"] == sum(1 for e in events[:half] if e in supported)
        # The CLI works against the running server through its admin API.
        cli_status = _cli(server.data_dir, "status")
        assert cli_status["endpoints"][0]["stored"] == kept
    server.stop()
    con = duckdb.connect(str(server.data_dir / "revlens.duckdb"), read_only=True)
    ids = [r[0] for r in con.execute("SELECT insert_id FROM events").fetchall()]
    assert len(ids) == len(set(ids)) == kept
    assert set(ids) == {e["id"] for e in supported}


def test_slow_clients_do_not_hold_up_others(server: Server) -> None:
    """Connections that trickle their body byte by byte, or stop half-way, leave other senders unharmed."""
    import socket as sock

    _cli(server.data_dir, "projects", "create", "acme")
    endpoint = _cli(server.data_dir, "stripe", "add-endpoint", "--project", "acme", "--signing-secret", SECRET)
    server.start()
    slow = []
    for _ in range(20):
        s = sock.create_connection(("127.0.0.1", server.port))
        s.sendall(f"POST {endpoint['url_path']} HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n{{".encode())
        slow.append(s)
    try:
        event = generate_events(DemoConfig(events=5, seed=9))[0]
        body = orjson.dumps(event)
        started = time.monotonic()
        with httpx.Client(base_url=server.url, timeout=5) as client:
            for _ in range(20):
                assert _post(client, endpoint["url_path"], body) == 200
            for s in slow:
                s.sendall(b" ")
            assert client.get("/-/health").status_code == 200
        assert time.monotonic() - started < 5
    finally:
        for s in slow:
            s.close()
    assert server.proc is not None and server.proc.poll() is None


@pytest.mark.skipif(malloc.find_jemalloc() is None, reason="libjemalloc is not installed (.ci/run installs it)")
def test_serve_runs_on_jemalloc_unless_told_otherwise(server: Server) -> None:
    for choice, expected in (("auto", "jemalloc"), ("system", "system")):
        server.extra_env = {"REVLENS_ALLOCATOR": choice}
        server.start()
        assert server.proc is not None
        maps = Path(f"/proc/{server.proc.pid}/maps").read_text()
        assert ("libjemalloc" in maps) == (expected == "jemalloc")
        auth = {"Authorization": f"Bearer {server.token}"}
        metrics = httpx.get(f"{server.url}/metrics", headers=auth, timeout=5).text
        assert f'revlens_allocator_info{{allocator="{expected}"}} 1.0' in metrics
        server.stop()


def test_serve_refuses_an_unknown_allocator(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "revlens", "serve", "--data-dir", str(tmp_path), "--allocator", "tcmalloc"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 1
    assert "setting allocator" in out.stderr and "'auto', 'jemalloc' or 'system'" in out.stderr
    assert not (tmp_path / "revlens.duckdb").exists()
