"""Following through what a real collector does to its session row: it keeps the row's
bookkeeping (``last_message_at``) current while recording, and when it crashes it leaves
its session ``active`` with no end and starts a new one on coming back.

Sessions are written into a scratch collector database (``write_collector_session`` at
once, ``write_live_session`` one receive millisecond per commit); the paper database is
another scratch database.
"""

from __future__ import annotations

import dataclasses
import threading
from contextlib import closing
from datetime import timedelta

import psycopg2
import pytest

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paper.follow import follow
from kalshi_pipeline.paper.follow_models import ModelSource
from kalshi_pipeline.paper.store import PaperStatus, PaperStore
from kalshi_pipeline.sources.collector_tail import CollectorTail, Cursor
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.live_writer import write_live_session
from kalshi_pipeline_tests.paper.following import (
    backtest_of,
    small_session,
    tiny_model,
)
from kalshi_pipeline_tests.paper.test_follow import (
    assert_equal_to_the_backtest,
    follow_and_stop,
)

SPEED = 30_000  # the small session's 18 hours in about two seconds
HANG_GUARD_S = 300  # a follower that never gets there fails the test instead of hanging it


@pytest.fixture(scope="module")
def model(tmp_path_factory, session):
    return tiny_model(tmp_path_factory.mktemp("model"), "taker", build_market_views(session))


class Stop(Exception):
    """Ends a follower from its ``say``."""


def test_a_row_whose_last_message_time_the_collector_keeps_current_is_followed_whole(
    collector, paper_db, session, model
):
    """Following begins while the row says the last message came a minute after the start
    (as a collector keeping it current says): the rows received later are the session's
    all the same, and the record equals the backtest of the closed session."""
    recording = dataclasses.replace(
        session.info,
        status="active",
        ended_at=None,
        last_message_at=session.info.started_at + timedelta(minutes=1),
    )
    with closing(psycopg2.connect(collector)) as conn:
        write_collector_session(conn, dataclasses.replace(session, info=recording))
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if line == "following session 1":  # the collector records on, then closes
            with closing(psycopg2.connect(collector)) as conn, conn.cursor() as cur:
                cur.execute(
                    "UPDATE rl_orderbook_sessions SET status = 'closed', ended_at = %s, "
                    "last_message_at = %s WHERE session_id = 1",
                    (session.info.ended_at, session.info.last_message_at),
                )
                conn.commit()

    with CollectorTail(collector) as tail, closing(PaperStore(paper_db)) as store:
        store.create()
        follow(tail, store, ModelSource(model_path=model).trader, session_id=1, say=say)
        stored = store.load(1)
    assert stored.status == PaperStatus.CLOSED
    assert_equal_to_the_backtest(stored.records, backtest_of(session, model))


class Crash(Exception):
    """Ends a live writer midway, as a collector's crash does (its session left active)."""


def test_a_collector_that_crashed_and_started_a_new_session_is_followed_to_it(
    collector, paper_db, session, model
):
    """Session 1 is left active with no end by a crashed collector; following it, the
    follower sees session 2 start, leaves session 1 where its rows ended (its records
    kept, nothing lost) and follows session 2 to its close."""
    crash_after = 200  # commits of session 1

    def crash(ms: int, wall_time: float, written=[]) -> None:  # noqa: B006
        written.append(ms)
        if len(written) == crash_after:
            raise Crash

    with closing(psycopg2.connect(collector)) as conn, pytest.raises(Crash):
        write_live_session(conn, session, SPEED, on_commit=crash)
    second = small_session(2, seed=4)  # started a day later
    lines: list[str] = []
    following = threading.Event()
    outcome: list[BaseException] = []

    def say(line: str) -> None:
        lines.append(line)
        if line == "following session 1":
            following.set()
        if line.startswith("session 2 closed"):
            raise Stop

    def run() -> None:
        with CollectorTail(collector) as tail, closing(PaperStore(paper_db)) as store:
            store.create()
            try:
                trader = ModelSource(model_path=model).trader
                follow(tail, store, trader, say=say, stall_seconds=0.5, poll_seconds=0.01)
            except BaseException as exc:  # noqa: BLE001 - handed to the test's thread
                outcome.append(exc)

    follower = threading.Thread(target=run, daemon=True)
    follower.start()
    assert following.wait(HANG_GUARD_S), lines
    with closing(psycopg2.connect(collector)) as conn:
        write_live_session(conn, second, SPEED)  # the collector, back, records session 2
    follower.join(HANG_GUARD_S)
    assert not follower.is_alive(), f"still following session 1: {lines}"
    assert len(outcome) == 1 and isinstance(outcome[0], Stop), (outcome, lines)

    (left,) = [line for line in lines if "is live now" in line]
    assert left.startswith("session 1 got no row for ")
    assert "session 2 is live now (the collector restarted)" in left
    assert lines.index(left) < lines.index("following session 2")
    store = PaperStore(paper_db)
    first = store.load(1)
    assert first.status == PaperStatus.FOLLOWING
    assert first.cursor == _last_ids(collector, 1)  # every row session 1 got, read
    assert first.records.decisions
    second_stored = store.load(2)
    assert second_stored.status == PaperStatus.CLOSED
    assert_equal_to_the_backtest(second_stored.records, backtest_of(second, model))
    store.close()


def test_a_session_closed_while_the_follower_was_stopped_is_finished_on_its_return(
    collector, paper_db, session, model
):
    """The follower of the live session was stopped (a crash) midway through session 1;
    the collector closed session 1 meanwhile. Started again to follow the live session,
    it first resumes session 1 and closes it, then waits for a live one."""
    with closing(psycopg2.connect(collector)) as conn:
        write_collector_session(conn, session)  # recorded to its close while away
    follow_and_stop(collector, paper_db, model, polls=7)
    assert PaperStore(paper_db).load(1).status == PaperStatus.FOLLOWING
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if line == "waiting for a live session":
            raise Stop

    with CollectorTail(collector) as tail, closing(PaperStore(paper_db)) as store:
        with pytest.raises(Stop):
            follow(tail, store, ModelSource(model_path=model).trader, say=say, limit=40)
        stored = store.load(1)
    assert lines[0].startswith("resuming session 1 after ")
    assert lines[-2].startswith("session 1 closed: 4 markets")
    assert stored.status == PaperStatus.CLOSED
    assert_equal_to_the_backtest(stored.records, backtest_of(session, model))


def _last_ids(collector: str, session_id: int) -> Cursor:
    with closing(psycopg2.connect(collector)) as conn, conn.cursor() as cur:
        ids = []
        for table in ("rl_orderbook_snapshots", "rl_orderbook_deltas", "rl_orderbook_trades"):
            cur.execute(
                f"SELECT COALESCE(max(id), 0) FROM {table} WHERE session_id = %s", (session_id,)
            )
            ids.append(cur.fetchone()[0])
    return Cursor(*ids)
