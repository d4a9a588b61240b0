"""Exchange rates: a daily table against one base currency, and conversion through it.

Rates are stored as "units of currency per one unit of base" (the ECB publishes "USD per EUR").
Converting between two currencies goes through the base: amount_in_B = amount_in_A / rate(A) * rate(B).
The rate of a day is that day's rate, or the latest earlier one (weekends and holidays have none).
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, localcontext

from revlens.money import normalize_currency, round_to_minor_unit

# Enough significant digits that a cross rate through the base is exact to far below a minor unit.
PRECISION = 28


@dataclass(frozen=True, slots=True)
class Conversion:
    """A converted amount and how it was made: amount = round(original * rate), rate of `rate_date`."""

    amount: Decimal
    rate: Decimal
    rate_date: date | None


@dataclass
class RateTable:
    """Daily rates per currency against `base`; the base itself is always 1."""

    base: str = "EUR"
    _days: dict[str, list[date]] = field(default_factory=dict)
    _rates: dict[str, list[Decimal]] = field(default_factory=dict)

    @classmethod
    def from_rows(cls, base: str, rows: Iterable[tuple[date, str, Decimal]]) -> RateTable:
        table = cls(base=normalize_currency(base))
        by_currency: dict[str, dict[date, Decimal]] = {}
        for day, currency, rate in rows:
            by_currency.setdefault(normalize_currency(currency), {})[day] = rate
        for currency, days in by_currency.items():
            ordered = sorted(days)
            table._days[currency] = ordered
            table._rates[currency] = [days[d] for d in ordered]
        return table

    def currencies(self) -> list[str]:
        return sorted({self.base, *self._days})

    def __len__(self) -> int:
        return sum(len(v) for v in self._days.values())

    def rate_on(self, currency: str, day: date) -> tuple[Decimal, date | None] | None:
        """Units of `currency` per unit of base on `day` (or the latest earlier day), or None."""
        code = normalize_currency(currency)
        if code == self.base:
            return Decimal(1), None
        days = self._days.get(code)
        if not days:
            return None
        i = bisect.bisect_right(days, day) - 1
        if i < 0:
            return None
        return self._rates[code][i], days[i]

    def convert(self, amount: Decimal, source: str, target: str, day: date) -> Conversion | None:
        """Convert `amount` of `source` into `target` at the rate of `day`, rounded half-even to
        `target`'s minor unit; None when either currency has no rate on or before `day`.

        Example, base EUR with USD 1.10 and JPY 160 on the day: 1000 JPY -> USD is
        1000 / 160 * 1.10 = 6.875 -> 6.88 USD, with rate 0.006875 (USD per JPY).
        """
        src, dst = normalize_currency(source), normalize_currency(target)
        if src == dst:
            return Conversion(round_to_minor_unit(amount, dst), Decimal(1), None)
        a = self.rate_on(src, day)
        b = self.rate_on(dst, day)
        if a is None or b is None:
            return None
        with localcontext() as ctx:
            ctx.prec = PRECISION
            rate = b[0] / a[0]
            converted = amount * rate
        dates = [d for d in (a[1], b[1]) if d is not None]
        return Conversion(round_to_minor_unit(converted, dst), rate.normalize(), min(dates) if dates else None)


EMPTY_RATES = RateTable()


def rates_from_mapping(base: str, rates: Mapping[str, Mapping[date, Decimal]]) -> RateTable:
    """Build a table from {currency: {day: rate}}, mostly for tests."""
    return RateTable.from_rows(base, ((d, c, r) for c, days in rates.items() for d, r in days.items()))
