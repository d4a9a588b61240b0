"""Behavioural cohort definitions: a tree of conditions (all / any / not / performed).

A leaf says a user *performed* an event (with filters) with a count or a property-sum condition, over
a timing: all time, during a date range, in the last N days, or within N days of the user's first
event. Example, "spent more than $100 in their first seven days":

    {"performed": {"event_type": "[Stripe] payment_intent.succeeded",
                   "measure": {"kind": "sum", "property": "$revenue", "op": ">", "value": 100},
                   "timing": {"kind": "within_first_days", "days": 7}}}
"""

from __future__ import annotations

from datetime import date
from decimal import Decimal
from typing import Literal

from pydantic import BaseModel, Field, model_validator

from revlens.query.models import Filter


class Measure(BaseModel):
    kind: Literal["count", "sum"] = "count"
    property: str | None = None
    op: Literal[">=", ">", "=", "<", "<=", "!="] = ">="
    value: Decimal = Decimal(1)

    @model_validator(mode="after")
    def _sum_needs_property(self) -> Measure:
        if self.kind == "sum" and not self.property:
            raise ValueError("a sum measure needs 'property'")
        return self


class Timing(BaseModel):
    kind: Literal["all_time", "during", "last_days", "within_first_days"] = "all_time"
    start: date | None = None
    end: date | None = None
    days: int | None = Field(default=None, ge=1, le=3650)

    @model_validator(mode="after")
    def _complete(self) -> Timing:
        if self.kind == "during" and (self.start is None or self.end is None or self.end < self.start):
            raise ValueError("'during' needs start <= end")
        if self.kind in ("last_days", "within_first_days") and self.days is None:
            raise ValueError(f"'{self.kind}' needs 'days'")
        return self


class Performed(BaseModel):
    event_type: str
    filters: list[Filter] = Field(default_factory=list)
    measure: Measure = Field(default_factory=Measure)
    timing: Timing = Field(default_factory=Timing)


class CohortNode(BaseModel):
    """Exactly one of: all (AND), any (OR), not (negation), performed (a leaf)."""

    model_config = {"populate_by_name": True}

    all: list[CohortNode] | None = None
    any: list[CohortNode] | None = None
    not_: CohortNode | None = Field(default=None, alias="not")
    performed: Performed | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> CohortNode:
        kinds = [k for k in ("all", "any", "not_", "performed") if getattr(self, k) is not None]
        if len(kinds) != 1:
            raise ValueError("a cohort condition has exactly one of 'all', 'any', 'not', 'performed'")
        if (self.all is not None and not self.all) or (self.any is not None and not self.any):
            raise ValueError("'all' and 'any' need at least one condition")
        return self


class CohortDefinition(BaseModel):
    name: str = Field(min_length=1, max_length=200)
    description: str | None = None
    definition: CohortNode
