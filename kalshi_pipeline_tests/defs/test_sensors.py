"""Sensors and the schedule: sessions are requested until ingested, models retrained in time.

Sensors are evaluated with ``evaluate_tick`` on a real instance (which resolves the run
requests against the job and its dynamic partitions), and once through the sensor
daemon's own iteration, to see that the daemon never launches a session twice.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

import dagster as dg
import pytest
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.storage.tags import PARTITION_NAME_TAG, RUN_KEY_TAG
from dagster._core.test_utils import (
    InProcessTestWorkspaceLoadTarget,
    create_test_daemon_workspace_context,
    freeze_time,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.sensor import execute_sensor_iteration

from kalshi_pipeline.defs.partitions import sessions
from kalshi_pipeline.defs.resources import PipelineResource
from kalshi_pipeline.defs.schedules import weekly_retrain
from kalshi_pipeline.defs.sensors import RETRAIN_AFTER_ENV, new_sessions_sensor, retrain_sensor
from kalshi_pipeline.paths import COLLECTOR_URL_ENV, HOME_ENV
from kalshi_pipeline.sources.settings import SettingError
from kalshi_pipeline_tests.defs.conftest import ingest, simulated, store_at


def tick(sensor: dg.SensorDefinition, instance: dg.DagsterInstance, definitions, **resources):
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(), resources=resources or None, definitions=definitions
    ) as context:
        # Closed, the context exits the instance it opened from the ref; left open, that
        # instance stays Dagster's current definitions-state storage, and a later
        # definitions load in this process reads its (deleted) temporary directory.
        return sensor.evaluate_tick(context)


def new_sessions_tick(instance, definitions):
    return tick(new_sessions_sensor, instance, definitions, pipeline=PipelineResource())


# -- new_sessions_sensor -----------------------------------------------------------------
def test_new_sessions_sensor_requests_each_closed_session_once(
    pipeline_home, instance, definitions
):
    store = store_at(pipeline_home)
    store.write_session(simulated(3, status="active", ended_at=None))  # still recording
    store.write_session(simulated(4, status="error"))  # complete: ingested, checks decide

    first = new_sessions_tick(instance, definitions)
    assert [(r.partition_key, r.run_key) for r in first.run_requests] == [
        ("1", "session-1-attempt-1"),
        ("2", "session-2-attempt-1"),
        ("4", "session-4-attempt-1"),
    ]
    assert all(r.job_name in (None, "ingest_session") for r in first.run_requests)
    (add,) = first.dynamic_partitions_requests
    assert isinstance(add, dg.AddDynamicPartitionsRequest)
    assert (add.partitions_def_name, list(add.partition_keys)) == ("sessions", ["1", "2", "4"])

    # What the daemon does with the request before launching the runs; here the runs
    # then succeed.
    instance.add_dynamic_partitions(add.partitions_def_name, list(add.partition_keys))
    ingest(definitions, instance, "1", "2", "4")
    second = new_sessions_tick(instance, definitions)
    assert not second.run_requests and not second.dynamic_partitions_requests
    assert second.skip_message

    # Once session 3 closes (the recording's final version replaces the active one), it
    # alone is requested.
    store.write_session(simulated(3), replace=True)
    third = new_sessions_tick(instance, definitions)
    assert [(r.partition_key, r.run_key) for r in third.run_requests] == [
        ("3", "session-3-attempt-1")
    ]


def test_new_sessions_sensor_skips_when_the_store_is_empty(tmp_path, monkeypatch, instance):
    monkeypatch.setenv(HOME_ENV, str(tmp_path / "empty"))
    monkeypatch.delenv(COLLECTOR_URL_ENV, raising=False)
    result = tick(new_sessions_sensor, instance, None, pipeline=PipelineResource())
    assert not result.run_requests and result.skip_message


@contextmanager
def sensor_daemon(instance: dg.DagsterInstance) -> Iterator:
    """One iteration of the sensor daemon per call, over the project's code location."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="kalshi_pipeline.definitions", attribute="defs"),
        location_name="kalshi_pipeline",
    )
    start = datetime.now(UTC)
    with create_test_daemon_workspace_context(
        InProcessTestWorkspaceLoadTarget(origin), instance
    ) as workspace:

        def iterate(minutes_later: int) -> None:
            # Past the sensor's minimum interval, so each iteration evaluates it.
            with freeze_time(start + timedelta(minutes=minutes_later)):
                list(execute_sensor_iteration(workspace, logging.getLogger("sensor"), None, None))

        yield iterate


@pytest.fixture
def queued_instance() -> Iterator[dg.DagsterInstance]:
    """An instance whose run coordinator only records submitted runs (nothing executes)."""
    coordinator = {"module": "dagster._core.test_utils", "class": "MockedRunCoordinator"}
    with dg.instance_for_test(overrides={"run_coordinator": coordinator}) as test_instance:
        yield test_instance


