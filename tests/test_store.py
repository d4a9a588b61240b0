"""The DuckDB store: checkpoints under a steady write load, and the totals it keeps at ingest."""

from __future__ import annotations

from collections import defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from pyroaring import BitMap

from revlens.ingest import loader as loader_module
from revlens.ingest.loader import Counters, Loader
from revlens.normalize import AnalyticsEvent
from revlens.query import params, retention
from revlens.query.context import QueryContext
from revlens.store.duckdb_store import DB_FILE, DuckDBStore
from revlens.store.models import STORED, Delivery, LoadBatch
from revlens.store.writes import DAILY_TOTALS

THRESHOLD_BYTES = 256 * 1024


def _batch(pid: int, start: int, size: int) -> LoadBatch:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    deliveries, events = [], []
    for n in range(start, start + size):
        when = t0 + timedelta(seconds=n)
        event_id = f"evt_{n:08d}"
        deliveries.append(
            Delivery(pid, event_id, "we_1", "payment_intent.succeeded", None, None, STORED, n, when, when)
        )
        event = AnalyticsEvent(
            insert_id=event_id,
            event_type="[Stripe] payment_intent.succeeded",
            time=when,
            local_time=when.replace(tzinfo=None),
            user_id=f"user_{n % 97}",
            user_rank=0,
            customer=None,
            revenue=Decimal("12.50"),
            product="Pro plan",
            fx_missing=False,
            properties={"description": "x" * 200, "n": str(n)},
        )
        events.append((pid, "we_1", event))
    # A repeat of the first delivery: the load then also updates rows (attempts), as real loads do.
    return LoadBatch(end=start + size, deliveries=deliveries, events=events, repeats={(pid, "evt_00000000"): 1})


def test_reads_on_other_threads_do_not_stop_checkpoints(tmp_path: Path) -> None:
    """A read that fetches one row must not leave a transaction open: DuckDB skips the automatic
    checkpoint after a write with updates while any other transaction is open, and the write-ahead
    log (and the memory holding its data) would grow for as long as the server runs."""
    store = DuckDBStore(tmp_path)
    writer = ThreadPoolExecutor(max_workers=1)  # one long-lived loader thread, as in the server
    try:
        store.cursor().execute(f"SET checkpoint_threshold = '{THRESHOLD_BYTES}B'")
        project, _ = store.create_project("p", "USD", "UTC")
        wal = tmp_path / f"{DB_FILE}.wal"
        sizes = []
        for step in range(40):
            writer.submit(store.load, _batch(project.pid, step * 200, 200)).result()
            # Reads on this (long-lived) thread's cursor, as the request thread does between loads.
            store.log_position()
            store.delivery("evt_00000001")
            sizes.append(wal.stat().st_size if wal.exists() else 0)
        assert store.event_count(project.pid) == 40 * 200
        # 40 loads write several MB of log; checkpoints keep it near the threshold.
        assert max(sizes) < 4 * THRESHOLD_BYTES, sizes
    finally:
        writer.shutdown()
        store.close()


def _daily_totals(store: DuckDBStore) -> list[tuple[object, ...]]:
    return store.execute("SELECT * FROM daily_totals ORDER BY ALL")


def _recomputed(store: DuckDBStore) -> list[tuple[object, ...]]:
    return store.execute(f"SELECT * FROM ({DAILY_TOTALS.format(source='events', where='')}) ORDER BY ALL")


def test_daily_totals_follow_every_write(tmp_path: Path) -> None:
    """Loads (with duplicates), re-converted events and reprocess all leave the daily totals equal
    to totals computed from the events themselves; re-converted events keep their user."""
    store = DuckDBStore(tmp_path)
    try:
        project, _ = store.create_project("p", "USD", "UTC")
        store.load(_batch(project.pid, 0, 300))
        store.load(_batch(project.pid, 200, 300))  # 100 repeats: counted once
        assert store.event_count(project.pid) == 500
        assert _daily_totals(store) == _recomputed(store)
        assert sum(r[4] for r in _daily_totals(store)) == 500

        changed = []
        for pid, endpoint, event in _batch(project.pid, 0, 50).events:
            changed.append((pid, endpoint, replace(event, revenue=Decimal("99.999"), product=None)))
        store.replace_events(changed)
        assert _daily_totals(store) == _recomputed(store)
        assert store.execute("SELECT count(*) FROM events WHERE user_idx IS NULL") == [(0,)]
        assert store.execute("SELECT sum(revenue) FROM daily_totals") == [
            (Decimal("99.999") * 50 + Decimal("12.5") * 450,)
        ]

        store.replace_all(_batch(project.pid, 1000, 10))
        assert _daily_totals(store) == _recomputed(store)
        assert sum(r[4] for r in _daily_totals(store)) == 10
    finally:
        store.close()


