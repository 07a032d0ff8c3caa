"""A session counts as ingested only when it succeeded: failed, killed and missing ingests.

Real instances and real runs: failures come from a session whose files went missing, a
collector that does not answer, and an ingest process killed with SIGKILL while it reads
from the collector's Postgres. Each test drives the sensor or the demo's ingest the way
the daemon or ``kalshi-pipeline demo`` would, and checks what the instance then holds.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from contextlib import closing
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import dagster as dg
import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kalshi_pipeline import demo
from kalshi_pipeline.defs.assets.model_assets import difficulty_scores
from kalshi_pipeline.defs.ingest_runs import (
    FINGERPRINT_TAG,
    MAX_INGEST_ATTEMPTS,
    PARTITION_NAME_TAG,
    WORKER_TAG,
    ingest_states,
    ingested_sessions,
)
from kalshi_pipeline.defs.partitions import sessions
from kalshi_pipeline.defs.resources import PipelineResource, SourceMismatch
from kalshi_pipeline.defs.sensors import RETRAIN_AFTER_ENV, new_sessions_sensor, retrain_sensor
from kalshi_pipeline.market.views import view_descriptions
from kalshi_pipeline.paths import COLLECTOR_URL_ENV, HOME_ENV, sessions_dir
from kalshi_pipeline.sources import PostgresSessionSource, RawSession
from kalshi_pipeline.sources.collector_writer import (
    append_collector_rows,
    collector_ddl,
    write_collector_session,
)
from kalshi_pipeline.sources.raw import TABLES
from kalshi_pipeline.sources.simulator import SimulatorConfig
from kalshi_pipeline_tests.defs.conftest import ingest, metadata, simulated, store_at

REPO_ROOT = Path(__file__).resolve().parents[2]


def sensor_tick(instance: dg.DagsterInstance, definitions) -> dg.SensorResult:
    """One evaluation of ``new_sessions_sensor``, with the partitions it adds applied
    (what the daemon does before it launches the requested runs)."""
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(),
        resources={"pipeline": PipelineResource()},
        definitions=definitions,
    ) as context:
        # Closed, the context exits the instance it opened from the ref; left open, that
        # instance stays Dagster's current definitions-state storage, and a later
        # definitions load in this process reads its (deleted) temporary directory.
        result = new_sessions_sensor.evaluate_tick(context)
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    return result


def launch(definitions, instance, request: dg.RunRequest) -> dg.ExecuteInProcessResult:
    """Run a sensor's request as the daemon would: the ingest job, its partition, its tags."""
    return definitions.resolve_job_def("ingest_session").execute_in_process(
        instance=instance,
        partition_key=request.partition_key,
        tags=request.tags,
        raise_on_error=False,
    )


