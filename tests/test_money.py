from decimal import Decimal

import pytest

from revlens.money import CurrencyError, from_minor_units, minor_unit_exponent, round_to_minor_unit


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        (1999, "usd", Decimal("19.99")),
        (1999, "USD", Decimal("19.99")),
        (500, "jpy", Decimal("500")),
        (500, "krw", Decimal("500")),
        (5120, "kwd", Decimal("5.120")),
        (1000, "bhd", Decimal("1.000")),
        (100, "isk", Decimal("1.00")),  # ISK stays two-decimal in the API
        (-250, "eur", Decimal("-2.50")),
        (0, "gbp", Decimal("0.00")),
    ],
)
def test_minor_units(amount: int, currency: str, expected: Decimal) -> None:
    result = from_minor_units(amount, currency)
    assert result == expected
    assert result.as_tuple().exponent == expected.as_tuple().exponent


def test_every_listed_currency_has_its_exponent() -> None:
    for code in ("BIF", "CLP", "DJF", "GNF", "JPY", "KMF", "KRW", "MGA", "PYG", "RWF", "UGX", "VND", "VUV", "XAF"):
        assert minor_unit_exponent(code) == 0
    for code in ("BHD", "JOD", "KWD", "OMR", "TND"):
        assert minor_unit_exponent(code) == 3
    assert minor_unit_exponent("huf") == 2


@pytest.mark.parametrize("bad", ["", "US", "USDX", "u$d", None, 840])
def test_bad_currency_codes_are_refused(bad: object) -> None:
    with pytest.raises(CurrencyError):
        minor_unit_exponent(bad)  # type: ignore[arg-type]


def test_amounts_must_be_integers() -> None:
    with pytest.raises(TypeError):
        from_minor_units(19.99, "usd")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        from_minor_units(True, "usd")


@pytest.mark.parametrize(
    ("amount", "currency", "expected"),
    [
        ("10.005", "USD", "10.00"),
        ("10.015", "USD", "10.02"),
        ("10.5", "JPY", "10"),
        ("11.5", "JPY", "12"),
        ("1.0005", "KWD", "1.000"),
        ("1.0015", "KWD", "1.002"),
    ],
)
def test_rounding_is_half_even_to_the_minor_unit(amount: str, currency: str, expected: str) -> None:
    assert str(round_to_minor_unit(Decimal(amount), currency)) == expected
