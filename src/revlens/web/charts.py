"""Chart definitions: what a saved chart asks the query API, and how its answer becomes table rows.

A chart is plain data (saved inside a dashboard). `requests()` turns it into query-API calls with
Amplitude parameters; `rows()` turns the answers into flat rows that the Vega-Lite spec
(`revlens.web.specs`) draws and the CSV download writes. `static/charts.js` mirrors `rows()` for the
browser, and the browser test checks both give the same rows.
"""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any, Literal

from pydantic import BaseModel, Field

# Amplitude's Stripe guide charts read these two event types.
PURCHASE = "[Stripe] payment_intent.succeeded"
INVOICE_PAID = "[Stripe] invoice.payment_succeeded"

Measure = Literal["uniques", "totals", "average", "sums", "value_avg", "frequency"]
# Measures that read a property's value: Amplitude passes it as the first group_by entry.
PROPERTY_MEASURES = ("sums", "value_avg")
MEASURE_LABELS = {
    "uniques": "Unique users",
    "totals": "Event totals",
    "average": "Average per user",
    "sums": "Sum of property",
    "value_avg": "Average of property",
    "frequency": "Users by number of events",
}
INTERVAL_NAMES = {1: "Day", 7: "Week", 30: "Month"}


class ChartFilter(BaseModel):
    prop: str = Field(min_length=1, max_length=200)
    op: Literal["is", "is not", "contains", "greater", "less"] = "is"
    values: list[str] = Field(default_factory=list, max_length=50)


class Chart(BaseModel):
    """One chart of a dashboard. `kind` picks the query; the other fields are its parameters."""

    id: str = Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_-]+$")
    title: str = Field(min_length=1, max_length=120)
    kind: Literal["segmentation", "retention", "cohort"] = "segmentation"
    event: str = Field(default=PURCHASE, min_length=1, max_length=200)
    measure: Measure = "totals"
    property: str | None = Field(default=None, max_length=200)
    buckets: list[int] | None = None
    filters: list[ChartFilter] = Field(default_factory=list, max_length=20)
    group_by: str | None = Field(default=None, max_length=200)
    interval: Literal[1, 7, 30] = 7
    days: int = Field(default=180, ge=1, le=3660)
    start: date | None = None
    end: date | None = None
    view: Literal["line", "bar", "table"] = "line"
    collapse: bool = False  # one bar per group over the whole range instead of a series over time
    return_event: str | None = Field(default=None, max_length=200)
    mode: Literal["n-day", "rolling", "bracket"] = "n-day"
    brackets: list[tuple[int, int]] | None = None
    cohort_id: int | None = None  # kind "cohort": the cohort drawn; otherwise a segment ("use as segment")
    cohort_definition: dict[str, Any] | None = None  # kind "cohort": lets the CLI size it without an id
    unit: str | None = Field(default=None, max_length=12)  # shown on the value axis, e.g. "USD"


def date_range(chart: Chart, today: date) -> tuple[date, date]:
    """The chart's days: fixed `start`/`end`, else the last `days` days up to today (`days=7` on
    2026-11-25 gives 2026-11-19 .. 2026-11-25)."""
    if chart.start and chart.end:
        return chart.start, chart.end
    return today - timedelta(days=chart.days - 1), today


def _event_json(event: str, filters: list[ChartFilter], groups: list[str]) -> str:
    spec: dict[str, Any] = {"event_type": event}
    if filters:
        spec["filters"] = [
            {"subprop_type": "event", "subprop_key": f.prop, "subprop_op": f.op, "subprop_value": f.values}
            for f in filters
        ]
    if groups:
        spec["group_by"] = [{"type": "event", "value": g} for g in groups]
    return json.dumps(spec)


def _segment(cohort_id: int | None) -> dict[str, str]:
    if cohort_id is None:
        return {}
    return {"s": json.dumps([{"prop": "userdata_cohort", "op": "is", "values": [str(cohort_id)]}])}


