"""Settings in Dagster: a bad one fails the load by name; a retry wait gives way to SIGTERM.

The SIGTERM test runs the real ``kalshi-pipeline demo`` against a collector database whose
snapshots table another connection holds locked, so every read of the session times out
(statement timeout 1 s) and ``raw_sessions`` waits an hour before its retry. SIGTERM must
end that run at once: before, Dagster's in-process executor slept through the retry delay
with the signal held back (and ``nan`` spun there, ``1e9`` slept forever).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from contextlib import closing

import dagster as dg
import psycopg2
import pytest

from kalshi_pipeline.paths import COLLECTOR_URL_ENV, HOME_ENV
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.settings import (
    SOURCE_RETRY_DELAY,
    STATEMENT_TIMEOUT,
    SettingError,
)
from kalshi_pipeline_tests.defs.conftest import simulated

GUARD_S = 120  # a failure guard for a hung process, not a measure of speed


def _causes(exc: BaseException | None):
    while exc is not None:
        yield exc
        exc = exc.__cause__ or exc.__context__


@pytest.mark.parametrize("value", ["nan", "1e9", "abc"])
def test_a_bad_retry_delay_fails_the_definitions_load_naming_it(value, monkeypatch):
    from kalshi_pipeline.definitions import defs

    monkeypatch.setenv(SOURCE_RETRY_DELAY.name, value)
    with pytest.raises(Exception) as raised:
        defs()
    (error,) = [e for e in _causes(raised.value) if isinstance(e, SettingError)]
    assert str(error).startswith(f"KALSHI_SOURCE_RETRY_DELAY_SECONDS={value!r} is not a finite")


def _lock_waiters(url: str) -> int:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cur.fetchone()[0]


def _wait_until_waiting_to_retry(stderr: list[str], url: str) -> None:
    """Until the demo says it waits to retry, or (a build that says nothing) its first read
    was seen blocked on the lock and then gone for a few seconds."""
    deadline, blocked, gone_since = time.monotonic() + GUARD_S, False, None
    while time.monotonic() < deadline:
        if any("retrying in 3600 s" in line for line in stderr):
            return
        waiters = _lock_waiters(url)
        blocked = blocked or waiters > 0
        if blocked and not waiters:
            gone_since = gone_since or time.monotonic()
            if time.monotonic() - gone_since > 5:
                return
        time.sleep(0.1)
    raise AssertionError("the demo never reached its retry wait:\n" + "".join(stderr))


def test_sigterm_ends_an_ingest_waiting_to_retry(collector_tables, tmp_path, monkeypatch):
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, simulated(1))
    env = {
        **os.environ,
        "DAGSTER_HOME": str(dagster_home),
        HOME_ENV: str(home),
        COLLECTOR_URL_ENV: collector_tables,
        STATEMENT_TIMEOUT.name: "1",
        SOURCE_RETRY_DELAY.name: "3600",  # the upper bound
    }
    command = [sys.executable, "-m", "kalshi_pipeline.cli", "demo", "--home", str(home)]
    blocker = psycopg2.connect(collector_tables)
    try:
        with blocker.cursor() as cur:  # held until the end: every read of snapshots waits
            cur.execute("LOCK TABLE rl_orderbook_snapshots IN ACCESS EXCLUSIVE MODE")
        demo = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
        stderr: list[str] = []
        reader = threading.Thread(target=lambda: stderr.extend(demo.stderr), daemon=True)
        reader.start()
        try:
            _wait_until_waiting_to_retry(stderr, collector_tables)
            demo.send_signal(signal.SIGTERM)
            code = demo.wait(timeout=GUARD_S)
        finally:
            if demo.poll() is None:
                demo.kill()
                demo.wait()
        reader.join(timeout=10)
    finally:
        blocker.rollback()
        blocker.close()

    assert code == 1
    (error,) = [line for line in stderr if line.startswith("error: ")]
    assert "session 1" in error and "interrupted while waiting to retry" in error
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    with dg.DagsterInstance.get() as instance:
        (run,) = instance.get_runs()
        assert run.status == dg.DagsterRunStatus.FAILURE  # ended, and recorded as ended
