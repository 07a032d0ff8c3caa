"""Following a session: what the follower records equals the backtest of the session's
batch views, whether it follows after the fact or live, through stalls, lost
connections, a stop and a restart, and from one session to the next.

Sessions are written into a scratch collector database (``write_collector_session`` at
once, ``write_live_session`` one receive millisecond per commit from a thread); the paper
database is another scratch database. Faults are real: the server ends the follower's
connections (``pg_terminate_backend``).
"""

from __future__ import annotations

import dataclasses
import threading
import time
from contextlib import closing

import psycopg2
import pytest

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paper.follow import follow
from kalshi_pipeline.paper.follow_models import ModelSource
from kalshi_pipeline.paper.follow_replay import ResumeMismatch
from kalshi_pipeline.paper.records import Records, compare
from kalshi_pipeline.paper.store import PaperStatus, PaperStore
from kalshi_pipeline.sources.collector_tail import CollectorTail
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.live_writer import write_live_session
from kalshi_pipeline_tests.paper.following import (
    backtest_of,
    small_session,
    tiny_model,
)

SPEED = 30_000  # the small session's 18 hours in about two seconds


@pytest.fixture(scope="module")
def models(tmp_path_factory, session):
    root, views = tmp_path_factory.mktemp("models"), build_market_views(session)
    return {mode: tiny_model(root / mode, mode, views) for mode in ("taker", "maker")}


def assert_equal_to_the_backtest(stored: Records, backtest: Records) -> None:
    assert compare(stored, backtest) == []
    for kind in ("decisions", "outcomes", "fills"):
        assert len(getattr(stored, kind)) == len(getattr(backtest, kind)), kind
    assert {m.market: m for m in stored.markets} == {m.market: m for m in backtest.markets}


def run_follow(collector: str, paper_db: str, model, lines: list[str], **options) -> None:
    with CollectorTail(collector) as tail, closing(PaperStore(paper_db, say=lines.append)) as store:
        store.create()
        follow(tail, store, ModelSource(model_path=model).trader, say=lines.append, **options)


def write_live(collector: str, *sessions, on_commit=None) -> threading.Thread:
    """A thread writing ``sessions`` live, one after another."""

    def write() -> None:
        with closing(psycopg2.connect(collector)) as conn:
            for one in sessions:
                write_live_session(conn, one, SPEED, on_commit=on_commit)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


@pytest.mark.parametrize(("mode", "limit"), [("taker", 20_000), ("maker", 40)])
def test_following_a_closed_session_records_what_the_backtest_records(
    collector, paper_db, session, models, mode, limit
):
    """After the fact: the whole session is there; with a small read limit it is caught
    up in many reads, none splitting a millisecond."""
    with closing(psycopg2.connect(collector)) as conn:
        write_collector_session(conn, session)
    lines: list[str] = []
    run_follow(collector, paper_db, models[mode], lines, session_id=1, limit=limit)
    stored = PaperStore(paper_db).load(1)
    assert stored.status == PaperStatus.CLOSED
    assert_equal_to_the_backtest(stored.records, backtest_of(session, models[mode]))
    polls = PaperStore(paper_db).polls(1)
    assert len(polls) > (1 if limit == 20_000 else 5)
    assert "session 1 closed: 4 markets" in lines[-1]


def test_a_session_followed_live_through_lost_connections_equals_the_backtest(
    collector, paper_db, session, models
):
    """The server ends the follower's collector and paper connections now and then while
    the session is written live; nothing is lost or doubled."""
    lines: list[str] = []
    commits = []

    def kill_now_and_then(ms: int, wall_time: float) -> None:
        commits.append(ms)
        if len(commits) % 60 == 30:
            _terminate(paper_db, "kalshi-pipeline paper")
        if len(commits) % 60 == 0:
            _terminate(collector, "kalshi-pipeline")

    writer = write_live(collector, session, on_commit=kill_now_and_then)
    run_follow(collector, paper_db, models["maker"], lines, once=True)
    writer.join()
    stored = PaperStore(paper_db).load(1)
    assert_equal_to_the_backtest(stored.records, backtest_of(session, models["maker"]))
    assert any(line.startswith("paper database unreachable, retrying in") for line in lines)
    assert any("connection failed or lost while reading session 1" in line for line in lines)