def test_the_sensor_daemon_never_launches_a_session_twice(pipeline_home, queued_instance):
    instance = queued_instance

    def launched() -> list[tuple[str, str]]:
        runs = instance.get_runs()
        return sorted((r.tags[RUN_KEY_TAG], r.tags[PARTITION_NAME_TAG]) for r in runs)

    with sensor_daemon(instance) as iterate:
        iterate(0)
        first = [("session-1-attempt-1", "1"), ("session-2-attempt-1", "2")]
        assert launched() == first
        assert all(r.job_name == "ingest_session" for r in instance.get_runs())
        assert sorted(instance.get_dynamic_partitions(sessions.name)) == ["1", "2"]

        iterate(2)  # the runs are queued (in progress): nothing is asked again
        assert len(instance.get_runs()) == 2

        # Even if the partition is deleted and registered again, a session whose run is
        # in progress is not launched a second time.
        instance.delete_dynamic_partition(sessions.name, "1")
        iterate(4)
        assert launched() == first
        assert sorted(instance.get_dynamic_partitions(sessions.name)) == ["1", "2"]

        store_at(pipeline_home).write_session(simulated(3))
        iterate(6)
        assert launched() == [*first, ("session-3-attempt-1", "3")]


# -- retrain_sensor ----------------------------------------------------------------------
def test_retrain_sensor_waits_for_enough_sessions_the_model_did_not_see(
    trained, definitions, monkeypatch
):
    instance = trained.instance
    monkeypatch.setenv(RETRAIN_AFTER_ENV, "2")
    latest = instance.get_latest_materialization_event(dg.AssetKey("phase3_model"))
    # Trained on session 1 (2 is the walk-forward session), having considered both.
    assert latest.asset_materialization.metadata["sessions"].value == [1]
    assert latest.asset_materialization.metadata["scored_sessions"].value == [1, 2]

    assert isinstance(tick(retrain_sensor, instance, definitions).skip_message, str)
    for session_id in (3, 4):
        store_at(trained.home).write_session(simulated(session_id))
    ingest(definitions, instance, "3")
    skipped = tick(retrain_sensor, instance, definitions)
    assert not skipped.run_requests and "1 new sessions" in skipped.skip_message

    ingest(definitions, instance, "4")
    (request,) = tick(retrain_sensor, instance, definitions).run_requests
    assert request.run_key == "retrain-3-4"
    assert retrain_sensor.job_name == "train_and_evaluate"

    # A model that considered 3 and 4 as well resets the count.
    instance.report_runless_asset_event(
        dg.AssetMaterialization(
            "phase3_model", metadata={"scored_sessions": dg.MetadataValue.json([1, 2, 3, 4])}
        )
    )
    assert not tick(retrain_sensor, instance, definitions).run_requests

    # A session the model saw, ingested again since (a collector resumed it), is new
    # data: it counts, under a key of its views' version, so each new version counts.
    monkeypatch.setenv(RETRAIN_AFTER_ENV, "1")
    keys = []
    for _ in range(2):
        ingest(definitions, instance, "3")
        (request,) = tick(retrain_sensor, instance, definitions).run_requests
        keys.append(request.run_key)
    assert all(re.fullmatch(r"retrain-3v\d+", key) for key in keys) and keys[0] != keys[1]


def test_retrain_sensor_counts_every_session_before_the_first_model(
    pipeline_home, instance, definitions, monkeypatch
):
    ingest(definitions, instance, "1", "2")
    monkeypatch.setenv(RETRAIN_AFTER_ENV, "3")
    assert not tick(retrain_sensor, instance, definitions).run_requests
    monkeypatch.setenv(RETRAIN_AFTER_ENV, "2")
    (request,) = tick(retrain_sensor, instance, definitions).run_requests
    assert request.run_key == "retrain-1-2"


# -- weekly_retrain ----------------------------------------------------------------------
def test_weekly_schedule_requests_train_and_evaluate(instance):
    sunday = datetime(2026, 1, 4, 3, 0, tzinfo=UTC)
    assert sunday.weekday() == 6
    context = dg.build_schedule_context(instance=instance, scheduled_execution_time=sunday)
    (request,) = weekly_retrain.evaluate_tick(context).run_requests
    assert request.job_name in (None, "train_and_evaluate")
    assert weekly_retrain.job_name == "train_and_evaluate"
    assert (weekly_retrain.cron_schedule, weekly_retrain.execution_timezone) == (
        "0 3 * * 0",
        "UTC",
    )


# -- a bad KALSHI_RETRAIN_AFTER_SESSIONS -------------------------------------------------
@pytest.mark.parametrize("value", ["0", "-1", "abc"])
def test_retrain_sensor_fails_its_tick_naming_a_bad_retrain_after(
    value, pipeline_home, instance, definitions, monkeypatch
):
    """``0`` or ``-1`` used to request a retrain with no new session (run key
    ``retrain-``), and ``abc`` failed the tick without naming the variable."""
    monkeypatch.setenv(RETRAIN_AFTER_ENV, value)
    with pytest.raises(Exception) as raised:
        tick(retrain_sensor, instance, definitions)
    causes = [raised.value]
    while causes[-1].__cause__ is not None:
        causes.append(causes[-1].__cause__)
    (error,) = [e for e in causes if isinstance(e, SettingError)]
    assert str(error).startswith(
        f"KALSHI_RETRAIN_AFTER_SESSIONS={value!r} is not a whole number of sessions from 1"
    )
