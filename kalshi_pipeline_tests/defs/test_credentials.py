"""A collector URL's password never reaches Dagster's storage, logs or the pipeline's files.

The URL below has an unescaped ``%`` in its password, so libpq rejects it and quotes the
password back in its error. The sensor daemon ticks and an ingest run fails on a real
instance under ``tmp_path``; then every byte of the instance's files (run, event-log and
schedule databases, compute logs) and of ``KALSHI_PIPELINE_HOME`` is searched for the
password, as written and percent-decoded.
"""

from __future__ import annotations

import logging
import sys
from pathlib import Path
from urllib.parse import unquote

import dagster as dg
from dagster._core.remote_origin import InProcessCodeLocationOrigin
from dagster._core.scheduler.instigation import TickStatus
from dagster._core.test_utils import (
    InProcessTestWorkspaceLoadTarget,
    create_test_daemon_workspace_context,
)
from dagster._core.types.loadable_target_origin import LoadableTargetOrigin
from dagster._daemon.sensor import execute_sensor_iteration
from dagster._utils.error import serializable_error_info_from_exc_info

from kalshi_pipeline.defs.resources import PipelineResource
from kalshi_pipeline.defs.sensors import new_sessions_sensor
from kalshi_pipeline.paths import COLLECTOR_URL_ENV
from kalshi_pipeline.sources import PostgresSessionSource
from kalshi_pipeline_tests.defs.conftest import ingest

TOKEN = "LeakCanary7731"
# '%41' decodes to 'A'; '%wo' is no escape at all, which is what makes libpq refuse the URL.
PASSWORD = f"pa%41ss%word-{TOKEN}"
URL = f"postgresql://postgres:{PASSWORD}@127.0.0.1:5432/collector"
FORBIDDEN = [form.encode() for form in (PASSWORD, unquote(PASSWORD), TOKEN, URL)]


def files_holding_the_password(*roots: Path) -> list[str]:
    return sorted(
        str(path)
        for root in roots
        for path in root.rglob("*")
        if path.is_file() and any(form in path.read_bytes() for form in FORBIDDEN)
    )


def sensor_daemon_ticks(instance: dg.DagsterInstance) -> list:
    """One iteration of the sensor daemon; the new-sessions ticks it stored in ``instance``."""
    origin = InProcessCodeLocationOrigin(
        LoadableTargetOrigin(module_name="kalshi_pipeline.definitions", attribute="defs"),
        location_name="kalshi_pipeline",
    )
    with create_test_daemon_workspace_context(
        InProcessTestWorkspaceLoadTarget(origin), instance
    ) as workspace:
        list(execute_sensor_iteration(workspace, logging.getLogger("sensor"), None, None))
        location = workspace.create_request_context().get_code_location("kalshi_pipeline")
        (repository,) = location.get_repositories().values()
        sensor = repository.get_sensor(new_sessions_sensor.name)
    return instance.get_ticks(sensor.get_remote_origin_id(), sensor.selector_id)


def test_a_malformed_collector_url_leaks_nowhere(tmp_path, pipeline_home, definitions, monkeypatch):
    monkeypatch.setenv(COLLECTOR_URL_ENV, URL)
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    source = PostgresSessionSource(URL)
    assert URL not in repr(source) and TOKEN not in str(source)

    with dg.instance_for_test(temp_dir=str(dagster_home)) as instance:
        # The sensor evaluated directly: what it says, whether it skips or fails the tick.
        with dg.build_sensor_context(
            instance_ref=instance.get_ref(),
            resources={"pipeline": PipelineResource()},
            definitions=definitions,
        ) as context:
            try:
                said = new_sessions_sensor.evaluate_tick(context).skip_message or ""
            except Exception:  # noqa: BLE001 - the error as Dagster records it
                said = serializable_error_info_from_exc_info(sys.exc_info()).to_string()
        assert "the URL is malformed, while listing sessions" in said
        assert TOKEN not in said

        # The sensor through the daemon: the tick is stored with that message.
        (tick,) = sensor_daemon_ticks(instance)
        assert tick.status in (TickStatus.SKIPPED, TickStatus.FAILURE)
        stored = tick.skip_reason or tick.error.to_string()
        assert "the URL is malformed, while listing sessions" in stored

        # An ingest run fails with the clear error in its event log.
        (run,) = ingest(definitions, instance, "1", raise_on_error=False)
        assert not run.success
        errors = [e.event_specific_data.error.to_string() for e in run.all_events if e.is_failure]
        assert errors and all("SourceMisconfigured" in error for error in errors)
        assert "the URL is malformed, while loading session 1: connecting" in errors[-1]

    assert any(dagster_home.rglob("*.db"))
    assert files_holding_the_password(dagster_home, pipeline_home) == []
