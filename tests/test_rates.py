"""Exchange-rate files and conversion properties."""

from __future__ import annotations

import io
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from revlens.money import minor_unit_exponent, round_to_minor_unit
from revlens.normalize.fx import RateTable, rates_from_mapping
from revlens.rates import RatesFileError, parse

ECB_SAMPLE = (
    "Date,USD,JPY,BGN,CYP,GBP,KWD,\n"
    "2024-03-04,1.0850,162.73,1.9558,N/A,0.85505,N/A,\n"
    "2024-03-01,1.0830,162.09,1.9558,N/A,0.85553,0.3330,\n"
)


def test_parse_ecb_file_with_gaps_and_trailing_comma() -> None:
    base, rows = parse(ECB_SAMPLE.encode())
    assert base == "EUR"
    assert (date(2024, 3, 4), "USD", Decimal("1.0850")) in rows
    assert (date(2024, 3, 1), "KWD", Decimal("0.3330")) in rows
    assert not any(c == "CYP" for _, c, _ in rows)
    assert not any(c == "KWD" and d == date(2024, 3, 4) for d, c, _ in rows)
    assert len(rows) == 9


def test_parse_ecb_zip() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("eurofxref-hist.csv", ECB_SAMPLE)
    base, rows = parse(buffer.getvalue())
    assert base == "EUR" and len(rows) == 9


def test_parse_plain_file_needs_a_base() -> None:
    text = b"date,currency,rate\n2024-03-01,EUR,0.92\n2024-03-01,jpy,150.1\n"
    with pytest.raises(RatesFileError, match="--base"):
        parse(text)
    base, rows = parse(text, "usd")
    assert base == "USD"
    assert rows == [(date(2024, 3, 1), "EUR", Decimal("0.92")), (date(2024, 3, 1), "JPY", Decimal("150.1"))]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (b"date,currency,rate\n2024-13-01,EUR,1\n", "line 2"),
        (b"date,currency,rate\n2024-03-01,EURO,1\n", "line 2"),
        (b"date,currency,rate\n2024-03-01,EUR,-1\n", "positive"),
        (b"date,currency,rate\n2024-03-01,EUR,abc\n", "not a number"),
        (b"\xff\xfe", "UTF-8"),
    ],
)
def test_bad_files_name_the_problem(text: bytes, message: str) -> None:
    with pytest.raises(RatesFileError, match=message):
        parse(text, "USD")


TABLE = rates_from_mapping(
    "EUR",
    {
        "USD": {date(2024, 3, 1): Decimal("1.083")},
        "JPY": {date(2024, 3, 1): Decimal("162.09")},
        "KWD": {date(2024, 3, 1): Decimal("0.333")},
    },
)


@pytest.mark.parametrize(
    ("amount", "source", "target", "expected"),
    [
        ("1000", "JPY", "USD", "6.68"),  # 1000 / 162.09 * 1.083 = 6.6815...
        ("100.00", "EUR", "USD", "108.30"),
        ("10.00", "USD", "EUR", "9.23"),  # 10 / 1.083 = 9.2336
        ("5.120", "KWD", "JPY", "2492"),  # 5.12 / 0.333 * 162.09 = 2492.18
        ("10.00", "USD", "KWD", "3.075"),  # 10 / 1.083 * 0.333 = 3.0748
        ("12.34", "USD", "USD", "12.34"),
    ],
)
def test_conversions_through_the_base(amount: str, source: str, target: str, expected: str) -> None:
    result = TABLE.convert(Decimal(amount), source, target, date(2024, 3, 3))
    assert result is not None
    assert str(result.amount) == expected


def test_no_rate_before_the_first_day_and_for_unknown_currencies() -> None:
    assert TABLE.convert(Decimal(1), "USD", "EUR", date(2024, 2, 29)) is None
    assert TABLE.convert(Decimal(1), "CHF", "EUR", date(2024, 3, 1)) is None


currencies = st.sampled_from(["USD", "JPY", "KWD", "GBP", "EUR"])
rates = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("1000"), places=4)


@given(minor=st.integers(min_value=0, max_value=10**10), source=currencies, target=currencies, r1=rates, r2=rates)
def test_converting_there_and_back_returns_within_one_minor_unit(
    minor: int, source: str, target: str, r1: Decimal, r2: Decimal
) -> None:
    table = (
        RateTable.from_rows("EUR", [(date(2024, 1, 1), source, r1), (date(2024, 1, 1), target, r2)])
        if source != target
        else RateTable.from_rows("EUR", [(date(2024, 1, 1), source, r1)])
    )
    if "EUR" in (source, target) and source != target:
        other = target if source == "EUR" else source
        table = RateTable.from_rows("EUR", [(date(2024, 1, 1), other, r1)])
    amount = Decimal(minor).scaleb(-minor_unit_exponent(source))
    there = table.convert(amount, source, target, date(2024, 1, 2))
    assert there is not None
    back = table.convert(there.amount, target, source, date(2024, 1, 2))
    assert back is not None
    # Rounding to the target's minor unit loses at most half a unit there, magnified by the rate back.
    unit = Decimal(1).scaleb(-minor_unit_exponent(source))
    tolerance = unit + Decimal(1).scaleb(-minor_unit_exponent(target)) / there.rate
    assert abs(back.amount - amount) <= tolerance


@given(amounts=st.lists(st.integers(min_value=-(10**8), max_value=10**8), min_size=1, max_size=30), rate=rates)
def test_sum_of_converted_equals_converted_sum_within_rounding(amounts: list[int], rate: Decimal) -> None:
    table = RateTable.from_rows("EUR", [(date(2024, 1, 1), "USD", rate)])
    values = [Decimal(a).scaleb(-2) for a in amounts]
    each = [table.convert(v, "EUR", "USD", date(2024, 1, 1)) for v in values]
    total = table.convert(sum(values, Decimal(0)), "EUR", "USD", date(2024, 1, 1))
    assert total is not None and all(e is not None for e in each)
    summed = sum((e.amount for e in each if e is not None), Decimal(0))
    # Each conversion rounds by at most half a cent.
    assert abs(summed - total.amount) <= Decimal("0.005") * (len(values) + 1)
    assert round_to_minor_unit(summed, "USD") == summed


class _Files(BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/zip")
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def ecb_server() -> Iterator[str]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("eurofxref-hist.csv", ECB_SAMPLE)
    _Files.payload = buffer.getvalue()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Files)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/eurofxref-hist.zip"
    server.shutdown()
    server.server_close()


def test_rates_fetch_downloads_and_imports(ecb_server: str, tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "revlens", "rates", "fetch", "--url", ecb_server, "--data-dir", str(tmp_path), "--json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    result = orjson.loads(out.stdout)
    assert result["base"] == "EUR" and result["rates"] == 9
    assert result["currencies"] == ["BGN", "GBP", "JPY", "KWD", "USD"]