def requested(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [(r.partition_key, r.run_key) for r in result.run_requests]


def ingest_runs(instance: dg.DagsterInstance, key: str) -> list[dg.DagsterRun]:
    return list(
        instance.get_runs(
            filters=dg.RunsFilter(job_name="ingest_session", tags={PARTITION_NAME_TAG: key})
        )
    )


# -- failed ingests are requested again, a bounded number of times -----------------------
def test_a_failed_ingest_is_requested_again_with_a_new_run_key_until_the_bound(
    pipeline_home, instance, definitions
):
    deltas = sessions_dir(pipeline_home) / "session-2" / "deltas.parquet"
    aside = pipeline_home / "deltas-of-session-2.parquet"
    shutil.move(deltas, aside)  # session 2 cannot be read

    first = sensor_tick(instance, definitions)
    assert requested(first) == [("1", "session-1-attempt-1"), ("2", "session-2-attempt-1")]
    outcomes = [launch(definitions, instance, r).success for r in first.run_requests]
    assert outcomes == [True, False]
    assert ingested_sessions(instance) == {"1"}

    for attempt in range(2, MAX_INGEST_ATTEMPTS + 1):
        again = sensor_tick(instance, definitions)
        assert requested(again) == [("2", f"session-2-attempt-{attempt}")]
        assert not launch(definitions, instance, again.run_requests[0]).success

    # The bound is reached: no request, and the skip reason says which and what to do.
    spent = sensor_tick(instance, definitions)
    assert not spent.run_requests
    assert "sessions 2 failed 3 ingest attempts" in spent.skip_message
    assert "by hand" in spent.skip_message
    assert len(ingest_runs(instance, "2")) == MAX_INGEST_ATTEMPTS

    # Fixed and materialised by hand, session 2 is ingested and nothing is asked any more.
    shutil.move(aside, deltas)
    (by_hand,) = ingest(definitions, instance, "2", raise_on_error=False)
    assert by_hand.success
    assert ingested_sessions(instance) == {"1", "2"}
    done = sensor_tick(instance, definitions)
    assert not done.run_requests and "no session to ingest" in done.skip_message


def test_a_collector_outage_uses_no_attempt_and_the_sessions_come_back(
    collector_tables, tmp_path, monkeypatch, instance, definitions
):
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    with closing(psycopg2.connect(collector_tables)) as conn:
        for session_id in (1, 2):
            write_collector_session(conn, simulated(session_id))
    # Nothing listens on port 1; the password must never show.
    down = "postgresql://postgres:not-a-real-secret@127.0.0.1:1/collector"

    monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)
    first = sensor_tick(instance, definitions)
    assert requested(first) == [("1", "session-1-attempt-1"), ("2", "session-2-attempt-1")]

    # The collector goes down as the runs start: they fail (after the source retries).
    monkeypatch.setenv(COLLECTOR_URL_ENV, down)
    assert [launch(definitions, instance, r).success for r in first.run_requests] == [False] * 2

    # While it is down, ticks request nothing and say why, without the URL or password.
    for _ in range(MAX_INGEST_ATTEMPTS + 1):
        skipped = sensor_tick(instance, definitions)
        assert not skipped.run_requests
        assert "cannot list sessions from the collector postgres source" in skipped.skip_message
        assert "not-a-real-secret" not in skipped.skip_message
        assert down not in skipped.skip_message
    assert [len(ingest_runs(instance, k)) for k in ("1", "2")] == [1, 1]
    # Those runs failed because the collector was unreachable: no attempt is used up.
    states = ingest_states(instance, ["1", "2"])
    assert [(states[k].attempts, states[k].outages) for k in ("1", "2")] == [(0, 1), (0, 1)]

    # Back: both are requested again (attempt 2), and ingested.
    monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)
    back = sensor_tick(instance, definitions)
    assert requested(back) == [("1", "session-1-attempt-2"), ("2", "session-2-attempt-2")]
    assert all(launch(definitions, instance, r).success for r in back.run_requests)
    assert ingested_sessions(instance) == {"1", "2"}


# -- a killed ingest -----------------------------------------------------------------------
_DEMO_INGEST = """
import sys
from pathlib import Path
import dagster as dg
from kalshi_pipeline.definitions import defs
from kalshi_pipeline.demo import ingest_missing
ingest_missing(Path(sys.argv[1]), dg.DagsterInstance.get(), defs())
"""


def _wait_for(predicate, what: str, timeout_s: float = 60.0):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def _lock_waiters(url: str) -> int:
    """Connections of this database blocked on a lock (the ingest reading snapshots)."""
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND wait_event_type = 'Lock'"
        )
        return cur.fetchone()[0]


