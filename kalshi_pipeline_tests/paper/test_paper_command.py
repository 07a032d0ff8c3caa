"""``kalshi-pipeline paper`` as a user runs it: a real process following a session being
written live, killed (SIGKILL) at a random point and started again; and its errors.

The process's own output says when it is ready ("waiting for a live session"), so the
writer starts only then: a process takes seconds to import the models' libraries.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from contextlib import closing

import psycopg2
import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paper.store import PaperStatus, PaperStore
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.live_writer import write_live_session
from kalshi_pipeline_tests.conftest import scratch_database
from kalshi_pipeline_tests.paper.following import (
    backtest_of,
    run_paper,
    small_session,
    start_paper,
    tiny_model,
)
from kalshi_pipeline_tests.paper.test_follow import assert_equal_to_the_backtest, run_follow

KILL_SEED = 20_261_206
SPEED = 10_000  # the small session's 18 hours in about six seconds


@pytest.fixture(scope="module")
def model(tmp_path_factory, session):
    return tiny_model(tmp_path_factory.mktemp("model"), "maker", build_market_views(session))


def wait_for_line(process, text: str, seen: list[str]) -> None:
    """Read the process's output up to a line holding ``text``."""
    for line in process.stdout:
        seen.append(line)
        if text in line:
            return
    raise AssertionError(f"the process ended without saying {text!r}:\n{''.join(seen)}")


def write_live(collector: str, session) -> threading.Thread:
    def write() -> None:
        with closing(psycopg2.connect(collector)) as conn:
            write_live_session(conn, session, SPEED)

    writer = threading.Thread(target=write, daemon=True)
    writer.start()
    return writer


def test_paper_once_follows_a_live_session_and_equals_the_backtest(
    collector, paper_db, session, model
):
    process = start_paper(collector, paper_db, "--once", "--model", str(model))
    seen: list[str] = []
    try:
        wait_for_line(process, "waiting for a live session", seen)
        writer = write_live(collector, session)
        output, _ = process.communicate(timeout=120)
    finally:
        process.kill()
    writer.join()
    assert process.returncode == 0, "".join(seen) + output
    assert "following session 1" in output and "session 1 closed: 4 markets" in output
    stored = PaperStore(paper_db).load(1)
    assert stored.status == PaperStatus.CLOSED
    assert_equal_to_the_backtest(stored.records, backtest_of(session, model))


@pytest.mark.slow  # two command processes and a live session: about 30 s
def test_paper_killed_at_a_random_point_and_restarted_loses_and_doubles_nothing(
    collector, paper_db, session, model
):
    """SIGKILL after a seeded random number of writes, mid-session (and maybe mid-
    transaction); the restart resumes from the stored cursor. The records equal an
    uninterrupted run's (after the fact, into another paper database) and the backtest,
    P&L included."""
    kill_after = random.Random(KILL_SEED).randint(3, 60)  # writes; a session makes ~100+
    store = PaperStore(paper_db)
    process = start_paper(collector, paper_db, "--model", str(model))
    seen: list[str] = []
    try:
        wait_for_line(process, "waiting for a live session", seen)
        writer = write_live(collector, session)
        deadline = time.monotonic() + 60
        while len(store.polls(1)) < kill_after:
            assert time.monotonic() < deadline, "the follower wrote too little"
            time.sleep(0.002)
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        process.kill()
    stored = store.load(1)
    assert stored.status == PaperStatus.FOLLOWING and stored.records.decisions
    output = run_paper(collector, paper_db, "--session", "1", "--model", str(model))
    writer.join()
    assert "resuming session 1 after snapshot id" in output
    assert "the replay equals the stored records" in output
    resumed = store.load(1)
    assert resumed.status == PaperStatus.CLOSED
    with scratch_database() as uninterrupted_db:
        run_follow(collector, uninterrupted_db, model, [], session_id=1)
        uninterrupted = PaperStore(uninterrupted_db)
        assert_equal_to_the_backtest(resumed.records, uninterrupted.load(1).records)
        [whole] = uninterrupted.sessions()
        uninterrupted.close()
    assert_equal_to_the_backtest(resumed.records, backtest_of(session, model))
    [summary] = store.sessions()
    assert (summary.value_cents, summary.reward, summary.fees_cents) == (
        whole.value_cents, whole.reward, whole.fees_cents,
    )  # fmt: skip
    store.close()


def test_a_session_the_collector_does_not_have_is_named(collector, paper_db, model, capsys):
    code = main(["paper", "--collector", collector, "--paper-db", paper_db, "--session", "7",
                 "--model", str(model)])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "session 7 is not in rl_orderbook_sessions of the collector database at" in err


def test_an_unreachable_paper_database_is_named_without_its_password(collector, model, capsys):
    with closing(psycopg2.connect(collector)) as conn:
        write_collector_session(conn, small_session())
    code = main(["paper", "--collector", collector, "--session", "1", "--model", str(model),
                 "--paper-db", "postgresql://paper:s3cret@127.0.0.1:1/paper"])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 1
    assert "paper database 127.0.0.1:1/paper" in err and "s3cret" not in err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--collector", "postgresql://x@h/c"], "--paper-db URL or set KALSHI_PAPER_DATABASE_URL"),
        (["--paper-db", "postgresql://x@h/p"], "--collector URL or set KALSHI_COLLECTOR_URL"),
        (["--collector", "postgresql://a@h/c", "--paper-db", "postgresql://b:pw%@h/p"],
         "--paper-db cannot be read as a PostgreSQL URL"),
        (["--collector", "postgresql://a@h/c", "--paper-db", "postgresql://b@h/c"],
         "--paper-db names the collector's database"),
    ],
)  # fmt: skip
def test_paper_needs_two_usable_databases(argv, message, capsys, monkeypatch):
    monkeypatch.delenv("KALSHI_COLLECTOR_URL", raising=False)
    monkeypatch.delenv("KALSHI_PAPER_DATABASE_URL", raising=False)
    with pytest.raises(SystemExit) as exited:
        main(["paper", *argv])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and message in err and "pw%" not in err