def _terminate(url: str, application: str) -> None:
    with closing(psycopg2.connect(url)) as admin:
        admin.autocommit = True
        with admin.cursor() as cur:
            cur.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE "
                "application_name = %s AND datname = current_database()",
                (application,),
            )


def test_a_stalled_collector_is_said_and_so_is_its_return(collector, paper_db, session, models):
    commits = []

    def pause_once(ms: int, wall_time: float) -> None:
        commits.append(ms)
        if len(commits) == 100:
            time.sleep(2.0)  # the collector records nothing for two seconds

    writer = write_live(collector, session, on_commit=pause_once)
    lines: list[str] = []
    run_follow(collector, paper_db, models["taker"], lines, once=True, stall_seconds=1)
    writer.join()
    stalls = [line for line in lines if line.startswith("collector ")]
    # A loaded machine may add a stall of its own; each is said, then its end.
    said = "collector stalled: no new row of session 1 for 1 s"
    assert stalls[0::2] == [said] * len(stalls[0::2])
    assert all(line.startswith("collector resumed after ") for line in stalls[1::2])
    resumed = [float(line.split()[3]) for line in stalls[1::2]]
    assert len(resumed) == len(stalls[0::2]) >= 1 and max(resumed) >= 2.0  # the pause was seen
    stored = PaperStore(paper_db).load(1).records
    assert_equal_to_the_backtest(stored, backtest_of(session, models["taker"]))


class Stop(Exception):
    """Ends a follower from its ``say``, as a crash would end it."""


def test_the_next_live_session_is_followed_after_one_closes(collector, paper_db, models):
    first, second = small_session(1), small_session(2, seed=4)
    writer = write_live(collector, first, second)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if line.startswith("session 2 closed"):
            raise Stop

    with CollectorTail(collector) as tail, closing(PaperStore(paper_db)) as store:
        store.create()
        with pytest.raises(Stop):
            follow(tail, store, ModelSource(model_path=models["taker"]).trader, say=say)
    writer.join()
    assert [line for line in lines if line.startswith(("following", "session"))][::2] == [
        "following session 1",
        "following session 2",
    ]
    for one in (first, second):
        stored = PaperStore(paper_db).load(one.session_id).records
        assert_equal_to_the_backtest(stored, backtest_of(one, models["taker"]))


def follow_and_stop(collector: str, paper_db: str, model, polls: int) -> None:
    """Follow session 1 in reads of 40 rows a table, stopped (as by a crash) just
    before the read after write ``polls``."""
    source = ModelSource(model_path=model)
    with CollectorTail(collector) as tail, closing(PaperStore(paper_db)) as store:
        store.create()

        def stopping_trader(info, started):
            trader = source.trader(info, started)
            add, added = trader.add, []

            def add_or_stop(*tables):  # each read with rows is added, then written
                if len(added) == polls:
                    raise Stop
                added.append(True)
                return add(*tables)

            trader.add = add_or_stop
            return trader

        with pytest.raises(Stop):
            follow(tail, store, stopping_trader, session_id=1, limit=40, say=lambda line: None)


def test_a_follower_stopped_midway_resumes_where_its_records_end(
    collector, paper_db, session, models
):
    """Stopped after some writes, started again: the replay of the stored part rebuilds
    the trader (and writes nothing); the whole equals the backtest."""
    with closing(psycopg2.connect(collector)) as conn:
        write_collector_session(conn, session)
    follow_and_stop(collector, paper_db, models["maker"], polls=7)
    store = PaperStore(paper_db)
    before = store.load(1)
    assert before.status == PaperStatus.FOLLOWING and len(store.polls(1)) == 7
    assert 0 < len(before.records.decisions) < len(backtest_of(session, models["maker"]).decisions)
    lines: list[str] = []
    run_follow(collector, paper_db, models["maker"], lines, session_id=1, limit=40)
    assert lines[0].startswith(f"resuming session 1 after {before.cursor.describe()}")
    assert store.polls(1)[:7] == PaperStore(paper_db).polls(1)[:7]
    stored = store.load(1)
    assert_equal_to_the_backtest(stored.records, backtest_of(session, models["maker"]))
    store.close()


