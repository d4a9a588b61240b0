"""The "Revenue" starter dashboard: the seven charts of Amplitude's Stripe guide.

The guide's charts (see docs/api.md, "Every chart of Amplitude's Stripe guide works") expressed as
chart definitions over the events revlens stores. Revenue uses `$revenue` (reporting currency, major
units, refunds negative) rather than the guide's `amount_paid` in cents.
"""

from __future__ import annotations

from typing import Any

from revlens.web.charts import PURCHASE, Chart

STARTER_NAME = "Revenue"
BIG_SPENDERS = "Spent more than $100 in the first 7 days"
# The guide's cohort: users whose purchases add up to more than 100 within 7 days of their first event.
BIG_SPENDERS_DEFINITION: dict[str, Any] = {
    "performed": {
        "event_type": PURCHASE,
        "measure": {"kind": "sum", "property": "$revenue", "op": ">", "value": 100},
        "timing": {"kind": "within_first_days", "days": 7},
    }
}


def starter_charts(currency: str, cohort_id: int) -> list[Chart]:
    """The seven charts, each over the last 180 days, weekly where over time."""
    return [
        Chart(id="revenue", title="Total revenue", measure="sums", property="$revenue", view="bar", unit=currency),
        Chart(id="avg-purchases", title="Average purchases per user", measure="average"),
        Chart(id="frequency", title="Purchase frequency", measure="frequency", buckets=[1, 2, 3, 5, 10], view="bar"),
        Chart(id="retention", title="N-week retention", kind="retention", interval=7, days=91),
        Chart(
            id="revenue-by-product",
            title="Revenue by product",
            measure="sums",
            property="$revenue",
            group_by="product",
            collapse=True,
            view="bar",
            unit=currency,
        ),
        Chart(
            id="orders-by-product",
            title="Orders by product",
            measure="uniques",
            group_by="description",
            collapse=True,
            view="bar",
        ),
        Chart(
            id="big-spenders",
            title=BIG_SPENDERS,
            kind="cohort",
            cohort_id=cohort_id,
            cohort_definition=BIG_SPENDERS_DEFINITION,
        ),
    ]
