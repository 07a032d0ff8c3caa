"""The paper store: records round-trip exactly, and a poll's write lands whole, once.

Faults are real: the store's own connection is ended by the server
(``pg_terminate_backend``), while it waits inside a write that is half done.
"""

from __future__ import annotations

import threading
import time
from contextlib import closing
from dataclasses import replace

import psycopg2
import pytest

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paper.backtest import backtest
from kalshi_pipeline.paper.records import Decision, Outcome, Records, compare
from kalshi_pipeline.paper.store import PaperStatus, PaperStore, PaperStoreError, StreamCounts
from kalshi_pipeline.paper.trader import ChosenModel
from kalshi_pipeline.sources.collector_tail import Cursor
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.training.evaluation.policies import random_policy

STORE_APP = "kalshi-pipeline paper"  # how the store's connection shows in pg_stat_activity
SOURCE = "127.0.0.1:5432/collector"


@pytest.fixture(scope="module")
def records() -> Records:
    """A small maker session's records: decisions, outcomes, fills, markets ended."""
    raw = simulate_session(1, seed=3, config=SimulatorConfig(markets=4))
    chosen = ChosenModel("random", "models/random.zip", random_policy(0))
    played = backtest(build_market_views(raw), EnvConfig(execution="maker"), lambda t: chosen)
    assert played.fills and played.decisions
    return played


@pytest.fixture
def store(collector_db):
    said: list[str] = []
    paper = PaperStore(collector_db, say=said.append)
    paper.said = said
    paper.create()
    paper.begin(1, SOURCE, EnvConfig(execution="maker").to_json())
    yield paper
    paper.close()


def by_market(records: Records, markets: set[str]) -> Records:
    return Records(
        **{kind: [r for r in rows if r.market in markets] for kind, rows in vars(records).items()}
    )


def last_market_records(records: Records) -> dict:
    return {m.market: m for m in records.markets}


def assert_same(loaded: Records, written: Records) -> None:
    assert compare(loaded, written) == []
    assert loaded.counts()["decisions"] == len(written.decisions)
    assert loaded.counts()["fills"] == len(written.fills)
    assert last_market_records(loaded) == last_market_records(written)


def test_records_written_in_polls_read_back_bit_for_bit(store, records):
    markets = sorted({m.market for m in records.markets})
    first, rest = set(markets[:2]), set(markets[2:])
    store.write(1, by_market(records, first), Cursor(3, 10, 2), time.time())
    assert store.load(1).cursor == Cursor(3, 10, 2)
    counts = StreamCounts(repairs={"gap": 2}, live_only={"trade_after_last_step": 1})
    store.write(
        1, by_market(records, rest), Cursor(5, 419, 29), time.time(),
        status=PaperStatus.CLOSED, stream_counts=counts,
    )  # fmt: skip
    loaded, cursor, status = store.load(1)
    assert_same(loaded, records)
    assert (cursor, status) == (Cursor(5, 419, 29), PaperStatus.CLOSED)
    assert store.polls(1) == [Cursor(3, 10, 2), Cursor(5, 419, 29)]
    [summary] = store.sessions()
    assert summary.status == PaperStatus.CLOSED and summary.closed_at is not None
    assert (summary.decisions, summary.fills) == (len(records.decisions), len(records.fills))


def test_a_float_reward_and_observation_bytes_round_trip_exactly(store):
    odd = Records(
        decisions=[Decision("M", 0, 1, "m", 4, bytes(range(256)))],
        outcomes=[Outcome("M", 0, 0.1 + 0.2, 1, -2, 3, 4, 5, True)],
    )
    store.write(1, odd, Cursor(1, 1, 0), time.time())
    loaded = store.load(1).records
    assert loaded.decisions == odd.decisions and loaded.outcomes == odd.outcomes
    assert loaded.outcomes[0].reward == 0.30000000000000004


def test_a_market_sent_again_when_it_ends_is_updated_not_doubled(store, records):
    market = records.markets[0]
    store.write(1, Records(markets=[market]), Cursor(1, 0, 0), time.time())
    ended = replace(market, ended=True, reason="the view ended")
    store.write(1, Records(markets=[ended]), Cursor(2, 0, 0), time.time())
    assert store.load(1).records.markets == [ended]


