"""The SQL layer: property references, filters, segments and cohorts as sqlglot expressions.

Every value goes in as a named parameter (`$p0`, ...); only column names and function names from
fixed lists are written into the SQL. Queries are built as syntax trees and rendered per dialect
(`duckdb` today), so the same compiler can emit ClickHouse SQL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlglot import exp

from revlens.query.cohort_model import CohortNode, Performed
from revlens.query.models import EventSpec, Filter, Segment

# Properties kept in their own columns (fast, typed); everything else is read from the JSON column.
COLUMNS: dict[str, tuple[str, bool]] = {
    "$revenue": ("revenue", True),
    "product": ("product", False),
    # Stripe's raw amounts that charts sum most (minor units), as typed columns.
    "amount": ("amount", True),
    "amount_paid": ("amount_paid", True),
    "user_id": ("user_id", False),
    "event_type": ("event_type", False),
    "stripe_endpoint": ("endpoint_id", False),
}
ANY_EVENT = ("_all", "_active")
NUMBER = exp.DataType.build("DECIMAL(38, 9)")


def col(name: str, table: str | None = "e") -> exp.Column:
    return exp.column(name, table=table)


# sqlglot's condition builders copy every operand by default. Every expression here is built for one
# statement and not reused after it is generated, so these take their operands as they are: the
# copies were a tenth of the time of the quickest questions (docs/benchmarks.md).


def and_(*conditions: exp.Expression) -> exp.Expression:
    return exp.and_(*conditions, copy=False)


def or_(*conditions: exp.Expression) -> exp.Expression:
    return exp.or_(*conditions, copy=False)


def not_(condition: exp.Expression) -> exp.Expression:
    return exp.not_(condition, copy=False)


def paren(expression: exp.Expression) -> exp.Paren:
    return exp.paren(expression, copy=False)


class Compiler:
    """Builds expressions for one query, collecting its parameters."""

    def __init__(self, pid: int, dialect: str = "duckdb", now: datetime | None = None) -> None:
        self.pid = pid
        self.dialect = dialect
        self.params: dict[str, Any] = {}
        self.now = now or datetime.now(UTC).replace(tzinfo=None)
        self.cohort_loader: Any = None  # callable(cohort_id) -> CohortNode, set by the caller
        # callable() -> whether any user of the project has a first event earlier than their first
        # seen one, set by the caller; None: assume some have.
        self.first_moves: Any = None
        self._aliases = 0

    def bind(self, value: Any) -> exp.Placeholder:
        name = f"p{len(self.params)}"
        self.params[name] = value
        return exp.Placeholder(this=name)

    def sql(self, expression: exp.Expression) -> str:
        return expression.sql(dialect=self.dialect, copy=False)

    # -- properties -------------------------------------------------------------------------------

    def prop(self, key: str, numeric: bool = False, table: str = "e") -> exp.Expression:
        """A property as an expression: its column when materialized, else read from the JSON."""
        key = key.removeprefix("gp:")
        if key in COLUMNS:
            column, is_number = COLUMNS[key]
            ref: exp.Expression = col(column, table)
            if numeric and not is_number:
                return exp.TryCast(this=ref, to=NUMBER)
            return ref
        path = '$."' + key.replace('"', '\\"') + '"'
        text = exp.func("json_extract_string", col("properties", table), self.bind(path))
        return exp.TryCast(this=text, to=NUMBER) if numeric else text

    def label(self, key: str, table: str = "e") -> exp.Expression:
        """A property as a group-by label: text, '(none)' when missing."""
        return exp.func("coalesce", exp.cast(self.prop(key, table=table), "VARCHAR"), exp.Literal.string("(none)"))

    # -- filters ----------------------------------------------------------------------------------

    def condition(self, f: Filter, table: str = "e") -> exp.Expression:
        values = [str(v) for v in f.values]
        if f.op in ("is", "is not"):
            test: exp.Expression = (
                exp.In(
                    this=exp.cast(self.prop(f.key, table=table), "VARCHAR"), expressions=[self.bind(v) for v in values]
                )
                if values
                else exp.false()
            )
            return not_(exp.func("coalesce", test, exp.false())) if f.op == "is not" else test
        if f.op in ("contains", "does not contain"):
            text = exp.func("lower", exp.cast(self.prop(f.key, table=table), "VARCHAR"))
            parts = [exp.func("contains", text, exp.func("lower", self.bind(v))) for v in values]
            test = or_(*parts) if parts else exp.false()
            return not_(exp.func("coalesce", test, exp.false())) if f.op == "does not contain" else test
        if f.op in ("less", "less or equal", "greater", "greater or equal"):
            if len(values) != 1:
                raise ValueError(f"'{f.op}' takes one value")
            try:
                number = Decimal(values[0])
            except ArithmeticError:
                raise ValueError(f"'{f.op}' needs a number, got {values[0]!r}") from None
            left = self.prop(f.key, numeric=True, table=table)
            right = exp.cast(self.bind(str(number)), NUMBER)
            cls = {"less": exp.LT, "less or equal": exp.LTE, "greater": exp.GT, "greater or equal": exp.GTE}[f.op]
            return cls(this=left, expression=right)
        # set is / set is not: an array property holding any of the values
        path = '$."' + f.key.removeprefix("gp:").replace('"', '\\"') + '"'
        array = exp.TryCast(
            this=exp.func("json_extract", col("properties", table), self.bind(path)),
            to=exp.DataType.build("VARCHAR[]"),
        )
        test = exp.func("list_has_any", array, exp.cast(self.bind(values), exp.DataType.build("VARCHAR[]")))
        return not_(exp.func("coalesce", test, exp.false())) if f.op == "set is not" else test

    def event_match(self, spec: EventSpec, table: str = "e") -> exp.Expression:
        parts: list[exp.Expression] = [exp.EQ(this=col("pid", table), expression=self.bind(self.pid))]
        if spec.event_type not in ANY_EVENT:
            parts.append(exp.EQ(this=col("event_type", table), expression=self.bind(spec.event_type)))
        parts += [self.condition(f, table) for f in spec.filters]
        return and_(*parts)

    def time_range(
        self, start: datetime, end: datetime, column: str = "local_time", table: str = "e"
    ) -> exp.Expression:
        c = col(column, table)
        return and_(exp.GTE(this=c, expression=self.bind(start)), exp.LT(this=c, expression=self.bind(end)))

    def set_period(self, grain: str, since: datetime, until: datetime, table: str = "d") -> exp.Expression:
        """Rows of `user_sets` (store/user_sets.py) of one grain whose period starts in [since, until)."""
        grain_is = exp.EQ(this=col("grain", table), expression=self.bind(grain))
        return and_(grain_is, self.time_range(since, until, column="start", table=table))

    def segment(self, seg: Segment, table: str = "e") -> list[exp.Expression]:
        parts = [self.condition(f, table) for f in seg.filters]
        for cohort_id in seg.cohorts:
            parts.append(col("user_idx", table).isin(query=self.cohort(self._load_cohort(cohort_id))))
        for cohort_id in seg.not_cohorts:
            # An event without a user is in no cohort and out of none: "is not" drops it, as "is" does
            # (a bare NOT IN would keep it exactly when the cohort is empty).
            parts.append(exp.Not(this=exp.Is(this=col("user_idx", table), expression=exp.null())))
            parts.append(not_(col("user_idx", table).isin(query=self.cohort(self._load_cohort(cohort_id)))))
        return parts

    def _load_cohort(self, cohort_id: int) -> CohortNode:
        if self.cohort_loader is None:
            raise ValueError("cohorts are not available here")
        node: CohortNode = self.cohort_loader(cohort_id)
        return node

    # -- cohorts ----------------------------------------------------------------------------------

    def all_users(self) -> exp.Select:
        return (
            exp.select(col("user_idx", "u"))
            .from_(exp.to_table("users").as_("u"))
            .where(exp.EQ(this=col("pid", "u"), expression=self.bind(self.pid)))
        )

    def cohort(self, node: CohortNode) -> exp.Query:
        """The set of users (`user_idx`) a cohort definition describes, as a query.

        Every set operation is wrapped in its own sub-select, so nested `not` / `all` / `any` keep
        their meaning (SQL gives INTERSECT precedence over UNION and EXCEPT in an unparenthesized chain).
        """
        if node.performed is not None:
            return self._performed(node.performed)
        if node.not_ is not None:
            return self._wrapped(exp.except_(self.all_users(), self.cohort(node.not_), distinct=True))
        children = [self.cohort(child) for child in (node.all or node.any or [])]
        if len(children) == 1:
            return children[0]
        result = children[0]
        for child in children[1:]:
            result = (
                exp.intersect(result, child, distinct=True) if node.all else exp.union(result, child, distinct=True)
            )
        return self._wrapped(result)

    def _wrapped(self, query: exp.Query) -> exp.Select:
        self._aliases += 1
        alias = exp.TableAlias(this=exp.to_identifier(f"c{self._aliases}"))
        return exp.select(exp.column("user_idx")).from_(exp.Subquery(this=query, alias=alias))

    def _with_moved_first_times(self, query: exp.Select) -> tuple[exp.Select, exp.Expression]:
        """`query` joined with the users whose first event moved earlier after they were created
        (their events carry the later first seen time), and the first-event time to use per event."""
        moved = (
            exp.select(col("user_idx", "m").as_("moved_idx"), col("first_time", "m").as_("moved_first"))
            .from_(exp.to_table("users").as_("m"), copy=False)
            .where(
                and_(
                    exp.EQ(this=col("pid", "m"), expression=self.bind(self.pid)),
                    exp.LT(this=col("first_time", "m"), expression=col("first_seen_time", "m")),
                ),
                copy=False,
            )
        )
        query = query.join(
            exp.Subquery(this=moved, alias=exp.TableAlias(this=exp.to_identifier("mv"))),
            on=exp.EQ(this=col("moved_idx", "mv"), expression=col("user_idx")),
            join_type="left",
            copy=False,
        )
        return query, exp.func("coalesce", col("moved_first", "mv"), col("user_first_time"))

    def _performed(self, leaf: Performed) -> exp.Select:
        spec = EventSpec(event_type=leaf.event_type, filters=leaf.filters)
        where = [self.event_match(spec), exp.Not(this=exp.Is(this=col("user_idx"), expression=exp.null()))]
        query = exp.select(col("user_idx")).from_(exp.to_table("events").as_("e"))
        timing = leaf.timing
        if timing.kind == "during" and timing.start and timing.end:
            start = datetime.combine(timing.start, datetime.min.time())
            end = datetime.combine(timing.end, datetime.min.time()) + timedelta(days=1)
            where.append(self.time_range(start, end))
        elif timing.kind == "last_days" and timing.days:
            where.append(exp.GTE(this=col("time"), expression=self.bind(self.now - timedelta(days=timing.days))))
            where.append(exp.LTE(this=col("time"), expression=self.bind(self.now)))
        elif timing.kind == "within_first_days" and timing.days:
            # Every event carries its user's first seen time; for the few users whose first event
            # moved earlier since, `users.first_time` has the current one. Without any, the join is
            # left out (it costs about 6 of 31 ms on the guide's 7-day cohort).
            first: exp.Expression = col("user_first_time")
            if self.first_moves is None or self.first_moves():
                query, first = self._with_moved_first_times(query)
            window_end = exp.Add(
                this=first, expression=exp.func("to_microseconds", self.bind(timing.days * 86_400_000_000))
            )
            where.append(exp.LT(this=col("time"), expression=window_end))
        measure = leaf.measure
        aggregate: exp.Expression = (
            exp.func(
                "coalesce",
                exp.func("sum", self.prop(measure.property, numeric=True)),
                exp.cast(exp.Literal.number(0), NUMBER),
            )
            if measure.kind == "sum" and measure.property
            else exp.Count(this=exp.Star())
        )
        cls = {">=": exp.GTE, ">": exp.GT, "=": exp.EQ, "<": exp.LT, "<=": exp.LTE, "!=": exp.NEQ}[measure.op]
        having = cls(this=aggregate, expression=exp.cast(self.bind(str(measure.value)), NUMBER))
        return query.where(and_(*where)).group_by(col("user_idx")).having(having)