def test_a_sigkilled_ingest_is_ingested_again(collector_tables, tmp_path, monkeypatch, definitions):
    """The demo's ingest, in its own process, is killed with SIGKILL while it reads the
    session from Postgres. Its run stays STARTED; the next sensor tick sees its process is
    gone, marks it failed and asks again, and the next demo ingests the session."""
    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, simulated(1))
    for name, value in (
        ("DAGSTER_HOME", str(dagster_home)),
        (HOME_ENV, str(home)),
        (COLLECTOR_URL_ENV, collector_tables),
    ):
        monkeypatch.setenv(name, value)

    # Holding this lock makes the ingest wait inside its read of the snapshots.
    blocker = psycopg2.connect(collector_tables)
    try:
        with blocker.cursor() as cur:
            cur.execute("LOCK TABLE rl_orderbook_snapshots IN ACCESS EXCLUSIVE MODE")
        worker = subprocess.Popen(
            [sys.executable, "-c", _DEMO_INGEST, str(home)],
            cwd=REPO_ROOT,
            env=dict(os.environ),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            _wait_for(lambda: _lock_waiters(collector_tables), "the ingest to block on its read")
        finally:
            worker.send_signal(signal.SIGKILL)
            worker.wait(timeout=30)
    finally:
        blocker.rollback()
        blocker.close()
    assert worker.returncode == -signal.SIGKILL

    with dg.DagsterInstance.get() as instance:
        (killed,) = ingest_runs(instance, "1")
        assert killed.status == dg.DagsterRunStatus.STARTED  # nothing recorded its end
        assert killed.tags[WORKER_TAG].split("/")[1] == str(worker.pid)
        assert instance.get_dynamic_partitions(sessions.name) == ["1"]

        tick = sensor_tick(instance, definitions)
        assert requested(tick) == [("1", "session-1-attempt-2")]
        assert instance.get_run_by_id(killed.run_id).status == dg.DagsterRunStatus.FAILURE

        assert demo.ingest_missing(home, instance, definitions) == ["1"]
        assert ingested_sessions(instance) == {"1"}
        statuses = sorted(r.status.value for r in ingest_runs(instance, "1"))
        assert statuses == ["FAILURE", "SUCCESS"]


def test_the_demo_ingests_sessions_registered_but_never_ingested(
    pipeline_home, instance, definitions
):
    """Registered before their runs (as a killed demo leaves them): still missing."""
    instance.add_dynamic_partitions(sessions.name, ["1", "2"])
    assert demo.ingest_missing(pipeline_home, instance, definitions) == ["1", "2"]
    assert ingested_sessions(instance) == {"1", "2"}
    assert demo.ingest_missing(pipeline_home, instance, definitions) == []


# -- training and retraining count only ingested sessions ---------------------------------
def test_retrain_sensor_does_not_count_failed_sessions(
    pipeline_home, instance, definitions, monkeypatch
):
    store_at(pipeline_home).write_session(simulated(3))
    (sessions_dir(pipeline_home) / "session-3" / "deltas.parquet").unlink()
    results = ingest(definitions, instance, "1", "2", "3", raise_on_error=False)
    assert [r.success for r in results] == [True, True, False]

    monkeypatch.setenv(RETRAIN_AFTER_ENV, "3")
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(), definitions=definitions
    ) as context:
        skipped = retrain_sensor.evaluate_tick(context)
        assert not skipped.run_requests and "2 new sessions" in skipped.skip_message
        monkeypatch.setenv(RETRAIN_AFTER_ENV, "2")
        (request,) = retrain_sensor.evaluate_tick(context).run_requests
    assert request.run_key == "retrain-1-2"


def test_difficulty_scores_name_registered_sessions_without_views(
    pipeline_home, instance, definitions
):
    (sessions_dir(pipeline_home) / "session-2" / "deltas.parquet").unlink()
    results = ingest(definitions, instance, "1", "2", raise_on_error=False)
    assert [r.success for r in results] == [True, False]
    instance.add_dynamic_partitions(sessions.name, ["3"])  # registered, never run

    result = dg.materialize(
        [difficulty_scores],
        instance=instance,
        resources={"pipeline": PipelineResource()},
    )
    (event,) = result.asset_materializations_for_node("difficulty_scores")
    meta = {k: v.value for k, v in event.metadata.items()}
    assert meta["session_ids"] == [1] and meta["sessions"] == 1
    without = meta["sessions_without_views"].splitlines()
    assert [line.split(":")[0] for line in without] == ["- session 2", "- session 3"]
    assert all("not ingested" in line for line in without)
    assert set(result.output_for_node("difficulty_scores").column("session_id").to_pylist()) == {1}

    warnings = [
        e.user_message
        for e in instance.all_logs(result.run_id)
        if e.level == 30 and "have no views" in e.user_message
    ]
    assert len(warnings) == 1 and "session 2" in warnings[0] and "session 3" in warnings[0]


