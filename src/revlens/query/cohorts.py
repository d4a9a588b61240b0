"""Behavioural cohorts: compute a definition's members, and their size."""

from __future__ import annotations

from typing import Any

from sqlglot import exp

from revlens.query import cohort_sets
from revlens.query.cohort_model import CohortNode
from revlens.query.context import QueryContext
from revlens.query.sql import and_, col


def members(node: CohortNode, ctx: QueryContext, limit: int | None = None) -> list[tuple[int, str]]:
    """(user_idx, user_id) of every member, ordered by user id."""
    c = ctx.compiler()
    found = cohort_sets.users(node, ctx)
    member: exp.Expression
    if found is not None:
        member = col("user_idx", "u").isin(query=exp.select(exp.Unnest(expressions=[c.bind(list(found))])))
    else:
        member = col("user_idx", "u").isin(query=c.cohort(node))
    q = (
        exp.select(col("user_idx", "u"), col("user_id", "u"))
        .from_(exp.to_table("users").as_("u"))
        .where(and_(exp.EQ(this=col("pid", "u"), expression=c.bind(ctx.pid)), member))
        .order_by(col("user_id", "u"))
    )
    if limit is not None:
        q = q.limit(c.bind(limit))
    return [(int(r[0]), str(r[1])) for r in ctx.run(c, q)]


def size(node: CohortNode, ctx: QueryContext) -> int:
    found = cohort_sets.users(node, ctx)
    if found is not None:
        return len(found)
    c = ctx.compiler()
    q = exp.select(exp.Count(this=exp.Star())).from_(
        exp.Subquery(this=c.cohort(node), alias=exp.TableAlias(this=exp.to_identifier("m")))
    )
    return int(ctx.run(c, q)[0][0])


def amplitude_definition(node: CohortNode) -> dict[str, Any]:
    """Our definition tree in the shape `GET /api/3/cohorts` clients expect (plus the native tree)."""
    return {
        "version": 3,
        "countGroup": {"name": "User", "is_computed": False},
        "cohortType": "UNIQUES",
        "revlens": node.model_dump(by_alias=True, exclude_none=True, mode="json"),
    }
