"""The acceptance test of train/serve equality: on three recorded sessions, what the
paper trader records equals the backtest of the session's batch views, bit for bit and
count for count, both when the session is written into the collector's tables live (one
receive millisecond per commit, as the collector records) and followed as it is
written, and when it is followed after the fact. A model whose untrained policy trades
(taker mode: its orders fill at once; maker mode's fills are compared in
test_paper_equals_backtest.py and test_follow.py)."""

from __future__ import annotations

from contextlib import closing

import psycopg2
import pytest

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paper.store import PaperStatus, PaperStore
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.simulator import simulate_session
from kalshi_pipeline_tests.conftest import scratch_database, with_collector_tables
from kalshi_pipeline_tests.paper.following import (
    SMALL,
    backtest_of,
    tiny_model,
)
from kalshi_pipeline_tests.paper.test_follow import (
    assert_equal_to_the_backtest,
    run_follow,
    write_live,
)

SESSIONS = (11, 12, 13)  # seeds of three recorded sessions

pytestmark = pytest.mark.slow  # about a minute: run by .ci/run with the slow tests


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    """Each session, and a model made on its views."""
    out = {}
    for seed in SESSIONS:
        session = simulate_session(seed, seed=seed, config=SMALL)
        folder = tmp_path_factory.mktemp(f"model-{seed}")
        out[seed] = session, tiny_model(folder, "taker", build_market_views(session), seed=21)
    return out


@pytest.mark.parametrize("how", ["live", "after the fact"])
@pytest.mark.parametrize("seed", SESSIONS)
def test_paper_trading_equals_the_backtest(recorded, seed, how):
    session, model = recorded[seed]
    with scratch_database() as collector, scratch_database() as paper_db:
        collector = with_collector_tables(collector)
        if how == "live":
            writer = write_live(collector, session)
            run_follow(collector, paper_db, model, [], once=True)
            writer.join()
        else:
            with closing(psycopg2.connect(collector)) as conn:
                write_collector_session(conn, session)
            run_follow(collector, paper_db, model, [], session_id=session.session_id)
        stored = PaperStore(paper_db).load(session.session_id)
    assert stored.status == PaperStatus.CLOSED
    expected = backtest_of(session, model)
    assert_equal_to_the_backtest(stored.records, expected)
    assert len(stored.records.decisions) == sum(len(v) for v in build_market_views(session))
    assert sum(outcome.filled != 0 for outcome in stored.records.outcomes) > 0