def test_a_doubled_record_fails_the_whole_write_naming_the_row(store, records):
    store.write(1, Records(decisions=records.decisions[:1]), Cursor(1, 1, 1), time.time())
    again = Records(decisions=records.decisions[:2], outcomes=records.outcomes[:1])
    with pytest.raises(PaperStoreError, match=r"already exists") as caught:
        store.write(1, again, Cursor(2, 2, 2), time.time())
    assert records.decisions[0].market in str(caught.value)
    loaded, cursor, _ = store.load(1)
    assert (len(loaded.decisions), loaded.outcomes, cursor) == (1, [], Cursor(1, 1, 1))


def test_a_session_of_another_collector_is_refused(store):
    with pytest.raises(PaperStoreError, match="followed from 127.0.0.1:5432/collector"):
        store.begin(1, "elsewhere:5432/collector", EnvConfig().to_json())


def test_a_bad_url_is_said_without_its_password():
    store = PaperStore("postgresql://me:s3cret@127.0.0.1:1/paper")
    with pytest.raises(PaperStoreError) as caught:
        store.create()
    assert "127.0.0.1:1/paper" in str(caught.value) and "s3cret" not in str(caught.value)


def backends(url: str, admin, waiting: bool = False) -> list[int]:
    """The store's server processes on ``url``'s database (those waiting on a lock)."""
    with admin.cursor() as cur:
        cur.execute(
            "SELECT pid FROM pg_stat_activity WHERE application_name = %s AND datname = "
            "current_database() AND (NOT %s OR wait_event_type = 'Lock')",
            (STORE_APP, waiting),
        )
        return [pid for (pid,) in cur.fetchall()]


def wait_for(check, what: str):
    deadline = time.monotonic() + 30
    while not (found := check()):
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)
    return found


def test_a_write_killed_half_done_is_retried_and_lands_once(store, records, collector_db):
    """The write is held inside its transaction (its poll row waits on a lock, its
    records already inserted), its connection is ended by the server, and it is tried
    again on a new one: nothing of the killed attempt is seen, the retry lands whole."""
    poll = by_market(records, {records.markets[0].market})
    admin, blocker = psycopg2.connect(collector_db), psycopg2.connect(collector_db)
    with closing(admin), closing(blocker):
        admin.autocommit = True
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE paper_polls IN EXCLUSIVE MODE")  # held until rollback
        writer = threading.Thread(target=store.write, args=(1, poll, Cursor(9, 9, 9), time.time()))
        writer.start()
        [first] = wait_for(lambda: backends(collector_db, admin, waiting=True), "the write")
        with admin.cursor() as cur:
            cur.execute("SELECT pg_terminate_backend(%s)", (first,))
        [second] = wait_for(
            lambda: [p for p in backends(collector_db, admin, waiting=True) if p != first],
            "the retried write",
        )
        with admin.cursor() as cur:
            cur.execute("SELECT count(*) FROM paper_decisions")
            assert cur.fetchone() == (0,)  # the killed attempt left nothing
        blocker.rollback()
        writer.join(timeout=30)
    assert not writer.is_alive() and second != first
    loaded, cursor, status = store.load(1)
    assert_same(loaded, poll)
    assert (cursor, status, len(store.polls(1))) == (Cursor(9, 9, 9), PaperStatus.FOLLOWING, 1)
    assert any("paper database unreachable, retrying in 0.5 s" in line for line in store.said)


def test_a_connection_lost_between_writes_is_made_again(store, records, collector_db):
    store.write(1, Records(decisions=records.decisions[:1]), Cursor(1, 1, 1), time.time())
    with closing(psycopg2.connect(collector_db)) as admin:
        admin.autocommit = True
        with admin.cursor() as cur:
            for pid in backends(collector_db, admin):
                cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
    store.write(1, Records(decisions=records.decisions[1:3]), Cursor(2, 2, 2), time.time())
    loaded = store.load(1).records
    assert set(loaded.decisions) == set(records.decisions[:3]) and len(loaded.decisions) == 3
    assert store.said  # it said it retried
