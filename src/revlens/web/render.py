"""`revlens chart`: a dashboard chart rendered to PNG or SVG without a browser.

Same chart definition, same queries (through the admin query path, so it works with or without a
running server), same rows and same Vega-Lite spec as the dashboard; vl-convert draws it.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Any

import orjson

from revlens.web.charts import Chart, requests, rows
from revlens.web.specs import vegalite_spec, with_rows
from revlens.web.starter import starter_charts

# Runs one query: (kind, Amplitude parameters) -> the answer's `data`.
Runner = Callable[[str, dict[str, str | None]], Any]
FORMATS = (".png", ".svg")


class ChartError(Exception):
    """A chart that cannot be drawn as asked (unknown name, bad definition, unknown format)."""


def pick_chart(name: str | None, definition: str | None, currency: str = "USD") -> Chart:
    """A chart from a JSON definition (text or @file), else a starter chart by id or title."""
    if definition:
        text = Path(definition[1:]).read_text() if definition.startswith("@") else definition
        try:
            return Chart.model_validate(orjson.loads(text))
        except (orjson.JSONDecodeError, ValueError) as exc:
            raise ChartError(f"invalid chart definition: {exc}") from None
    wanted = (name or "revenue").strip().lower()
    charts = starter_charts(currency, cohort_id=0)
    for chart in charts:
        if wanted in (chart.id, chart.title.lower()):
            if chart.kind == "cohort":
                raise ChartError(
                    "the cohort chart needs its cohort's id: pass --definition with the chart JSON "
                    "shown under the chart builder's preview"
                )
            return chart
    names = ", ".join(c.id for c in charts if c.kind != "cohort")
    raise ChartError(f"no starter chart {name!r}; choose one of {names}, or pass --definition")


def chart_spec(chart: Chart, run: Runner, today: date | None = None, width: int = 720) -> dict[str, Any]:
    """The chart's Vega-Lite spec with its rows, from fresh query answers."""
    answers = [run(r["kind"], r["params"]) for r in requests(chart, today or date.today())]
    drawn = rows(chart, answers)
    title = chart.title
    if chart.kind == "cohort":
        title = f"{chart.title}: {answers[0].get('size', 0):,} users"
    bar_or_line = chart.model_copy(update={"view": "bar"}) if chart.view == "table" else chart
    return with_rows(vegalite_spec(bar_or_line, width=width, height=320), drawn, title)


def render_chart(chart: Chart, run: Runner, output: Path, today: date | None = None) -> Path:
    """Write the chart to `output` (.png at twice the pixel density, or .svg)."""
    import vl_convert

    suffix = output.suffix.lower()
    if suffix not in FORMATS:
        raise ChartError(f"write .png or .svg, not {suffix or 'no extension'}")
    spec = chart_spec(chart, run, today)
    if suffix == ".png":
        output.write_bytes(vl_convert.vegalite_to_png(spec, scale=2))
    else:
        output.write_text(vl_convert.vegalite_to_svg(spec))
    return output
