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

SCALARS = (str, int, float, bool)


def flatten(
    obj: Mapping[str, Any], prefix: str = "", depth: int = 0, out: dict[str, Any] | None = None
) -> dict[str, Any]:
    """Flatten nested dicts with dots; keep scalars and lists of scalars; drop nulls."""
    result: dict[str, Any] = {} if out is None else out
    for key, value in obj.items():
        if value is None:
            continue
        kind = type(value)
        if kind is str:
            result[prefix + key] = value if len(value) <= MAX_STRING else value[:MAX_STRING]
        elif kind is dict:
            if depth + 1 < MAX_DEPTH:
                flatten(value, f"{prefix}{key}.", depth + 1, result)
        elif kind is list:
            if value and all(type(v) in SCALARS for v in value):
                result[prefix + key] = [v[:MAX_STRING] if type(v) is str else v for v in value[:100]]
        elif kind in SCALARS:
            result[prefix + key] = value
        if len(result) >= MAX_PROPERTIES:
            break
    return result
