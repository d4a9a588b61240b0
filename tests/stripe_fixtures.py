"""Stripe's own sample objects (shared/fixtures/stripe), wrapped in event envelopes and signed."""

from __future__ import annotations

import copy
import itertools
import json
import os
from functools import cache
from pathlib import Path
from typing import Any

import orjson

from revlens.webhook.signature import sign

SHARED = Path(os.environ.get("REVLENS_SHARED", Path(__file__).resolve().parents[2] / "shared"))
OPENAPI = SHARED / "fixtures" / "stripe" / "openapi-v1267"

_ids = itertools.count(1)


@cache
def _load(name: str) -> dict[str, Any]:
    path = OPENAPI / f"{name}.json"
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: tests need shared/fixtures/stripe (set REVLENS_SHARED)")
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def stripe_object(name: str, **changes: Any) -> dict[str, Any]:
    """A fresh copy of a Stripe sample object (charge, invoice, ...) with top-level changes applied."""
    obj = copy.deepcopy(_load(name))
    obj.update(changes)
    return obj


# Which sample object each supported event type carries.
OBJECT_OF = {
    "charge": "charge",
    "invoice": "invoice",
    "payment_intent": "payment_intent",
    "checkout.session": "checkout.session",
    "refund": "refund",
    "credit_note": "credit_note",
    "customer.subscription": "subscription",
    "charge.dispute": "dispute",
    "charge.refund": "refund",
}


def object_for_type(event_type: str) -> dict[str, Any]:
    prefix = event_type.rsplit(".", 1)[0]
    name = OBJECT_OF.get(prefix)
    if name is None:  # application fees, balance, issuing: use the generic fixture file
        fixtures = _load("fixtures3")["resources"]
        key = {
            "application_fee": "application_fee",
            "application_fee.refund": "fee_refund",
            "balance": "balance",
            "issuing_authorization": "issuing.authorization",
            "issuing_transaction": "issuing.transaction",
        }[prefix]
        return copy.deepcopy(fixtures[key])
    return stripe_object(name)


def envelope(
    event_type: str,
    obj: dict[str, Any],
    *,
    event_id: str | None = None,
    created: int = 1_760_000_000,
    api_version: str | None = "2024-06-20",
    previous: dict[str, Any] | None = None,
    account: str | None = None,
) -> dict[str, Any]:
    """A Stripe event envelope shaped like shared/fixtures/stripe/openapi-v1267/event.json."""
    data: dict[str, Any] = {"object": obj}
    if previous is not None:
        data["previous_attributes"] = previous
    event = {
        "id": event_id or f"evt_test{next(_ids):020d}",
        "object": "event",
        "api_version": api_version,
        "created": created,
        "data": data,
        "livemode": False,
        "pending_webhooks": 1,
        "request": {"id": None, "idempotency_key": None},
        "type": event_type,
    }
    if account is not None:
        event["account"] = account
    return event


def signed(event: dict[str, Any], secret: str, timestamp: int | None = None) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a delivery, signed as Stripe signs it."""
    body = orjson.dumps(event)
    return body, {"Stripe-Signature": sign(body, secret, timestamp), "Content-Type": "application/json"}