# -- one source for listing and loading ----------------------------------------------------
def test_the_demo_with_a_collector_ingests_exactly_its_closed_sessions(
    collector_tables, tmp_path, monkeypatch, instance, definitions, capsys
):
    home = tmp_path / "home"
    monkeypatch.setenv(HOME_ENV, str(home))
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, simulated(1))
        write_collector_session(conn, simulated(2, status="active", ended_at=None))
        write_collector_session(conn, simulated(5))
    monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)

    assert demo.ingest_missing(home, instance, definitions) == ["1", "5"]

    assert ingested_sessions(instance) == {"1", "5"}
    assert sorted(instance.get_dynamic_partitions(sessions.name)) == ["1", "5"]
    assert not sessions_dir(home).exists()  # nothing simulated, nothing stored locally
    out = capsys.readouterr().out
    assert "sessions from: collector postgres" in out and "simulating" not in out
    assert collector_tables not in out
    latest = instance.get_latest_materialization_event(dg.AssetKey("raw_sessions"))
    assert latest.asset_materialization.metadata["source"].value == "collector postgres"


# -- one home, one source ----------------------------------------------------------------
def test_a_home_filled_from_the_local_store_refuses_the_collector(
    pipeline_home, collector_tables, monkeypatch, instance, definitions
):
    """Session ids are the source's own: the collector's session 1 is not the local
    store's session 1, so a home that ingested one is never taken to hold the other."""
    assert demo.ingest_missing(pipeline_home, instance, definitions) == ["1", "2"]
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, simulated(1, config=SimulatorConfig(markets=3)))
    monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)

    with pytest.raises(SourceMismatch) as refused:
        demo.ingest_missing(pipeline_home, instance, definitions)
    message = str(refused.value)
    assert "local parquet" in message and "collector postgres 127.0.0.1:5432/" in message
    assert "postgres@" not in message

    tick = sensor_tick(instance, definitions)
    assert not tick.run_requests and "their session ids would mix" in tick.skip_message
    (run,) = ingest(definitions, instance, "1", raise_on_error=False)
    assert not run.success  # the partition is not overwritten from the other source
    views = PipelineResource().views_path(1)
    assert len(view_descriptions(views)) == 10  # still the local session's ten markets


# -- a session that changes after its ingest ----------------------------------------------
NEW_TICKER = "KXRESUMED-26JAN"


def resumed_rows(original: RawSession) -> RawSession:
    """The rows a collector records after resuming ``original``: the busiest market of
    another simulated session, as ``NEW_TICKER`` under ``original``'s id, after its end
    and its sequence numbers; its info carries the new end."""
    extra = simulated(7)
    market = Counter(extra.deltas["market_ticker"].to_pylist()).most_common(1)[0][0]
    shift_ms = int((original.info.ended_at - extra.info.started_at).total_seconds() * 1000)
    shift_ms += 1000
    last = max(pc.max(getattr(original, t)["sequence_number"]).as_py() for t in TABLES)

    def moved(table: pa.Table) -> pa.Table:
        table = table.filter(pc.equal(table["market_ticker"], market))
        changes = {
            "session_id": pc.multiply(table["session_id"], 0),
            "market_ticker": pa.array([NEW_TICKER] * table.num_rows, pa.string()),
            "timestamp_ms": pc.add(table["timestamp_ms"], shift_ms),
            "sequence_number": pc.add(table["sequence_number"], last),
        }
        for name, column in changes.items():
            if name == "session_id":
                column = pc.add(column, original.session_id)
            table = table.set_column(table.schema.get_field_index(name), name, column)
        return table

    ended_at = extra.info.ended_at + timedelta(milliseconds=shift_ms)
    info = dataclasses.replace(original.info, ended_at=ended_at)
    return RawSession(info, moved(extra.snapshots), moved(extra.deltas))


