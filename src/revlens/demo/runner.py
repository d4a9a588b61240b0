"""`revlens demo`: a demo project fed through the real webhook path, then served.

The deliveries are signed with the endpoint's secret and POSTed over HTTP to the running server,
exactly as Stripe would send them, so the demo exercises verification, the durable log, the loader
and deduplication (the generator repeats some deliveries as Stripe's retries do).
"""

from __future__ import annotations

import secrets as token
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
from rich.console import Console
from rich.progress import Progress

from revlens.demo.generator import DemoConfig, generate_deliveries
from revlens.server import server_for
from revlens.settings import Settings
from revlens.store.duckdb_store import DuckDBStore, NotFoundError
from revlens.webhook.signature import sign

DEMO_PROJECT = "demo"
SENDERS = 8


def prepare(settings: Settings) -> tuple[str, str]:
    """The demo project's endpoint id and signing secret, created on first use."""
    store = DuckDBStore(settings.data_dir)
    try:
        try:
            store.project(DEMO_PROJECT)
        except NotFoundError:
            store.create_project(DEMO_PROJECT, "USD", "UTC")
        found = store.endpoints(DEMO_PROJECT)
        if found:
            return found[0].id, found[0].secrets[0]
        endpoint = store.add_endpoint(DEMO_PROJECT, [f"whsec_demo{token.token_hex(16)}"], description="revlens demo")
        return endpoint.id, endpoint.secrets[0]
    finally:
        store.close()


def send_all(
    base_url: str, url_path: str, secret: str, deliveries: list[dict[str, Any]], console: Console
) -> dict[int, int]:
    """POST every delivery, signed, with a few concurrent senders; returns counts by HTTP status."""
    counts: dict[int, int] = {}
    lock = threading.Lock()
    local = threading.local()

    def post(event: dict[str, Any]) -> int:
        client = getattr(local, "client", None)
        if client is None:
            client = local.client = httpx.Client(base_url=base_url, timeout=30)
        body = orjson.dumps(event)
        for _ in range(5):  # retry like Stripe when the server asks (503) or the connection drops
            try:
                response = client.post(url_path, content=body, headers={"Stripe-Signature": sign(body, secret)})
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if response.status_code != 503:
                return response.status_code
            time.sleep(0.2)
        return 503

    with Progress(console=console, transient=True) as progress, ThreadPoolExecutor(SENDERS) as pool:
        task = progress.add_task("Sending signed deliveries", total=len(deliveries))
        for status in pool.map(post, deliveries):
            with lock:
                counts[status] = counts.get(status, 0) + 1
            progress.advance(task)
    return counts


def wait_healthy(base_url: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{base_url}/-/health", timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"server at {base_url} did not become ready")


def run_demo(settings: Settings, events: int, seed: int, serve_after: bool, console: Console) -> None:
    endpoint_id, secret = prepare(settings)
    deliveries = generate_deliveries(DemoConfig(events=events, seed=seed))
    server = server_for(settings)
    base_url = f"http://{settings.host}:{settings.port}"
    url_path = f"/webhooks/stripe/{endpoint_id}"
    outcome: dict[str, Any] = {}

    def feed() -> None:
        try:
            wait_healthy(base_url)
            counts = send_all(base_url, url_path, secret, deliveries, console)
            outcome["counts"] = counts
            console.print(
                f"Sent {len(deliveries)} deliveries to {url_path}: "
                + ", ".join(f"{n} x HTTP {status}" for status, n in sorted(counts.items()))
            )
            if serve_after:
                console.print(
                    f"Serving on {base_url} (Ctrl-C to stop). Try: revlens status --data-dir {settings.data_dir}"
                )
        except Exception as exc:  # reported, then the server stops
            outcome["error"] = exc
            server.should_exit = True
            return
        if not serve_after:
            time.sleep(0.5)  # let the loader commit the last batch before shutdown drains it
            server.should_exit = True

    sender = threading.Thread(target=feed, name="revlens-demo-sender", daemon=True)
    sender.start()
    server.run()
    sender.join(timeout=5)
    if "error" in outcome:
        raise RuntimeError(f"demo failed: {outcome['error']}")
