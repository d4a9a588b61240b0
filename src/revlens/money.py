"""Money: the one table of currency minor units, and Decimal conversions built on it.

Stripe sends amounts as integers in the currency's smallest unit. Every conversion from those
integers to major units in revlens goes through `minor_unit_exponent`, so there is one place to
correct when Stripe's currency list changes.
"""

from __future__ import annotations

from decimal import ROUND_HALF_EVEN, Decimal

# https://stripe.com/docs/currencies#zero-decimal (see shared/reference/stripe.md section 4)
ZERO_DECIMAL_CURRENCIES = frozenset(
    {
        "BIF",
        "CLP",
        "DJF",
        "GNF",
        "JPY",
        "KMF",
        "KRW",
        "MGA",
        "PYG",
        "RWF",
        "UGX",
        "VND",
        "VUV",
        "XAF",
        "XOF",
        "XPF",
    }
)
# https://stripe.com/docs/currencies#three-decimal
THREE_DECIMAL_CURRENCIES = frozenset({"BHD", "JOD", "KWD", "OMR", "TND"})


class CurrencyError(ValueError):
    """A currency code that is not a three-letter ISO 4217 code."""


def normalize_currency(code: str) -> str:
    """Upper-case a currency code and check its shape: 'usd' -> 'USD'."""
    if not isinstance(code, str) or len(code) != 3 or not code.isascii() or not code.isalpha():
        raise CurrencyError(f"not a currency code: {code!r}")
    return code.upper()


def minor_unit_exponent(currency: str) -> int:
    """Digits after the decimal point in Stripe amounts: JPY 0, USD 2, KWD 3.

    ISK, HUF and TWD stay two-decimal in the API (Stripe's special cases), so they take the default.
    """
    code = normalize_currency(currency)
    if code in ZERO_DECIMAL_CURRENCIES:
        return 0
    if code in THREE_DECIMAL_CURRENCIES:
        return 3
    return 2


def from_minor_units(amount: int, currency: str) -> Decimal:
    """Stripe integer amount -> Decimal in major units.

    >>> from_minor_units(1999, "usd"), from_minor_units(500, "jpy"), from_minor_units(5120, "kwd")
    (Decimal('19.99'), Decimal('500'), Decimal('5.120'))
    """
    if isinstance(amount, bool) or not isinstance(amount, int):
        raise TypeError(f"Stripe amounts are integers, got {amount!r}")
    return Decimal(amount).scaleb(-minor_unit_exponent(currency))


def quantum(currency: str) -> Decimal:
    """The smallest unit of a currency as a Decimal: USD 0.01, JPY 1, KWD 0.001."""
    return Decimal(1).scaleb(-minor_unit_exponent(currency))


def round_to_minor_unit(amount: Decimal, currency: str) -> Decimal:
    """Round half-even to the currency's minor unit: 10.005 USD -> 10.00, 10.015 USD -> 10.02."""
    return amount.quantize(quantum(currency), rounding=ROUND_HALF_EVEN)