def run_sql(url: str, statement: str, params: tuple = ()) -> None:
    with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
        cur.execute(statement, params)
        conn.commit()


def reopen(url: str, session_id: int) -> None:
    """A collector resumes a closed session: active again, no end time."""
    run_sql(
        url,
        "UPDATE rl_orderbook_sessions SET status = 'active', ended_at = NULL WHERE session_id = %s",
        (session_id,),
    )


def record_and_close(url: str, rows: RawSession) -> None:
    """The resumed recording: its rows and new market, then closed with its new end."""
    with closing(psycopg2.connect(url)) as conn:
        append_collector_rows(conn, rows)
    run_sql(
        url,
        "UPDATE rl_orderbook_sessions SET status = 'closed', ended_at = %s, "
        "market_tickers = array_append(market_tickers, %s) WHERE session_id = %s",
        (rows.info.ended_at, NEW_TICKER, rows.session_id),
    )


def tickers_in_views(session_id: int) -> set[str]:
    path = PipelineResource().views_path(session_id)
    return {d["market_ticker"] for d in view_descriptions(path, session_id)}


def test_a_session_resumed_after_its_ingest_is_ingested_again_with_its_new_market(
    collector_tables, tmp_path, monkeypatch, instance, definitions
):
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)
    original = simulated(1)
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, original)
    (first,) = sensor_tick(instance, definitions).run_requests
    assert launch(definitions, instance, first).success
    assert NEW_TICKER not in tickers_in_views(1)

    # Resumed: while it records again, nothing is requested and the tick says why.
    reopen(collector_tables, 1)
    recording = sensor_tick(instance, definitions)
    assert not recording.run_requests
    assert "session 1 is being recorded again (still active (no end time))" in (
        recording.skip_message
    )
    assert "views from the earlier ingest stay in use" in recording.skip_message

    # Closed again with more rows and a new market: requested again, under a run key of
    # its new fingerprint, and the new market gets its view.
    record_and_close(collector_tables, resumed_rows(original))
    fingerprint = PostgresSessionSource(collector_tables).fingerprints([1])[1]
    (again,) = sensor_tick(instance, definitions).run_requests
    assert again.run_key == f"session-1-{fingerprint.token}-attempt-1"
    assert again.tags[FINGERPRINT_TAG] == fingerprint.token
    result = launch(definitions, instance, again)
    assert result.success
    assert NEW_TICKER in tickers_in_views(1)
    recorded = metadata(result, "raw_sessions")
    assert recorded["fingerprint"] == fingerprint.token
    assert recorded["changed"].startswith("session 1 changed since its previous ingest")
    assert recorded["previous_fingerprint"]["snapshots"]["rows"] == original.snapshots.num_rows
    assert fingerprint.token in recorded["changed"] and "snapshots" in recorded["changed"]

    done = sensor_tick(instance, definitions)
    assert not done.run_requests and "no session to ingest" in done.skip_message


def test_the_demo_uses_the_views_of_a_session_recorded_again_then_ingests_it_again(
    collector_tables, tmp_path, monkeypatch, instance, definitions, capsys
):
    home = tmp_path / "home"
    monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)
    original = simulated(1)
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, original)
    assert demo.ingest_missing(home, instance, definitions) == ["1"]

    reopen(collector_tables, 1)
    capsys.readouterr()
    assert demo.ingest_missing(home, instance, definitions) == []  # not "no complete session"
    out = capsys.readouterr().out
    assert "session 1 is being recorded again" in out and "stay in use" in out

    record_and_close(collector_tables, resumed_rows(original))
    assert demo.ingest_missing(home, instance, definitions) == ["1"]
    assert "session 1 changed since its ingest" in capsys.readouterr().out
    assert NEW_TICKER in tickers_in_views(1)
    assert demo.ingest_missing(home, instance, definitions) == []


