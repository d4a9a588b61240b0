"""Vega-Lite specs for charts: one function used by the browser (via the board JSON) and the CLI.

The spec reads a named data set `rows` (see `charts.rows`), so the browser and `revlens chart` plug
in the same rows they computed from the same query answers.
"""

from __future__ import annotations

from typing import Any

from revlens.web.charts import Chart

# Vega-Lite version bundled by vl-convert-python and served as /static/vega.js.
VEGA_LITE_SCHEMA = "https://vega.github.io/schema/vega-lite/v6.json"
PALETTE = ["#2563eb", "#16a34a", "#d97706", "#dc2626", "#7c3aed", "#0891b2", "#db2777", "#65a30d"]


def _value_title(chart: Chart) -> str:
    if chart.kind == "retention":
        return "Retained users (%)"
    if chart.kind == "cohort":
        return "Active cohort members"
    if chart.measure == "frequency":
        return "Users"
    return f"{chart.title} ({chart.unit})" if chart.unit else chart.title


def _x(chart: Chart) -> dict[str, Any]:
    if chart.kind == "retention" or chart.measure == "frequency" or chart.collapse:
        title = {"retention": "Interval since start"}.get(chart.kind, "Events per user")
        if chart.collapse:
            title = chart.group_by or "All"
        sort = {"field": "order"} if not chart.collapse else "-y"
        return {"field": "x", "type": "ordinal", "title": title, "sort": sort, "axis": {"labelAngle": -30}}
    time_unit = {1: "yearmonthdate", 7: "yearmonthdate", 30: "yearmonth"}[chart.interval]
    label = "%b %Y" if chart.interval == 30 else "%b %d"
    # Bars over time sit on a discrete axis: one full-width bar per interval, not a 1-day sliver.
    kind = "ordinal" if chart.view == "bar" else "temporal"
    return {
        "field": "x",
        "type": kind,
        "timeUnit": time_unit,
        "title": None,
        "axis": {"format": label, "labelAngle": -30},
    }


def vegalite_spec(chart: Chart, width: int | str = "container", height: int = 220) -> dict[str, Any]:
    """The chart's Vega-Lite spec, without data: `data: {"name": "rows"}`."""
    multi = bool(chart.group_by) and not chart.collapse
    counts = chart.kind == "cohort" or (chart.kind == "segmentation" and chart.measure in ("uniques", "totals"))
    # Tooltips show exact values: up to four decimals, trailing zeros trimmed (d3-format `~`).
    value_format = ",d" if counts else ",.4~f"
    tooltip: list[dict[str, Any]] = [
        {"field": "x", "type": "nominal", "title": "When" if _x(chart)["type"] == "temporal" else "Bucket"},
        {"field": "value", "type": "quantitative", "title": _value_title(chart), "format": value_format},
    ]
    if multi:
        tooltip.insert(1, {"field": "series", "type": "nominal", "title": chart.group_by})
    mark: dict[str, Any] = {"type": "line", "point": True, "tooltip": True}
    if chart.view == "bar" or chart.measure == "frequency" or chart.collapse:
        mark = {"type": "bar", "tooltip": True}
    encoding: dict[str, Any] = {
        "x": _x(chart),
        "y": {"field": "value", "type": "quantitative", "title": _value_title(chart)},
        "tooltip": tooltip,
    }
    if multi:
        encoding["color"] = {
            "field": "series",
            "type": "nominal",
            "title": chart.group_by,
            "legend": {"orient": "bottom"},
        }
    elif chart.collapse:
        encoding["color"] = {"field": "x", "type": "nominal", "legend": None}
    return {
        "$schema": VEGA_LITE_SCHEMA,
        "data": {"name": "rows"},
        "width": width,
        "height": height,
        "autosize": {"type": "fit", "contains": "padding"},
        "mark": mark,
        "encoding": encoding,
        "config": {"range": {"category": PALETTE}, "view": {"stroke": None}, "font": "sans-serif"},
    }


def with_rows(spec: dict[str, Any], rows: list[dict[str, Any]], title: str | None = None) -> dict[str, Any]:
    """The spec with its rows inlined (what the CLI renders)."""
    full = {**spec, "datasets": {"rows": rows}}
    if title:
        full["title"] = title
    return full
