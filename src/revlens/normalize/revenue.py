"""The revenue policy: which events carry `$revenue`, with what sign, in which currency.

- `payment_intent.succeeded` is the purchase: `$revenue` = `amount_received` in major units.
- `charge.refunded` is the refund, once per refund: `$revenue` = -(`amount_refunded` -
  `previous_attributes.amount_refunded`), i.e. only the newly refunded part, `$revenueType` "refund".
- Every other event keeps its raw Stripe amounts (minor units) as properties and has no `$revenue`,
  so a payment is never counted twice (an invoice, its PaymentIntent and its Charge all describe it).

`$revenue` is in the project's reporting currency, converted at the rate of the event's local date;
`original_revenue`, `original_currency`, `fx_rate` and `fx_date` keep the trail back to Stripe.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from typing import Any

from revlens.money import CurrencyError, from_minor_units, normalize_currency
from revlens.normalize.fx import RateTable


@dataclass(frozen=True, slots=True)
class Revenue:
    """Revenue of one event: `amount` in the reporting currency, or None when no rate exists yet."""

    amount: Decimal | None
    original_amount: Decimal
    original_currency: str
    revenue_type: str
    rate: Decimal | None
    rate_date: date | None

    @property
    def fx_missing(self) -> bool:
        return self.amount is None


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def purchase_amount(obj: Mapping[str, Any]) -> int | None:
    """Minor units collected by a succeeded PaymentIntent."""
    return _int(obj.get("amount_received"))


def refund_delta(obj: Mapping[str, Any], previous: Mapping[str, Any]) -> int | None:
    """Minor units newly refunded by a `charge.refunded` event.

    Example: a 50.00 charge refunded 20.00 then 30.00 sends two events with `amount_refunded`
    2000 (previous 0) and 5000 (previous 2000): deltas 2000 and 3000, never 5000 twice.
    """
    total = _int(obj.get("amount_refunded"))
    if total is None:
        return None
    before = _int(previous.get("amount_refunded")) or 0
    return total - before


def revenue_of(
    event_type: str,
    obj: Mapping[str, Any],
    previous: Mapping[str, Any],
    reporting_currency: str,
    day: date,
    rates: RateTable,
) -> Revenue | None:
    """The revenue an event carries under the policy above, or None."""
    if event_type == "payment_intent.succeeded":
        minor, kind, sign = purchase_amount(obj), "purchase", 1
    elif event_type == "charge.refunded":
        minor, kind, sign = refund_delta(obj, previous), "refund", -1
    else:
        return None
    if minor is None or minor == 0:
        return None
    try:
        currency = normalize_currency(obj.get("currency"))  # type: ignore[arg-type]
    except CurrencyError:
        return None
    original = sign * from_minor_units(minor, currency)
    conversion = rates.convert(original, currency, reporting_currency, day)
    if conversion is None:
        return Revenue(None, original, currency, kind, None, None)
    return Revenue(conversion.amount, original, currency, kind, conversion.rate, conversion.rate_date)
