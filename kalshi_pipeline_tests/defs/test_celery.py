"""The scale-out deployment for real: two Celery worker processes on the machine's
RabbitMQ (a vhost of the test's own), the Dagster instance in a scratch PostgreSQL
database, a run whose seed candidates are independent steps."""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml

from benchmarks.celery_workers import (
    REPO,
    WorkerError,
    deployment_files,
    kill,
    start_worker,
    steps_by_worker,
    train_and_evaluate,
    vhost,
    wait_until_ready,
)
from kalshi_pipeline.defs.executors import BROKER_ENV, CELERY_SETTINGS, EXECUTOR_ENV
from kalshi_pipeline.paths import COLLECTOR_URL_ENV, HOME_ENV
from kalshi_pipeline_tests.defs.conftest import TINY_TIMESTEPS, ingest, simulated, store_at


@pytest.fixture
def broker() -> Iterator[str]:
    """A broker URL on a vhost of this test's own, deleted afterwards."""
    try:
        with vhost() as url:
            yield url
    except WorkerError as error:
        pytest.fail(str(error), pytrace=False)


@pytest.fixture
def deployment(tmp_path, collector_db, broker, monkeypatch) -> dict:
    """The scale-out environment (deploy/): instance in PostgreSQL, Celery executor."""
    dagster_home, worker_yaml = deployment_files(tmp_path, broker)
    env = {
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_POSTGRES_URL": collector_db.replace("postgresql://", "postgresql+psycopg2://"),
        HOME_ENV: str(tmp_path / "home"),
        EXECUTOR_ENV: "celery",
        BROKER_ENV: broker,
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(COLLECTOR_URL_ENV, raising=False)
    return {**env, "worker_yaml": worker_yaml}


def start_workers(deployment: dict, tmp_path: Path) -> dict[str, subprocess.Popen]:
    """Workers w1 and w2, ready."""
    logs = {name: tmp_path / f"{name}.log" for name in ("w1", "w2")}
    workers = {
        name: start_worker(deployment["worker_yaml"], f"{name}@test", log)
        for name, log in logs.items()
    }
    try:
        wait_until_ready(list(workers.values()), list(logs.values()))
    except WorkerError as error:
        for worker in workers.values():
            kill(worker)
        pytest.fail(str(error), pytrace=False)
    return workers


def ingested(deployment: dict) -> dg.DagsterInstance:
    """The PostgreSQL instance (``DAGSTER_HOME``) with sessions 1-3 ingested in process."""
    instance = dg.DagsterInstance.get()
    from kalshi_pipeline.definitions import defs

    store = store_at(Path(deployment[HOME_ENV]))
    for session_id in (1, 2, 3):
        store.write_session(simulated(session_id))
    ingest(defs(), instance, "1", "2", "3")
    return instance


def train_phase1(instance: dg.DagsterInstance, candidates: int, timesteps: int):
    """``train_and_evaluate`` up to ``phase1_model`` on the Celery executor: (success,
    events, the selected model's path)."""
    settings = {"profile": "demo", "timesteps_per_phase": timesteps, "candidates": candidates}
    run_config = {
        "ops": {
            "train_holdout_split": {"config": {"validation_fraction": 0.4}},
            "phase1_model": {"config": settings},
        }
    }
    selection = ("difficulty_scores", "train_holdout_split", "phase1_model")
    with dg.execute_job(
        dg.reconstructable(train_and_evaluate), instance, run_config=run_config,
        asset_selection=[dg.AssetKey(k) for k in selection],
    ) as result:  # fmt: skip
        chosen = [
            e.event_specific_data.materialization.metadata["model_path"].value
            for e in result.get_asset_materialization_events()
            if e.asset_key == dg.AssetKey("phase1_model")
        ]
        failures = [str(e) for e in result.all_events if e.is_failure]
        return result.success, failures, result.all_events, chosen


def test_the_workers_share_a_runs_independent_candidate_steps(deployment, tmp_path):
    instance = ingested(deployment)
    workers = start_workers(deployment, tmp_path)
    try:
        success, failures, events, chosen = train_phase1(instance, 4, TINY_TIMESTEPS)
    finally:
        for worker in workers.values():
            kill(worker)

    assert success, failures
    by_worker = steps_by_worker(events)
    assert set(by_worker) == {"w1", "w2"}, by_worker
    candidates = sorted(k for keys in by_worker.values() for k in keys if "_candidate[" in k)
    assert candidates == [f"phase1_model.phase1_candidate[seed_{s}]" for s in range(4)]
    # The four candidates are independent: both workers trained some of them.
    assert all(any("_candidate[" in k for k in keys) for keys in by_worker.values())
    assert len(chosen) == 1 and Path(chosen[0]).exists()


@pytest.mark.slow  # two minutes of training: run by .ci/run with the slow tests
def test_a_worker_killed_mid_step_loses_nothing(deployment, tmp_path):
    """SIGKILL the worker training a candidate: the broker hands the unacknowledged step to
    the other worker, and the run succeeds with every candidate trained and one selected."""
    instance = ingested(deployment)
    workers = start_workers(deployment, tmp_path)
    outcome: dict = {}
    try:
        runner = threading.Thread(
            target=lambda: outcome.update(result=train_phase1(instance, 2, 40 * TINY_TIMESTEPS))
        )
        runner.start()
        killed = None
        deadline = time.monotonic() + 300
        while killed is None and time.monotonic() < deadline and runner.is_alive():
            for run in instance.get_runs(limit=1):
                training = {
                    worker: keys
                    for worker, keys in steps_by_worker(
                        e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event
                    ).items()
                    if any("_candidate[" in k for k in keys)
                }
                if training:
                    killed = sorted(training)[0]
                    time.sleep(3)  # mid-step: training, with checkpoints on the way
                    kill(workers[killed])
            time.sleep(0.5)
        runner.join(timeout=600)
    finally:
        for worker in workers.values():
            kill(worker)

    assert killed is not None, "no candidate step was seen starting"
    success, failures, events, chosen = outcome["result"]
    assert success, failures
    by_worker = steps_by_worker(events)
    survivor = ({"w1", "w2"} - {killed}).pop()
    candidates = [k for k in by_worker[survivor] if "_candidate[" in k]
    # The survivor ran its own candidate and the killed worker's one again.
    assert sorted(set(candidates)) == [f"phase1_model.phase1_candidate[seed_{s}]" for s in (0, 1)]
    lineage = json.loads(Path(chosen[0]).with_suffix(".json").read_text())
    assert [c["seed"] for c in lineage["candidates"]] == [0, 1]


def test_the_workers_and_the_runs_use_the_same_celery_settings():
    worker = yaml.safe_load((REPO / "deploy" / "celery.yaml").read_text())
    assert worker["execution"]["config"]["config_source"] == CELERY_SETTINGS
