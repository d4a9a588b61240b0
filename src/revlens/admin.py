"""Admin operations, one implementation used by the CLI (on the data folder) and the admin API.

`LocalAdmin` works on an open store; inside `revlens serve` it also keeps the webhook route and
the loader current. `RemoteAdmin` speaks the admin HTTP API of a running server with the same
methods, so every CLI command works whether or not a server holds the data folder.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any, Protocol
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx

from revlens.ingest.loader import Loader, reconvert, reprocess
from revlens.money import CurrencyError, normalize_currency
from revlens.store.duckdb_store import DuckDBStore, StoreError

STRIPE_SETUP_STEPS = (
    "In the Stripe Dashboard open Developers > Event destinations (Webhooks) and choose Add endpoint.",
    "Endpoint URL: your public revlens address followed by {url_path}.",
    "API version: 2024-06-20 (revlens parks events of other versions instead of normalizing them).",
    "Select the events: {events}.",
    "Copy the endpoint's signing secret (whsec_...) and give it to `revlens stripe add-endpoint --signing-secret`.",
)


class AdminError(Exception):
    """An admin request that cannot be done; `status` is the HTTP status the API answers with."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


class Admin(Protocol):
    def create_project(self, name: str, currency: str, timezone: str) -> dict[str, Any]: ...
    def list_projects(self) -> list[dict[str, Any]]: ...
    def add_endpoint(
        self, project: str, signing_secrets: list[str], account: str | None, description: str | None
    ) -> dict[str, Any]: ...
    def list_endpoints(self, project: str | None) -> list[dict[str, Any]]: ...
    def status(self, project: str | None) -> dict[str, Any]: ...
    def reprocess(self) -> dict[str, Any]: ...
    def delivery(self, event_id: str) -> dict[str, Any] | None: ...
    def update_project(self, project: str, currency: str | None, timezone: str | None) -> dict[str, Any]: ...
    def import_rates(self, base: str, rows: list[tuple[date, str, Decimal]], source: str) -> dict[str, Any]: ...
    def query(self, kind: str, project: str, params: dict[str, str]) -> dict[str, Any]: ...


def check_project_settings(name: str, currency: str, timezone: str) -> str:
    if not name or len(name) > 100 or not all(c.isalnum() or c in "-_." for c in name):
        raise AdminError("project name must be 1-100 letters, digits, '-', '_' or '.'")
    try:
        code = normalize_currency(currency)
    except CurrencyError as exc:
        raise AdminError(str(exc)) from None
    try:
        ZoneInfo(timezone)
    except (ZoneInfoNotFoundError, ValueError):
        raise AdminError(f"unknown time zone {timezone!r} (use an IANA name such as Europe/Paris)") from None
    return code


def check_signing_secret(secret: str) -> None:
    if not secret.startswith("whsec_") or len(secret) < 10 or len(secret) > 200:
        raise AdminError("a Stripe signing secret looks like whsec_... (Developers > Webhooks > your endpoint)")