def test_a_resume_whose_replay_differs_from_the_records_names_market_and_step(
    collector, paper_db, session, models
):
    with closing(psycopg2.connect(collector)) as conn:
        write_collector_session(conn, session)
    follow_and_stop(collector, paper_db, models["taker"], polls=7)
    with closing(psycopg2.connect(paper_db)) as conn, conn.cursor() as cur:
        cur.execute(
            "UPDATE paper_decisions SET action = (action + 1) % 5 WHERE (market, step) = "
            "(SELECT market, step FROM paper_decisions ORDER BY market, step LIMIT 1 OFFSET 3)"
            " RETURNING market, step"
        )
        market, step = cur.fetchone()
        conn.commit()
    expected = rf"session 1: .*{market}: decisions differ at step {step}"
    with pytest.raises(ResumeMismatch, match=expected):
        run_follow(collector, paper_db, models["taker"], [], session_id=1, limit=40)


def test_a_session_left_active_with_an_end_time_is_followed_once(
    collector, paper_db, session, models
):
    """Its row says active (so it is the live session) and has an end (so it is
    complete): followed to its close, it is not followed again."""
    left_active = dataclasses.replace(
        session, info=dataclasses.replace(session.info, status="active")
    )
    with closing(psycopg2.connect(collector)) as conn:
        write_collector_session(conn, left_active)
    lines: list[str] = []

    def say(line: str) -> None:
        lines.append(line)
        if line == "waiting for a live session":
            raise Stop

    with CollectorTail(collector) as tail, closing(PaperStore(paper_db)) as store:
        store.create()
        with pytest.raises(Stop):
            follow(tail, store, ModelSource(model_path=models["taker"]).trader, say=say)
    assert lines[0] == "following session 1" and lines[1].startswith("session 1 closed")
    assert lines[2:] == ["waiting for a live session"]


def test_a_write_held_up_in_the_paper_database_does_not_hold_up_the_next_decisions(
    collector, paper_db, session, models
):
    """The paper database's row of the session is locked by another connection from the
    first read on: the first write waits for it, and the follower goes on reading and
    deciding (five reads) meanwhile; released, every write lands, in order, and the
    whole equals the backtest."""
    with closing(psycopg2.connect(collector)) as conn:
        write_collector_session(conn, session)
    source, reads, released_by = ModelSource(model_path=models["taker"]), [], []
    locker = psycopg2.connect(paper_db)
    release_lock = threading.Lock()

    def release(by: str) -> None:
        with release_lock:
            if not released_by:
                released_by.append(by)
                locker.commit()

    guard = threading.Timer(60, release, args=("the guard",))  # never hangs the suite

    def trader(info, started):
        made = source.trader(info, started)
        add = made.add

        def add_while_locked(*tables):
            reads.append(True)
            if len(reads) == 1:  # the session row is stored by now: lock it
                with locker.cursor() as cur:
                    cur.execute("SELECT 1 FROM paper_sessions WHERE session_id = 1 FOR UPDATE")
                guard.start()
            elif len(reads) == 5:
                release("the fifth read")
            return add(*tables)

        made.add = add_while_locked
        return made

    with CollectorTail(collector) as tail, closing(PaperStore(paper_db)) as store:
        store.create()
        follow(tail, store, trader, session_id=1, limit=40, say=lambda line: None)
        guard.cancel()
        locker.close()
        stored = store.load(1)
        assert released_by == ["the fifth read"]
        assert len(store.polls(1)) == len(reads) + 1  # each read's write, and the close's
    assert_equal_to_the_backtest(stored.records, backtest_of(session, models["taker"]))