def requests(chart: Chart, today: date) -> list[dict[str, Any]]:
    """The query-API calls that feed the chart: `{"kind", "path", "params"}` each.

    `kind` is also what the admin query (`revlens query`, `/-/query`) calls it, so the CLI runs
    exactly the same queries without a browser."""
    start, end = date_range(chart, today)
    days = {"start": start.strftime("%Y%m%d"), "end": end.strftime("%Y%m%d")}
    if chart.kind == "retention":
        params = {
            "se": json.dumps({"event_type": chart.event}),
            "re": json.dumps({"event_type": chart.return_event or chart.event}),
            "rm": chart.mode,
            "i": str(chart.interval),
            **days,
            **_segment(chart.cohort_id),
        }
        if chart.mode == "bracket":
            params["rb"] = json.dumps([list(b) for b in chart.brackets or [(0, 1), (1, 4), (4, 8)]])
        return [{"kind": "retention", "path": "/api/2/retention", "params": params}]
    if chart.kind == "cohort":
        trend = {"e": _event_json(chart.event, [], []), "m": "uniques", "i": str(chart.interval), **days}
        trend.update(_segment(chart.cohort_id))
        size = {"definition": json.dumps(chart.cohort_definition or {})}
        return [
            {"kind": "cohort", "path": f"/api/cohorts/{chart.cohort_id}", "params": size},
            {"kind": "segmentation", "path": "/api/2/events/segmentation", "params": trend},
        ]
    groups = ([chart.property or "$revenue"] if chart.measure in PROPERTY_MEASURES else []) + (
        [chart.group_by] if chart.group_by else []
    )
    params = {"e": _event_json(chart.event, chart.filters, groups), "m": chart.measure, **days}
    params["i"] = str(chart.interval)
    if chart.measure == "frequency":
        params["buckets"] = json.dumps(chart.buckets or [1, 2, 3, 5, 10])
    params.update(_segment(chart.cohort_id))
    return [{"kind": "segmentation", "path": "/api/2/events/segmentation", "params": params}]


def _number(value: Any) -> float:
    if isinstance(value, dict):
        value = value.get("value")
    return float(Decimal(str(value))) if value is not None else 0.0


def _label(raw: Any, fallback: str) -> str:
    if isinstance(raw, list) and len(raw) > 1:
        return str(raw[-1])
    return fallback


def _segmentation_rows(chart: Chart, data: dict[str, Any], series_name: str) -> list[dict[str, Any]]:
    labels = data.get("seriesLabels") or []
    rows: list[dict[str, Any]] = []
    if chart.measure == "frequency":
        for i, values in enumerate(data.get("series") or []):
            name = _label(labels[i] if i < len(labels) else 0, series_name)
            for order, (bucket, value) in enumerate(zip(data.get("xValues") or [], values, strict=False)):
                rows.append({"x": bucket, "order": order, "series": name, "value": _number(value)})
        return rows
    if chart.collapse:
        for i, collapsed in enumerate(data.get("seriesCollapsed") or []):
            name = _label(labels[i] if i < len(labels) else 0, series_name)
            rows.append({"x": name, "order": i, "series": name, "value": _number(collapsed[0] if collapsed else 0)})
        return rows
    for i, values in enumerate(data.get("series") or []):
        name = _label(labels[i] if i < len(labels) else 0, series_name)
        for order, (day, value) in enumerate(zip(data.get("xValues") or [], values, strict=False)):
            rows.append({"x": day, "order": order, "series": name, "value": _number(value)})
    return rows


def retention_label(chart: Chart, index: int) -> str:
    """Column name of a retention interval: "Week 0", "Week 1", ... or a bracket such as "Day 1-3"."""
    if chart.mode == "bracket":
        brackets = chart.brackets or [(0, 1), (1, 4), (4, 8)]
        if index < len(brackets):
            low, high = brackets[index]
            return f"Day {low}" if high - low == 1 else f"Day {low}-{high - 1}"
    return f"{INTERVAL_NAMES.get(chart.interval, 'Day')} {index}"


def _retention_rows(chart: Chart, data: dict[str, Any]) -> list[dict[str, Any]]:
    """The combined curve. Each answer row starts with the whole cohort (Amplitude's shape), so
    interval i is cell i + 1: a 2-user cohort with cells [2, 2, 1] is 100 % in week 0, 50 % in week 1."""
    series = (data.get("series") or [{}])[0]
    rows = []
    for i, cell in enumerate((series.get("combined") or [])[1:]):
        outof = cell.get("outof") or 0
        pct = 100.0 * cell.get("count", 0) / outof if outof else 0.0
        rows.append({"x": retention_label(chart, i), "order": i, "series": "Retained %", "value": pct})
    return rows


def rows(chart: Chart, answers: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Flat rows `{x, order, series, value}` from the `data` of each of `requests(chart)`'s answers."""
    if chart.kind == "retention":
        return _retention_rows(chart, answers[0])
    if chart.kind == "cohort":
        return _segmentation_rows(chart.model_copy(update={"measure": "uniques"}), answers[1], "Active members")
    name = MEASURE_LABELS[chart.measure] if chart.measure not in PROPERTY_MEASURES else chart.title
    return _segmentation_rows(chart, answers[0], name)
