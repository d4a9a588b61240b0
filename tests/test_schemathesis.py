"""Schemathesis against the OpenAPI description of every JSON route, on a real `revlens serve`:
whatever it generates (bodies, query strings, path parameters), the server never answers 500."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from test_end_to_end import Server, _cli

RUN: Counter[str] = Counter()


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, dict[str, str]]]:
    data_dir = Path(tmp_path_factory.mktemp("fuzz"))
    project = _cli(data_dir, "projects", "create", "fuzz")
    _cli(data_dir, "stripe", "add-endpoint", "--project", "fuzz", "--signing-secret", "whsec_fuzz_0123456789")
    server = Server(data_dir)
    server.extra_env = {"REVLENS_AUTH_FAILURES_PER_MINUTE": "1000000"}
    server.start()
    try:
        yield server, project
    finally:
        server.stop()
        server.log.close()


def test_no_route_answers_500(served: tuple[Server, dict[str, str]]) -> None:
    server, project = served
    api = schemathesis.openapi.from_url(f"{server.url}/-/openapi.json")
    basic = httpx.BasicAuth(project["api_key"], project["secret_key"])._auth_header
    for result in api.get_all_operations():
        operation = result.ok()

        @given(case=operation.as_strategy())
        @settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def check(case) -> None:  # type: ignore[no-untyped-def]
            auth = basic if case.path.startswith("/api/") else f"Bearer {server.token}"
            response = case.call(base_url=server.url, headers={"Authorization": auth}, timeout=30)
            RUN[f"{case.method} {case.path}"] += 1
            case.validate_response(response, checks=(not_a_server_error,))

        check()
    total = sum(RUN.values())
    sys.stderr.write(f"\nschemathesis: {total} cases over {len(RUN)} operations\n")
    assert len(RUN) >= 20 and total >= 200
