"""Shared helpers for tests that run the app in-process (Starlette's TestClient runs its lifespan)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from starlette.testclient import TestClient

from revlens.api.app import create_app
from revlens.settings import Settings

SECRET = "whsec_test_0123456789abcdef"
TOKEN = "test-admin-token"
T = TypeVar("T")


@contextmanager
def app_client(data_dir: Path, **settings: Any) -> Iterator[TestClient]:
    app = create_app(Settings(data_dir=data_dir, admin_token=TOKEN, **settings))
    with TestClient(app, raise_server_exceptions=False) as client:
        client.headers["Authorization"] = f"Bearer {TOKEN}"
        yield client


def setup_project(
    client: TestClient, name: str = "acme", currency: str = "USD", tz: str = "UTC"
) -> tuple[dict[str, Any], str]:
    project = client.post("/-/projects", json={"name": name, "currency": currency, "timezone": tz}).json()
    endpoint = client.post("/-/endpoints", json={"project": name, "signing_secrets": [SECRET]}).json()
    return project, endpoint["url_path"]


def wait_for(check: Callable[[], T | None], timeout: float = 10.0) -> T:
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.02)


def stored(client: TestClient, event_id: str) -> dict[str, Any] | None:
    response = client.get(f"/-/deliveries/{event_id}")
    return response.json() if response.status_code == 200 else None