def test_a_session_of_unknown_status_is_named_and_never_ingested(
    collector_tables, tmp_path, monkeypatch, instance, definitions, capsys
):
    """A collector database without the table's CHECK: 'ACTIVE' (recording) is not taken
    for complete, whatever its end time; the tick and the demo name it, and the other
    sessions are ingested as usual."""
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)
    run_sql(
        collector_tables,
        "ALTER TABLE rl_orderbook_sessions DROP CONSTRAINT rl_orderbook_sessions_status_check",
    )
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, simulated(1))
        write_collector_session(conn, simulated(2, status="ACTIVE"))  # its end time kept
        write_collector_session(conn, simulated(3, status="error", ended_at=None))

    tick = sensor_tick(instance, definitions)
    assert requested(tick) == [("1", "session-1-attempt-1")]
    assert launch(definitions, instance, tick.run_requests[0]).success
    skipped = sensor_tick(instance, definitions)
    assert not skipped.run_requests
    assert "session 2 is of unknown status 'ACTIVE'" in skipped.skip_message
    assert "session 3 is still error (no end time)" in skipped.skip_message

    assert demo.ingest_missing(tmp_path / "home", instance, definitions) == []
    out = capsys.readouterr().out
    assert "session 2 is of unknown status 'ACTIVE'" in out
    assert ingested_sessions(instance) == {"1"}
    (by_hand,) = ingest(definitions, instance, "2", raise_on_error=False)
    assert not by_hand.success  # asked for by hand, it is refused, naming the status


def test_a_url_whose_options_pick_another_schema_is_another_source(
    collector_tables, tmp_path, monkeypatch, instance, definitions
):
    """Two sets of collector tables in one database: the URL's ``options`` choose the
    schema. Session 1 of one is not session 1 of the other, so a home filled from one
    refuses the other, and says which schema each is."""
    home = tmp_path / "home"
    run_sql(collector_tables, "CREATE SCHEMA other")
    run_sql(collector_tables, "SET search_path TO other; " + collector_ddl())
    other = f"{collector_tables}?options={quote('-c search_path=other')}"
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, simulated(1))
    with closing(psycopg2.connect(other)) as conn:
        write_collector_session(conn, simulated(1, config=SimulatorConfig(markets=3)))

    monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)
    assert demo.ingest_missing(home, instance, definitions) == ["1"]
    monkeypatch.setenv(COLLECTOR_URL_ENV, other)
    with pytest.raises(SourceMismatch) as refused:
        demo.ingest_missing(home, instance, definitions)
    assert "schema other" in str(refused.value)
    tick = sensor_tick(instance, definitions)
    assert not tick.run_requests and "their session ids would mix" in tick.skip_message
    (run,) = ingest(definitions, instance, "1", raise_on_error=False)
    assert not run.success
    assert len(view_descriptions(PipelineResource().views_path(1), 1)) == 10  # the first's

    monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)  # the same source again: fine
    assert demo.ingest_missing(home, instance, definitions) == []


def test_an_ingested_session_deleted_from_the_collector_is_named_and_kept(
    collector_tables, tmp_path, monkeypatch, instance, definitions
):
    """A session the collector no longer lists after its ingest: its views stay in use
    (a source losing rows is no reason to forget them), and every tick says so."""
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "home"))
    monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, simulated(1))
        write_collector_session(conn, simulated(2))
    tick = sensor_tick(instance, definitions)
    for request in tick.run_requests:
        assert launch(definitions, instance, request).success
    for table in (
        "rl_orderbook_trades",
        "rl_orderbook_deltas",
        "rl_orderbook_snapshots",
        "rl_orderbook_sessions",
    ):
        run_sql(collector_tables, f"DELETE FROM {table} WHERE session_id = 2")

    skipped = sensor_tick(instance, definitions)

    assert not skipped.run_requests
    assert "session 2 was ingested but the source no longer lists it" in skipped.skip_message
    assert ingested_sessions(instance) == {"1", "2"}
