"""Event properties: a Stripe object flattened into scalar properties under their Stripe names.

`{"customer_details": {"email": "a@b.c"}, "metadata": {"plan": "pro"}}` becomes
`{"customer_details.email": "a@b.c", "metadata.plan": "pro"}`. Nulls are dropped (a missing property
and a null one read the same in every chart), lists of scalars are kept as lists, and lists of
objects (invoice lines, refunds) are left out: they are summarised by derived properties instead.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

# Bounds for hostile or unusual payloads: Stripe objects are far shallower and smaller than this.
MAX_DEPTH = 8
MAX_PROPERTIES = 1000
# Amplitude truncates string properties at 1024 characters; so do we.
MAX_STRING = 1024

Scalar = str | int | float | bool


def _clip(value: Any) -> Any:
    if isinstance(value, str) and len(value) > MAX_STRING:
        return value[:MAX_STRING]
    return value


def flatten(
    obj: Mapping[str, Any], prefix: str = "", depth: int = 0, out: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Flatten nested dicts with dots; keep scalars and lists of scalars; drop nulls."""
    result: dict[str, Any] = {} if out is None else out
    for key, value in obj.items():
        if len(result) >= MAX_PROPERTIES:
            break
        name = f"{prefix}{key}"
        if value is None:
            continue
        if isinstance(value, dict):
            if depth + 1 < MAX_DEPTH:
                flatten(value, f"{name}.", depth + 1, result)
        elif isinstance(value, list):
            if value and all(isinstance(v, str | int | float | bool) for v in value):
                result[name] = [_clip(v) for v in value[:100]]
        else:
            result[name] = _clip(value)
    return result
