"""Exchange-rate files: the ECB's published history CSV and a plain `date,currency,rate` CSV.

The ECB file (https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist.zip, inside it
eurofxref-hist.csv) has a header `Date,USD,JPY,...`, one row per business day, rates per one EUR,
`N/A` where a currency has no rate that day, and often a trailing comma. A plain file states its
base on the command line (`--base USD`) and has rows `date,currency,rate`.
"""

from __future__ import annotations

import csv
import io
import zipfile
from datetime import date
from decimal import Decimal, InvalidOperation

import httpx

from revlens.money import CurrencyError, normalize_currency

ECB_HISTORY_URL = "https://www.ecb.europa.eu/stats/eurofxref/eurofxref-hist.zip"
ECB_BASE = "EUR"

Rows = list[tuple[date, str, Decimal]]


class RatesFileError(ValueError):
    """A rates file that cannot be read; the message names the line."""


def _rate(text: str, where: str) -> Decimal | None:
    text = text.strip()
    if text in ("", "N/A", "NA", "-"):
        return None
    try:
        value = Decimal(text)
    except InvalidOperation:
        raise RatesFileError(f"{where}: {text!r} is not a number") from None
    if not value.is_finite() or value <= 0:
        raise RatesFileError(f"{where}: a rate must be a positive number, got {text!r}")
    return value


def _day(text: str, where: str) -> date:
    try:
        return date.fromisoformat(text.strip())
    except ValueError:
        raise RatesFileError(f"{where}: {text!r} is not a YYYY-MM-DD date") from None


def parse_ecb(text: str) -> Rows:
    """Rows of the ECB history CSV (rates per EUR)."""
    reader = csv.reader(io.StringIO(text))
    header = next(reader, None)
    if not header or header[0].strip().lower() != "date":
        raise RatesFileError("line 1: an ECB file starts with 'Date,USD,JPY,...'")
    currencies: list[str | None] = []
    for name in header[1:]:
        name = name.strip()
        try:
            currencies.append(normalize_currency(name) if name else None)
        except CurrencyError:
            raise RatesFileError(f"line 1: {name!r} is not a currency code") from None
    rows: Rows = []
    for n, record in enumerate(reader, start=2):
        if not record or not record[0].strip():
            continue
        day = _day(record[0], f"line {n}")
        for currency, cell in zip(currencies, record[1:], strict=False):
            if currency is None:
                continue
            value = _rate(cell, f"line {n}, {currency}")
            if value is not None:
                rows.append((day, currency, value))
    return rows


def parse_plain(text: str) -> Rows:
    """Rows of a `date,currency,rate` CSV (a header line is optional)."""
    rows: Rows = []
    for n, record in enumerate(csv.reader(io.StringIO(text)), start=1):
        if not record or not "".join(record).strip():
            continue
        if n == 1 and record[0].strip().lower() == "date":
            continue
        if len(record) < 3:
            raise RatesFileError(f"line {n}: expected date,currency,rate")
        try:
            currency = normalize_currency(record[1].strip())
        except CurrencyError:
            raise RatesFileError(f"line {n}: {record[1]!r} is not a currency code") from None
        value = _rate(record[2], f"line {n}")
        if value is not None:
            rows.append((_day(record[0], f"line {n}"), currency, value))
    return rows


def parse(data: bytes, base: str | None = None) -> tuple[str, Rows]:
    """Read a rates file (zip or CSV, ECB or plain); returns (base currency, rows)."""
    if data[:2] == b"PK":
        with zipfile.ZipFile(io.BytesIO(data)) as archive:
            names = [n for n in archive.namelist() if n.lower().endswith(".csv")]
            if not names:
                raise RatesFileError("the zip file holds no CSV")
            data = archive.read(names[0])
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise RatesFileError("the file is not UTF-8 text") from None
    first = text.lstrip().split("\n", 1)[0]
    if (
        first.lower().startswith("date,")
        and len(first.split(",")) > 1
        and first.split(",")[1].strip().isalpha()
        and first.split(",")[1].strip().lower() != "currency"
    ):
        if base is not None and normalize_currency(base) != ECB_BASE:
            raise RatesFileError("an ECB file is against EUR; leave out --base or use --base EUR")
        return ECB_BASE, parse_ecb(text)
    if base is None:
        raise RatesFileError("a plain date,currency,rate file needs --base (the currency its rates are against)")
    return normalize_currency(base), parse_plain(text)


def fetch(url: str = ECB_HISTORY_URL, timeout: float = 60) -> bytes:
    """Download a rates file (by default the ECB history)."""
    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        raise RatesFileError(f"cannot download {url}: {exc}") from None
    return response.content
