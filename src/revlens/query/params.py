"""Amplitude Dashboard REST parameters -> typed queries. Every error names its parameter (HTTP 400)."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import orjson
from pydantic import ValidationError

from revlens.query.models import (
    SEGMENTATION_METRICS,
    EventSpec,
    Filter,
    Interval,
    LtvQuery,
    QueryError,
    RetentionMode,
    RetentionQuery,
    Segment,
    SegmentationQuery,
)

MAX_LIMIT = 1000


def _json(params: Mapping[str, str], name: str, required: bool = True) -> Any:
    raw = params.get(name)
    if raw is None or raw == "":
        if required:
            raise QueryError(name, "is required")
        return None
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        raise QueryError(name, "is not valid JSON") from None


def _day(params: Mapping[str, str], name: str) -> date:
    raw = params.get(name)
    if not raw:
        raise QueryError(name, "is required (YYYYMMDD)")
    try:
        return datetime.strptime(raw, "%Y%m%d").date()
    except ValueError:
        raise QueryError(name, f"{raw!r} is not a YYYYMMDD date") from None


def _filter(item: Any, name: str) -> Filter:
    if not isinstance(item, dict):
        raise QueryError(name, "each filter must be an object")
    key = item.get("subprop_key", item.get("prop"))
    op = item.get("subprop_op", item.get("op"))
    values = item.get("subprop_value", item.get("values", []))
    if not isinstance(values, list):
        values = [values]
    try:
        return Filter.model_validate({"key": key, "op": op, "values": values})
    except ValidationError as exc:
        raise QueryError(name, f"bad filter {item!r}: {exc.errors()[0]['msg']}") from None


def event(params: Mapping[str, str], name: str, required: bool = True) -> EventSpec | None:
    data = _json(params, name, required)
    if data is None:
        return None
    if isinstance(data, str):
        data = {"event_type": data}
    if not isinstance(data, dict) or not isinstance(data.get("event_type"), str) or not data["event_type"]:
        raise QueryError(name, 'must be an object like {"event_type": "[Stripe] payment_intent.succeeded"}')
    filters = data.get("filters") or []
    groups = data.get("group_by") or []
    if not isinstance(filters, list) or not isinstance(groups, list):
        raise QueryError(name, "'filters' and 'group_by' must be lists")
    group_by = []
    for g in groups:
        value = g.get("value") if isinstance(g, dict) else g
        if not isinstance(value, str) or not value:
            raise QueryError(name, "each group_by needs a property name as 'value'")
        group_by.append(value)
    if len(group_by) > 2:
        raise QueryError(name, "at most two group_by entries")
    return EventSpec(event_type=data["event_type"], filters=[_filter(f, name) for f in filters], group_by=group_by)


def segment(params: Mapping[str, str], name: str = "s") -> Segment:
    data = _json(params, name, required=False)
    if data is None:
        return Segment()
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list):
        raise QueryError(name, "must be a list of conditions")
    seg = Segment()
    for item in data:
        if not isinstance(item, dict):
            raise QueryError(name, "each condition must be an object")
        if item.get("prop") == "userdata_cohort":
            op = item.get("op", "is")
            ids = item.get("values", [])
            try:
                numbers = [int(v) for v in (ids if isinstance(ids, list) else [ids])]
            except (TypeError, ValueError):
                raise QueryError(name, "cohort ids are numbers") from None
            if op == "is":
                seg.cohorts.extend(numbers)
            elif op == "is not":
                seg.not_cohorts.extend(numbers)
            else:
                raise QueryError(name, "userdata_cohort takes op 'is' or 'is not'")
        else:
            seg.filters.append(_filter(item, name))
    return seg


def _int(params: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = params.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise QueryError(name, f"{raw!r} is not a whole number") from None
    if not lo <= value <= hi:
        raise QueryError(name, f"must be between {lo} and {hi}")
    return value


def _group(params: Mapping[str, str], name: str) -> str | None:
    value = params.get(name)
    return value or None


def segmentation(params: Mapping[str, str]) -> SegmentationQuery:
    first = event(params, "e")
    second = event(params, "e2", required=False)
    metric = params.get("m", "uniques") or "uniques"
    if metric not in SEGMENTATION_METRICS:
        raise QueryError("m", f"must be one of {', '.join(SEGMENTATION_METRICS)}")
    raw_interval = params.get("i", "1") or "1"
    try:
        interval = Interval(raw_interval)
    except ValueError:
        raise QueryError("i", "must be -3600000 (hourly), 1 (daily), 7 (weekly) or 30 (monthly)") from None
    if params.get("n", "any") not in ("any", "active"):
        raise QueryError("n", "must be 'any' or 'active'")
    buckets = _json(params, "buckets", required=False)
    if buckets is not None and (
        not isinstance(buckets, list)
        or not buckets
        or not all(isinstance(b, int | float) and not isinstance(b, bool) for b in buckets)
        or sorted(buckets) != buckets
    ):
        raise QueryError("buckets", "must be an increasing list of numbers, e.g. [1, 2, 5, 10]")
    groups = [g for g in (_group(params, "g"), _group(params, "g2")) if g]
    start, end = _day(params, "start"), _day(params, "end")
    if end < start:
        raise QueryError("end", "must not be before start")
    assert first is not None
    return SegmentationQuery(
        events=[first] + ([second] if second else []),
        metric=metric,
        start=start,
        end=end,
        interval=interval,
        segment=segment(params),
        group_by=groups,
        limit=_int(params, "limit", 100, 1, MAX_LIMIT),
        formula=params.get("formula") or None,
        buckets=buckets,
    )


def _retention_event(params: Mapping[str, str], name: str) -> EventSpec:
    raw = params.get(name)
    if raw in ("_new", "_active", "_all"):
        return EventSpec(event_type=raw)
    spec = event(params, name)
    assert spec is not None
    return spec


def retention(params: Mapping[str, str]) -> RetentionQuery:
    start_event = _retention_event(params, "se")
    return_event = _retention_event(params, "re")
    raw_mode = params.get("rm", "n-day") or "n-day"
    try:
        mode = RetentionMode(raw_mode)
    except ValueError:
        raise QueryError("rm", "must be n-day, rolling or bracket") from None
    brackets: list[tuple[int, int]] = []
    if mode == RetentionMode.bracket:
        data = _json(params, "rb")
        if not isinstance(data, list) or not all(
            isinstance(b, list) and len(b) == 2 and all(isinstance(v, int) for v in b) for b in data
        ):
            raise QueryError("rb", "must be a list of [from, to) pairs, e.g. [[0,1],[1,4]]")
        brackets = [(int(b[0]), int(b[1])) for b in data]
    interval = _int(params, "i", 1, 1, 30)
    if interval not in (1, 7, 30):
        raise QueryError("i", "must be 1, 7 or 30")
    start, end = _day(params, "start"), _day(params, "end")
    if end < start:
        raise QueryError("end", "must not be before start")
    calendar = params.get("calendar", "false").lower()
    if calendar not in ("true", "false", "1", "0"):
        raise QueryError("calendar", "must be true or false")
    intervals = params.get("intervals")
    return RetentionQuery(
        start_event=start_event,
        return_event=return_event,
        start=start,
        end=end,
        mode=mode,
        brackets=brackets,
        interval=interval,
        calendar=calendar in ("true", "1"),
        segment=segment(params),
        group_by=_group(params, "g"),
        intervals=_int(params, "intervals", 0, 1, 120) if intervals else None,
    )


def ltv(params: Mapping[str, str]) -> LtvQuery:
    start, end = _day(params, "start"), _day(params, "end")
    if end < start:
        raise QueryError("end", "must not be before start")
    interval = _int(params, "i", 1, 1, 30)
    if interval not in (1, 7, 30):
        raise QueryError("i", "must be 1, 7 or 30")
    return LtvQuery(
        start=start,
        end=end,
        metric=_int(params, "m", 0, 0, 3),
        interval=interval,
        segment=segment(params),
        group_by=_group(params, "g"),
    )
