"""Saved dashboards: a name and a list of charts per project, in the `dashboards` table.

Every project gets the "Revenue" starter dashboard (and its big-spenders cohort) the first time its
dashboards are listed, so it fills as soon as events arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson
from pydantic import TypeAdapter, ValidationError

from revlens.errors import HTTPError
from revlens.store.duckdb_store import DuckDBStore, fetch_one
from revlens.store.models import Project
from revlens.web.charts import Chart
from revlens.web.starter import BIG_SPENDERS, BIG_SPENDERS_DEFINITION, STARTER_NAME, starter_charts

MAX_CHARTS = 40
_CHARTS = TypeAdapter(list[Chart])


@dataclass
class Board:
    id: int
    name: str
    charts: list[Chart]
    updated_at: datetime

    def payload(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "charts": [c.model_dump(mode="json", exclude_none=True) for c in self.charts],
            "updated_at": self.updated_at.isoformat(),
        }


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def parse_charts(raw: Any) -> list[Chart]:
    """Charts from a request body; 400 naming the first wrong field."""
    try:
        charts = _CHARTS.validate_python(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise HTTPError(400, f"invalid chart at '{where}': {first['msg']}") from None
    if len(charts) > MAX_CHARTS:
        raise HTTPError(400, f"at most {MAX_CHARTS} charts on a dashboard")
    if len({c.id for c in charts}) != len(charts):
        raise HTTPError(400, "two charts have the same id")
    return charts


def _rows(store: DuckDBStore, pid: int, board_id: int | None = None) -> list[Board]:
    sql = "SELECT id, name, charts, updated_at FROM dashboards WHERE pid = ?"
    params: list[Any] = [pid]
    if board_id is not None:
        sql += " AND id = ?"
        params.append(board_id)
    return [
        Board(int(r[0]), str(r[1]), _CHARTS.validate_python(orjson.loads(r[2])), r[3])
        for r in store.execute(sql + " ORDER BY id", params)
    ]


def _starter_cohort(store: DuckDBStore, project: Project) -> int:
    for row in store.cohorts(project.pid):
        if row["name"] == BIG_SPENDERS:
            return int(row["id"])
    return store.save_cohort(
        project.pid, BIG_SPENDERS, "Starter dashboard", orjson.dumps(BIG_SPENDERS_DEFINITION).decode()
    )


def boards(store: DuckDBStore, project: Project) -> list[Board]:
    """The project's dashboards, creating the starter one on first use."""
    found = _rows(store, project.pid)
    if found:
        return found
    charts = starter_charts(project.currency, _starter_cohort(store, project))
    save(store, project.pid, STARTER_NAME, charts, only_if_none=True)
    return _rows(store, project.pid)


def board(store: DuckDBStore, project: Project, board_id: int) -> Board:
    found = [b for b in boards(store, project) if b.id == board_id]
    if not found:
        raise HTTPError(404, "no such dashboard")
    return found[0]


def save(
    store: DuckDBStore,
    pid: int,
    name: str,
    charts: list[Chart],
    board_id: int | None = None,
    only_if_none: bool = False,
) -> int:
    """Create (no `board_id`) or replace a dashboard; returns its id."""
    text = orjson.dumps([c.model_dump(mode="json", exclude_none=True) for c in charts]).decode()
    now = _now()
    with store.transaction() as cur:
        if board_id is None:
            row = fetch_one(
                cur.execute("SELECT count(*), coalesce(max(id), 0) + 1 FROM dashboards WHERE pid = ?", [pid])
            )
            assert row is not None
            if only_if_none and row[0]:
                return 1
            board_id = int(row[1])
            cur.execute("INSERT INTO dashboards VALUES (?, ?, ?, ?, ?, ?)", [pid, board_id, name, text, now, now])
        else:
            updated = cur.execute(
                "UPDATE dashboards SET name = ?, charts = ?, updated_at = ? WHERE pid = ? AND id = ? RETURNING id",
                [name, text, now, pid, board_id],
            ).fetchall()
            if not updated:
                raise HTTPError(404, "no such dashboard")
    return board_id


def delete(store: DuckDBStore, pid: int, board_id: int) -> None:
    with store.transaction() as cur:
        found = cur.execute("DELETE FROM dashboards WHERE pid = ? AND id = ? RETURNING id", [pid, board_id]).fetchall()
    if not found:
        raise HTTPError(404, "no such dashboard")