def test_daily_totals_built_for_an_older_data_folder(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    project, _ = store.create_project("p", "USD", "UTC")
    store.load(_batch(project.pid, 0, 100))
    with store.transaction() as cur:
        cur.execute("DELETE FROM daily_totals")  # as if made before the table existed
    store.close()
    store = DuckDBStore(tmp_path)
    try:
        assert _daily_totals(store) == _recomputed(store) != []
    finally:
        store.close()


def _spread(batch: LoadBatch) -> LoadBatch:
    """The batch's events over three days and three products (one of them none), some without a user."""
    events = []
    for i, (pid, endpoint, event) in enumerate(batch.events):
        when = event.time + timedelta(hours=7 * i)
        product = ("Pro plan", "Team plan", None)[i % 3]
        user = None if i % 11 == 0 else event.user_id
        events.append(
            (
                pid,
                endpoint,
                replace(event, time=when, local_time=when.replace(tzinfo=None), product=product, user_id=user),
            )
        )
    return replace(batch, events=events)


def _user_sets(store: DuckDBStore) -> dict[tuple[object, ...], set[int]]:
    out: dict[tuple[object, ...], set[int]] = defaultdict(set)
    rows = store.execute("SELECT pid, event_type, grain, start, product, users FROM user_sets")
    for pid, event_type, grain, start, product, blob in rows:
        out[(pid, event_type, grain, start, product)] |= set(BitMap.deserialize(blob))
    return dict(out)


def _user_sets_from_events(store: DuckDBStore) -> dict[tuple[object, ...], set[int]]:
    """The same sets, straight from the events (independently of store/user_sets.py)."""
    out: dict[tuple[object, ...], set[int]] = defaultdict(set)
    rows = store.execute(
        "SELECT pid, event_type, date_trunc('day', local_time), date_trunc('week', local_time), "
        "date_trunc('month', local_time), product, user_idx FROM events WHERE user_idx IS NOT NULL"
    )
    for pid, event_type, day, week, month, product, user in rows:
        for grain, start in (("day", day), ("week", week), ("month", month)):
            out[(pid, event_type, grain, start, product or "(none)")].add(user)
            out[(pid, event_type, grain, start, None)].add(user)
    return dict(out)


def test_user_sets_follow_every_write(tmp_path: Path) -> None:
    """Loads (each appending its own small sets), compaction, re-converted events, reprocess and an
    older data folder all leave the day, week and month sets equal to the users of the events."""
    store = DuckDBStore(tmp_path)
    try:
        project, _ = store.create_project("p", "USD", "UTC")
        for start in range(0, 300, 30):
            store.load(_spread(_batch(project.pid, start, 30)))
        store.load(_spread(_batch(project.pid, 200, 30)))  # repeats add nothing
        expected = _user_sets_from_events(store)
        assert len(expected) > 9 and _user_sets(store) == expected
        rows_before = store.execute("SELECT count(*) FROM user_sets")[0][0]

        assert store.compact_summaries() > 0
        assert _user_sets(store) == expected
        assert store.execute("SELECT count(*) FROM user_sets")[0][0] < rows_before
        assert store.compact_summaries() == 0  # nothing left above the threshold

        changed = [(p, e, replace(ev, revenue=Decimal("1"))) for p, e, ev in _spread(_batch(project.pid, 0, 30)).events]
        store.replace_events(changed)
        assert _user_sets(store) == expected

        store.replace_all(_spread(_batch(project.pid, 1000, 40)))
        assert _user_sets(store) == _user_sets_from_events(store) != expected

        with store.transaction() as cur:
            cur.execute("DELETE FROM user_sets")  # as if made before the table existed
    finally:
        store.close()
    store = DuckDBStore(tmp_path)
    try:
        assert _user_sets(store) == _user_sets_from_events(store) != {}
    finally:
        store.close()


def _stale_first_times(store: DuckDBStore) -> list[tuple[object, ...]]:
    """Events whose first-event time as queries read it (`users.first_time` for users whose first
    event moved earlier than their first seen one, else the event's `user_first_time`) is not their
    user's first event; or whose `user_first_time` is not their user's first seen time."""
    return store.execute(
        "SELECT e.insert_id, e.user_first_time, f.first FROM events e "
        "LEFT JOIN (SELECT pid, user_idx, min(time) AS first FROM events GROUP BY ALL) f "
        "ON f.pid = e.pid AND f.user_idx = e.user_idx "
        "LEFT JOIN users u ON u.pid = e.pid AND u.user_idx = e.user_idx "
        "WHERE CASE WHEN u.first_time < u.first_seen_time THEN u.first_time ELSE e.user_first_time END "
        "IS DISTINCT FROM f.first OR e.user_first_time IS DISTINCT FROM u.first_seen_time ORDER BY 1"
    )


def test_user_first_time_follows_every_write(tmp_path: Path) -> None:
    """Every event carries its user's first seen time; users whose first event moves earlier later
    (history arriving newest first, as a backfill does; one event a microsecond early) keep the
    earlier one in `users.first_time`, and together they give every event its user's true first
    event, also after re-conversion, reprocess and for an older data folder."""
    store = DuckDBStore(tmp_path)
    try:
        project, _ = store.create_project("p", "USD", "UTC")
        for start in (600, 300, 0):  # later loads bring earlier events of some of the 97 users
            store.load(_spread(_batch(project.pid, start, 300)))
        assert _stale_first_times(store) == []
        assert store.execute("SELECT count(*) FROM users WHERE first_time < first_seen_time")[0][0] > 10

        store.replace_all(_spread(_batch(project.pid, 0, 300)))  # in one load: nobody moves
        assert store.execute("SELECT count(*) FROM users WHERE first_time <> first_seen_time") == [(0,)]
        assert _stale_first_times(store) == []
        # One user's new first event, a microsecond before the old one: only that user moves.
        [(old_first,)] = store.execute("SELECT first_time FROM users WHERE user_id = 'user_3'")
        new_first = old_first - timedelta(microseconds=1)
        pid, endpoint, event = _batch(project.pid, 5000, 1).events[0]
        event = replace(event, user_id="user_3", time=new_first.replace(tzinfo=UTC), local_time=new_first)
        store.load(replace(_batch(project.pid, 5000, 1), events=[(pid, endpoint, event)]))
        assert store.execute("SELECT user_id FROM users WHERE first_time < first_seen_time") == [("user_3",)]
        assert _stale_first_times(store) == []

        changed = [(p, e, replace(ev, revenue=Decimal("1"))) for p, e, ev in _spread(_batch(project.pid, 0, 30)).events]
        store.replace_events(changed)
        assert _stale_first_times(store) == []

        with store.transaction() as cur:
            cur.execute("ALTER TABLE events DROP COLUMN user_first_time")  # as if made before the columns
            cur.execute("ALTER TABLE users DROP COLUMN first_seen_time")
    finally:
        store.close()
    store = DuckDBStore(tmp_path)
    try:
        assert store.execute("SELECT count(user_first_time) FROM events") == [(301 - 28,)]  # 28 without a user
        assert _stale_first_times(store) == []
    finally:
        store.close()


TYPES = ("[Stripe] payment_intent.succeeded", "[Stripe] charge.refunded", "[Stripe] invoice.paid")


def _mixed(batch: LoadBatch) -> LoadBatch:
    """`_spread`, with three event types taking turns."""
    spread = _spread(batch)
    events = [(p, e, replace(ev, event_type=TYPES[i % 3])) for i, (p, e, ev) in enumerate(spread.events)]
    return replace(spread, events=events)


def _rows(store: DuckDBStore) -> list[tuple[object, ...]]:
    return store.execute("SELECT * EXCLUDE (properties), CAST(properties AS VARCHAR) FROM events ORDER BY insert_id")


def _physical(store: DuckDBStore, lo: datetime, hi: datetime, pid: int | None = None) -> list[tuple[object, ...]]:
    """(type, time) of the events in [lo, hi) (of one project, or all), in the order they are stored."""
    return store.execute(
        "SELECT event_type, time FROM events WHERE local_time >= $lo AND local_time < $hi "
        "AND ($pid IS NULL OR pid = $pid) ORDER BY rowid",
        {"lo": lo, "hi": hi, "pid": pid},
    )


def test_closed_months_are_rewritten_in_event_type_order(tmp_path: Path) -> None:
    """A closed month is rewritten sorted by event type and time: the same rows, summaries and
    answers; open months and other projects' months are left alone; a month that grows by a tenth
    is rewritten again; reprocess forgets what was rewritten."""
    store = DuckDBStore(tmp_path)
    try:
        project, _ = store.create_project("p", "USD", "UTC")
        other, _ = store.create_project("q", "USD", "UTC")
        store.load(_mixed(_batch(project.pid, 0, 300)))  # 2026-01-01 .. 2026-03-29, every 7 hours
        store.load(_mixed(_batch(other.pid, 300, 30)))  # January only
        jan, feb = datetime(2026, 1, 1), datetime(2026, 2, 1)
        rows, totals, sets = _rows(store), _daily_totals(store), _user_sets(store)
        assert _physical(store, jan, feb) != sorted(_physical(store, jan, feb))  # arrival order

        now = datetime(2026, 3, 2)  # January is closed (ended more than two days ago), February not
        done = [store.cluster_closed_month(now), store.cluster_closed_month(now)]
        assert [(pid, month) for pid, month, _ in filter(None, done)] == [(project.pid, jan), (other.pid, jan)]
        assert done[0] is not None and done[0][2] == len(_physical(store, jan, feb)) - 30 > 100
        assert store.cluster_closed_month(now) is None
        assert _rows(store) == rows and _daily_totals(store) == totals and _user_sets(store) == sets
        ordered = _physical(store, jan, feb, project.pid)
        assert ordered == sorted(ordered) and len({t for t, _ in ordered}) == 3
        february = _physical(store, feb, datetime(2026, 3, 1))
        assert february != sorted(february)  # still open: untouched

        # Late January events: under a tenth more is left appended; a tenth more is rewritten again.
        late = _mixed(_batch(project.pid, 1000, 10))
        store.load(late)
        assert store.cluster_closed_month(now) is None
        store.load(_mixed(_batch(project.pid, 2000, 10)))
        again = store.cluster_closed_month(now)
        assert again is not None and again[:2] == (project.pid, jan) and again[2] == done[0][2] + 20
        ordered = _physical(store, jan, feb, project.pid)
        assert ordered == sorted(ordered)
        assert _daily_totals(store) == _recomputed(store)

        store.replace_all(_mixed(_batch(project.pid, 0, 300)))
        assert store.execute("SELECT count(*) FROM clustered_months") == [(0,)]
        assert store.cluster_closed_month(now) is not None
    finally:
        store.close()


def test_loader_rewrites_one_settled_closed_month_per_round(tmp_path: Path) -> None:
    """The loader's periodic round (with the day-set merge) rewrites at most one closed month, only
    one that no event arrived for since the previous round (not a month still being filled), and
    none in a round that stored many deliveries."""
    store = DuckDBStore(tmp_path / "data")
    try:
        project, _ = store.create_project("p", "USD", "UTC")
        store.load(_mixed(_batch(project.pid, 0, 300)))  # January to March 2026: closed by now
        loader = Loader(store, tmp_path / "log", Counters())

        def clustered() -> list[str]:
            return [f"{m:%m}" for (m,) in store.execute("SELECT month FROM clustered_months ORDER BY 1")]

        loader._compact()  # first round: only looks
        assert clustered() == []
        store.load(_mixed(_batch(project.pid, 1000, 5)))  # more January events arrive meanwhile
        loader._compact()  # January changed: February, unchanged since the first round, goes first
        assert clustered() == ["02"]
        loader._compact()
        assert clustered() == ["01", "02"]
        loader.totals["stored"] += 5_000  # a busy round (the loader stored 5,000 deliveries): no rewrite
        loader._compact()
        assert clustered() == ["01", "02"]
        loader._compact()
        loader._compact()
        assert clustered() == ["01", "02", "03"]
    finally:
        store.close()


def test_loader_rewrites_a_month_after_many_busy_rounds(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that is never quiet still gets its closed months rewritten: after STARVED_ROUNDS busy
    rounds in a row, the next round rewrites one anyway."""
    monkeypatch.setattr(loader_module, "STARVED_ROUNDS", 3)
    store = DuckDBStore(tmp_path / "data")
    try:
        project, _ = store.create_project("p", "USD", "UTC")
        store.load(_mixed(_batch(project.pid, 0, 300)))  # January to March 2026: closed by now
        loader = Loader(store, tmp_path / "log", Counters())
        loader._compact()  # a quiet first round: only looks
        rewritten = []
        for _ in range(5):
            loader.totals["stored"] += 5_000  # every round busy from here on
            loader._compact()
            rewritten.append(store.execute("SELECT count(*) FROM clustered_months")[0][0])
        assert rewritten == [0, 0, 0, 1, 1]
    finally:
        store.close()


def test_user_set_reads_a_column_of_ids_as_a_bitmap(tmp_path: Path) -> None:
    store = DuckDBStore(tmp_path)
    try:
        ids = [3, 1, 70_000, 2**31 - 1, 3]
        sql = "SELECT x FROM (SELECT unnest($ids) AS x)"
        assert store.user_set(sql, {"ids": ids}) == BitMap(ids)
        assert store.user_set(sql, {"ids": []}) == BitMap()
        with pytest.raises(ValueError, match="NULL"):
            store.user_set(sql, {"ids": [1, None]})
    finally:
        store.close()


def test_replaced_events_register_their_users(tmp_path: Path) -> None:
    """A re-converted event that now names another user (identity links changed) makes that user
    known and moves their first event time earlier, as a load would: retention, whose array form
    skips users first seen after its range, still counts them."""
    store = DuckDBStore(tmp_path)
    try:
        project, _ = store.create_project("p", "USD", "UTC")
        batch = _batch(project.pid, 0, 2)
        late, early = (
            replace(e, time=e.time + timedelta(days=d), local_time=e.local_time + timedelta(days=d))
            for e, d in (
                (batch.events[0][2], 19),
                (batch.events[1][2], 4),
            )
        )
        store.load(
            replace(
                batch,
                events=[
                    (project.pid, "we_1", replace(late, user_id="u1")),
                    (project.pid, "we_1", replace(early, user_id="u2")),
                ],
            )
        )
        store.replace_events(
            [(project.pid, "we_1", replace(early, user_id="u1")), (project.pid, "we_1", replace(late, user_id="u3"))]
        )
        first = dict(store.execute("SELECT user_id, first_time FROM users WHERE pid = ?", [project.pid]))
        assert first["u1"] == early.time.replace(tzinfo=None)
        assert "u3" in first
        assert store.execute("SELECT count(*) FROM events WHERE user_idx IS NULL") == [(0,)]

        ctx = QueryContext(store=store, pid=project.pid, timezone="UTC", now=datetime(2026, 3, 1))
        asked = params.retention({"se": "_all", "re": "_all", "start": "20260101", "end": "20260110", "intervals": "1"})
        for arrays in (False, True):
            got = retention.run(asked, ctx, arrays=arrays)["series"][0]["values"]
            assert {day: [c["count"] for c in cells] for day, cells in got.items()} == {"2026-01-05": [1, 1]}
    finally:
        store.close()


def test_user_ids_stay_dense_across_loads(tmp_path: Path) -> None:
    """Compact user ids are 1..n in order of arrival, with no gap for the known users of a batch:
    queries size per-user arrays by the largest id."""
    store = DuckDBStore(tmp_path)
    try:
        project, _ = store.create_project("p", "USD", "UTC")
        events = _batch(project.pid, 0, 6).events
        users = ["a", "b", "b", "c", "a", "d"]
        named = [(pid, endpoint, replace(e, user_id=u)) for (pid, endpoint, e), u in zip(events, users, strict=True)]
        for lo, hi in ((0, 2), (2, 4), (4, 6)):  # a b | b c | a d
            store.load(replace(_batch(project.pid, lo, hi - lo), events=named[lo:hi], repeats={}))
        ids = store.execute("SELECT user_id, user_idx FROM users WHERE pid = ? ORDER BY user_idx", [project.pid])
        assert ids == [("a", 1), ("b", 2), ("c", 3), ("d", 4)]
        assert store.execute("SELECT count(*) FROM events WHERE user_idx IS NULL OR user_idx < 1") == [(0,)]
    finally:
        store.close()
