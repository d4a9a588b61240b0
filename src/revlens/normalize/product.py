"""The `product` property: what was bought, derived the same way for every revenue event.

Invoices (and credit notes) name products on their lines: the product of the line with the largest
amount wins, with every line's product listed in `products`. Objects without lines fall back to their
own `description`. A line without `price.product` falls back to the line's description.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def _line_product(line: Mapping[str, Any]) -> str | None:
    price = line.get("price")
    if isinstance(price, Mapping):
        product = price.get("product")
        if isinstance(product, Mapping):
            product = product.get("id")
        if isinstance(product, str) and product:
            return product
    description = line.get("description")
    return description if isinstance(description, str) and description else None


def products_of(obj: Mapping[str, Any]) -> tuple[str | None, list[str]]:
    """(main product, all products) of a Stripe object."""
    lines = obj.get("lines")
    data = lines.get("data") if isinstance(lines, Mapping) else None
    if isinstance(data, list) and data:
        best: tuple[int, str] | None = None
        names: list[str] = []
        for line in data:
            if not isinstance(line, Mapping):
                continue
            name = _line_product(line)
            if name is None:
                continue
            if name not in names:
                names.append(name)
            amount = line.get("amount")
            weight = amount if isinstance(amount, int) and not isinstance(amount, bool) else 0
            if best is None or weight > best[0]:
                best = (weight, name)
        if best is not None:
            return best[1], names
    description = obj.get("description")
    if isinstance(description, str) and description:
        return description, [description]
    return None, []
