"""Following through what a real collector does to its session row: it keeps the row's
bookkeeping (``last_message_at``) current while recording, and when it crashes it leaves
its session ``active`` with no end and starts a new one on coming back.

Sessions are written into a scratch collector database (``write_collector_session`` at
once, ``write_live_session`` one receive millisecond per commit); the paper database is
another scratch database.
"""

from __future__ import annotations

import dataclasses
from contextlib import closing
from datetime import timedelta

import psycopg2
import pytest

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paper.follow import follow
from kalshi_pipeline.paper.follow_models import ModelSource
from kalshi_pipeline.paper.store import PaperStatus, PaperStore
from kalshi_pipeline.sources.collector_tail import CollectorTail
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline_tests.conftest import scratch_database
from kalshi_pipeline_tests.paper.following import (
    backtest_of,
    small_session,
    tiny_model,
    with_collector_tables,
)
from kalshi_pipeline_tests.paper.test_follow import assert_equal_to_the_backtest

SPEED = 30_000  # the small session's 18 hours in about two seconds
HANG_GUARD_S = 300  # a follower that never gets there fails the test instead of hanging it


@pytest.fixture(scope="module")
def session():
    return small_session()


@pytest.fixture(scope="module")
def model(tmp_path_factory, session):
    return tiny_model(tmp_path_factory.mktemp("model"), "taker", build_market_views(session))


@pytest.fixture
def collector():
    with scratch_database() as url:
        yield with_collector_tables(url)


@pytest.fixture
def paper_db():
    with scratch_database() as url:
        yield url


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
