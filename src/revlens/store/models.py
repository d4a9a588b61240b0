"""Records the store reads and writes, independent of the backend."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from revlens.normalize import AnalyticsEvent, Link

# Delivery outcomes kept per Stripe event id.
STORED = "stored"
PARKED = "parked"
FAILED = "failed"
IGNORED = "ignored"


@dataclass(frozen=True, slots=True)
class Project:
    pid: int
    id: str
    name: str
    api_key: str
    secret_hash: str
    currency: str
    timezone: str
    created_at: datetime

    def public(self) -> dict[str, Any]:
        """What may be shown about a project: never the secret key or its hash."""
        return {
            "id": self.id,
            "name": self.name,
            "api_key": self.api_key,
            "currency": self.currency,
            "timezone": self.timezone,
            "created_at": self.created_at.isoformat(),
        }


@dataclass(frozen=True, slots=True)
class Endpoint:
    id: str
    pid: int
    project: str
    secrets: tuple[str, ...]
    account: str | None
    description: str | None
    created_at: datetime

    @property
    def url_path(self) -> str:
        return f"/webhooks/stripe/{self.id}"

    def public(self) -> dict[str, Any]:
        """What may be shown about an endpoint: never its signing secrets."""
        return {
            "id": self.id,
            "project": self.project,
            "url_path": self.url_path,
            "account": self.account,
            "description": self.description,
            "signing_secrets": len(self.secrets),
            "created_at": self.created_at.isoformat(),
        }


@dataclass(slots=True)
class Delivery:
    """One Stripe event as received (first delivery wins; later ones only count as attempts)."""

    pid: int
    event_id: str
    endpoint_id: str
    stripe_type: str
    api_version: str | None
    account: str | None
    status: str
    log_position: int
    received_at: datetime
    created: datetime | None
    error: str | None = None


@dataclass(slots=True)
class LoadBatch:
    """Everything one loader step writes, in one transaction, up to log position `end`."""

    end: int
    deliveries: list[Delivery] = field(default_factory=list)
    events: list[tuple[int, str, AnalyticsEvent]] = field(default_factory=list)  # (pid, endpoint, event)
    links: list[tuple[int, Link]] = field(default_factory=list)
    repeats: dict[tuple[int, str], int] = field(default_factory=dict)  # (pid, event id) -> extra deliveries
    counters: dict[str, dict[str, int]] = field(default_factory=dict)  # endpoint -> counter -> delta
    last_delivery: dict[str, datetime] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LoadResult:
    stored: int
    duplicates: int
    parked: int
    failed: int


# Per-endpoint counters of deliveries that leave nothing in the store but a count.
COUNTERS = ("ignored", "rejected", "invalid")