class LocalAdmin:
    """Admin operations on an open store (and, inside a server, its live parts)."""

    def __init__(
        self,
        store: DuckDBStore,
        log_dir: Path,
        loader: Loader | None = None,
        on_endpoints_changed: Callable[[], None] | None = None,
    ) -> None:
        self.store = store
        self.log_dir = log_dir
        self.loader = loader
        self.on_endpoints_changed = on_endpoints_changed

    def _changed(self) -> None:
        if self.loader is not None:
            self.loader.invalidate()
        if self.on_endpoints_changed is not None:
            self.on_endpoints_changed()

    def create_project(self, name: str, currency: str, timezone: str) -> dict[str, Any]:
        code = check_project_settings(name, currency, timezone)
        try:
            project, secret = self.store.create_project(name, code, timezone)
        except StoreError as exc:
            raise AdminError(str(exc), 409) from None
        self._changed()
        return {
            "id": project.id,
            "name": project.name,
            "api_key": project.api_key,
            "secret_key": secret,
            "currency": project.currency,
            "timezone": project.timezone,
        }

    def list_projects(self) -> list[dict[str, Any]]:
        return [p.public() for p in self.store.projects()]

    def add_endpoint(
        self, project: str, signing_secrets: list[str], account: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        if not signing_secrets:
            raise AdminError("at least one --signing-secret is needed")
        for secret in signing_secrets:
            check_signing_secret(secret)
        try:
            endpoint = self.store.add_endpoint(project, signing_secrets, account, description)
        except StoreError as exc:
            raise AdminError(str(exc), 404) from None
        self._changed()
        return {**endpoint.public(), "setup": setup_steps(endpoint.url_path)}

    def list_endpoints(self, project: str | None = None) -> list[dict[str, Any]]:
        try:
            return [e.public() for e in self.store.endpoints(project)]
        except StoreError as exc:
            raise AdminError(str(exc), 404) from None

    def status(self, project: str | None = None) -> dict[str, Any]:
        pid = None
        if project is not None:
            try:
                pid = self.store.project(project).pid
            except StoreError as exc:
                raise AdminError(str(exc), 404) from None
        endpoints = self.store.status(pid)
        if self.loader is not None:
            pending = self.loader.counters.pending()
            for item in endpoints:
                extra = pending.get(item["endpoint"], {})
                item["ignored"] += extra.get("ignored", 0)
                item["rejected_signatures"] += extra.get("rejected", 0)
                item["invalid"] += extra.get("invalid", 0)
                item["received"] += sum(extra.values())
        result: dict[str, Any] = {"endpoints": endpoints}
        if self.loader is not None:
            result["loader"] = {
                "loaded_position": self.loader.loaded_position,
                "backlog_batches": self.loader.backlog(),
                "last_error": self.loader.last_error,
            }
            result["store_memory_bytes"] = self.store.memory()
        return result

    def reprocess(self) -> dict[str, Any]:
        if self.loader is not None:
            return self.loader.call(lambda batcher, upto: reprocess(self.store, self.log_dir, batcher, upto)).result()
        return reprocess(self.store, self.log_dir)

    def update_project(self, project: str, currency: str | None, timezone: str | None) -> dict[str, Any]:
        try:
            current = self.store.project(project)
        except StoreError as exc:
            raise AdminError(str(exc), 404) from None
        check_project_settings(current.name, currency or current.currency, timezone or current.timezone)
        updated = self.store.update_project(project, currency, timezone)
        self._changed()
        return {**updated.public(), "note": "run `revlens reprocess` to apply the change to stored events"}

    def import_rates(self, base: str, rows: list[tuple[date, str, Decimal]], source: str) -> dict[str, Any]:
        """Store daily rates, then convert the events that were waiting for them."""
        try:
            count = self.store.put_rates(base, rows, source)
        except (StoreError, CurrencyError) as exc:
            raise AdminError(str(exc), 409) from None
        if self.loader is not None:
            self.loader.invalidate()
            converted = self.loader.call(lambda batcher, _: reconvert(self.store, self.log_dir, batcher)).result()
        else:
            converted = reconvert(self.store, self.log_dir)
        currencies = sorted({r[1] for r in rows})
        days = sorted({r[0] for r in rows})
        return {
            "base": base,
            "rates": count,
            "currencies": currencies,
            "first_day": days[0].isoformat() if days else None,
            "last_day": days[-1].isoformat() if days else None,
            "reconverted": converted,
        }

    def query(self, kind: str, project: str, params: dict[str, str]) -> dict[str, Any]:
        return run_query(self.store, kind, project, params)

    def delivery(self, event_id: str) -> dict[str, Any] | None:
        found = self.store.delivery(event_id)
        if found is None:
            return None
        found["queryable"] = found["status"] == "stored"
        for key in ("received_at", "created"):
            if found.get(key) is not None:
                found[key] = found[key].isoformat()
        return found


QUERY_KINDS = ("segmentation", "retention", "ltv", "cohort")


def run_query(store: DuckDBStore, kind: str, project_ref: str, params: dict[str, str]) -> dict[str, Any]:
    """Run an analytics query for a project, with Amplitude-style parameters; returns `{"data": ...}`.

    `cohort` takes `definition` (a JSON condition, see docs/api.md) and answers size and members.
    """
    import orjson

    from revlens.api.queries import context
    from revlens.query import cohorts, ltv, retention, segmentation
    from revlens.query import params as parse
    from revlens.query.cohort_model import CohortNode
    from revlens.query.models import QueryError

    try:
        project = store.project(project_ref)
    except StoreError as exc:
        raise AdminError(str(exc), 404) from None
    ctx = context(store, project)
    try:
        if kind == "segmentation":
            return {"data": segmentation.run(parse.segmentation(params), ctx)}
        if kind == "retention":
            return {"data": retention.run(parse.retention(params), ctx)}
        if kind == "ltv":
            return {"data": ltv.run(parse.ltv(params), ctx)}
        if kind == "cohort":
            try:
                node = CohortNode.model_validate(orjson.loads(params.get("definition", "null")))
            except (orjson.JSONDecodeError, ValueError) as exc:
                raise AdminError(f"invalid cohort definition: {exc}") from None
            found = cohorts.members(node, ctx)
            return {"data": {"size": len(found), "members": [user for _, user in found]}}
    except QueryError as exc:
        raise AdminError(str(exc)) from None
    except ValueError as exc:
        raise AdminError(f"invalid query: {exc}") from None
    raise AdminError(f"unknown query kind {kind!r} (one of {', '.join(QUERY_KINDS)})")


def setup_steps(url_path: str) -> list[str]:
    from revlens.normalize.events import SUPPORTED_TYPES

    events = ", ".join(sorted(SUPPORTED_TYPES))
    return [step.format(url_path=url_path, events=events) for step in STRIPE_SETUP_STEPS]


class RemoteAdmin:
    """The same operations over a running server's admin API."""

    def __init__(self, base_url: str, token: str) -> None:
        self.client = httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}, timeout=600)

    def _call(self, method: str, path: str, body: Any = None, params: dict[str, Any] | None = None) -> Any:
        try:
            response = self.client.request(method, path, json=body, params=params)
        except httpx.HTTPError as exc:
            raise AdminError(f"cannot reach the running server: {exc}", 503) from None
        try:
            data = response.json()
        except json.JSONDecodeError:
            raise AdminError(f"server answered {response.status_code}", response.status_code) from None
        if response.status_code >= 400:
            raise AdminError(str(data.get("error", data)), response.status_code)
        return data

    def create_project(self, name: str, currency: str, timezone: str) -> dict[str, Any]:
        result: dict[str, Any] = self._call(
            "POST", "/-/projects", {"name": name, "currency": currency, "timezone": timezone}
        )
        return result

    def list_projects(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._call("GET", "/-/projects")["projects"]
        return result

    def add_endpoint(
        self, project: str, signing_secrets: list[str], account: str | None = None, description: str | None = None
    ) -> dict[str, Any]:
        body = {"project": project, "signing_secrets": signing_secrets, "account": account, "description": description}
        result: dict[str, Any] = self._call("POST", "/-/endpoints", body)
        return result

    def list_endpoints(self, project: str | None = None) -> list[dict[str, Any]]:
        params = {"project": project} if project else None
        result: list[dict[str, Any]] = self._call("GET", "/-/endpoints", params=params)["endpoints"]
        return result

    def status(self, project: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = self._call("GET", "/-/status", params={"project": project} if project else None)
        return result

    def reprocess(self) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/-/reprocess")
        return result

    def delivery(self, event_id: str) -> dict[str, Any] | None:
        try:
            result: dict[str, Any] = self._call("GET", f"/-/deliveries/{event_id}")
        except AdminError as exc:
            if exc.status == 404:
                return None
            raise
        return result

    def update_project(self, project: str, currency: str | None, timezone: str | None) -> dict[str, Any]:
        body = {"currency": currency, "timezone": timezone}
        result: dict[str, Any] = self._call("PATCH", f"/-/projects/{project}", body)
        return result

    def import_rates(self, base: str, rows: list[tuple[date, str, Decimal]], source: str) -> dict[str, Any]:
        body = {
            "base": base,
            "source": source,
            "rates": [{"date": d.isoformat(), "currency": c, "rate": str(r)} for d, c, r in rows],
        }
        result: dict[str, Any] = self._call("POST", "/-/rates", body)
        return result

    def query(self, kind: str, project: str, params: dict[str, str]) -> dict[str, Any]:
        result: dict[str, Any] = self._call("POST", "/-/query", {"kind": kind, "project": project, "params": params})
        return result
