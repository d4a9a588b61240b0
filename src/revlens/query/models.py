"""Typed query models, independent of HTTP parameters and of SQL."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, Field


class QueryError(ValueError):
    """A query that cannot run as asked; `param` names the offending parameter (HTTP 400)."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(f"parameter '{param}': {message}")
        self.param = param


class Interval(StrEnum):
    """Amplitude's `i` values and the buckets they mean (in the project's time zone)."""

    realtime = "-300000"
    hourly = "-3600000"
    daily = "1"
    weekly = "7"
    monthly = "30"


FilterOp = Literal[
    "is",
    "is not",
    "contains",
    "does not contain",
    "less",
    "less or equal",
    "greater",
    "greater or equal",
    "set is",
    "set is not",
]


class Filter(BaseModel):
    """A property condition: on an event (`filters` of `e`) or in a segment (`s`)."""

    key: str
    op: FilterOp
    values: list[Any] = Field(default_factory=list)


class EventSpec(BaseModel):
    """One event of a chart: its type (or `_all` / `_active`), filters and group-bys."""

    event_type: str
    filters: list[Filter] = Field(default_factory=list)
    group_by: list[str] = Field(default_factory=list)


class Segment(BaseModel):
    """Who is counted: property conditions (ANDed) and cohort memberships."""

    filters: list[Filter] = Field(default_factory=list)
    cohorts: list[int] = Field(default_factory=list)
    not_cohorts: list[int] = Field(default_factory=list)


SEGMENTATION_METRICS = (
    "uniques",
    "totals",
    "pct_dau",
    "average",
    "histogram",
    "sums",
    "value_avg",
    "formula",
    "frequency",
)


class SegmentationQuery(BaseModel):
    events: list[EventSpec]
    metric: str = "uniques"
    start: date
    end: date
    interval: Interval = Interval.daily
    segment: Segment = Field(default_factory=Segment)
    group_by: list[str] = Field(default_factory=list)
    limit: int = 100
    formula: str | None = None
    buckets: list[float] | None = None


class RetentionMode(StrEnum):
    n_day = "n-day"
    rolling = "rolling"
    bracket = "bracket"


class RetentionQuery(BaseModel):
    start_event: EventSpec
    return_event: EventSpec
    start: date
    end: date
    mode: RetentionMode = RetentionMode.n_day
    brackets: list[tuple[int, int]] = Field(default_factory=list)
    interval: int = 1  # days per interval: 1, 7 or 30
    calendar: bool = False
    segment: Segment = Field(default_factory=Segment)
    group_by: str | None = None
    intervals: int | None = None
    now: datetime | None = None


class LtvQuery(BaseModel):
    start: date
    end: date
    metric: int = 0  # 0 ARPU, 1 ARPPU, 2 total revenue, 3 paying users
    interval: int = 1
    segment: Segment = Field(default_factory=Segment)
    group_by: str | None = None
    now: datetime | None = None
