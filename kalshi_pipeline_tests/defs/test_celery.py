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
    broker_stopped,
    deployment_files,
    kill,
    start_worker,
    steps_by_worker,
    train_and_evaluate,
    tune_hyperparameters,
    vhost,
    wait_until_ready,
)
from kalshi_pipeline.defs.executors import (
    BACKEND_ENV,
    BROKER_ENV,
    CELERY_SETTINGS,
    EXECUTOR_ENV,
    executor,
)
from kalshi_pipeline.paths import COLLECTOR_URL_ENV, HOME_ENV
from kalshi_pipeline.training.tuning import Study
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
    database = collector_db.replace("postgresql://", "postgresql+psycopg2://")
    env = {
        "DAGSTER_HOME": str(dagster_home),
        "DAGSTER_POSTGRES_URL": database,
        HOME_ENV: str(tmp_path / "home"),
        EXECUTOR_ENV: "celery",
        BROKER_ENV: broker,
        BACKEND_ENV: f"db+{database}",
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
    settings = {"profile": "smoke", "timesteps_per_phase": timesteps, "candidates": candidates}
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


def training_workers(instance: dg.DagsterInstance, runner: threading.Thread) -> list[str]:
    """Wait (up to 5 minutes) until the run's candidate steps are on workers: their names."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline and runner.is_alive():
        for run in instance.get_runs(limit=1):
            events = (e.dagster_event for e in instance.all_logs(run.run_id) if e.dagster_event)
            training = [
                worker
                for worker, keys in steps_by_worker(events).items()
                if any("_candidate[" in k for k in keys)
            ]
            if training:
                return sorted(training)
        time.sleep(0.5)
    return []


def candidate_runs(events) -> list[str]:
    """The candidate step keys the workers were given, once per execution."""
    keys = [k for found in steps_by_worker(events).values() for k in found]
    return sorted(k for k in keys if "_candidate[" in k)


def tune(instance: dg.DagsterInstance, storage: str, trials: int):
    """The ``tune_hyperparameters`` job on the Celery executor, its study in ``storage``:
    (success, failures, events)."""
    settings = {
        "study": "celery", "trials": trials, "profile": "smoke",
        "timesteps_per_phase": TINY_TIMESTEPS, "storage": storage,
    }  # fmt: skip
    run_config = {"ops": {"tuned_hyperparameters": {"config": settings}}}
    with dg.execute_job(
        dg.reconstructable(tune_hyperparameters), instance, run_config=run_config
    ) as result:
        failures = [str(e) for e in result.all_events if e.is_failure]
        return result.success, failures, result.all_events


@pytest.mark.slow  # about 50 s of two workers training: .ci/run runs it with the slow tests
def test_the_workers_share_a_runs_independent_steps(deployment, study_db, tmp_path):
    """Four seed candidates, then two Optuna trials on one study in PostgreSQL: both
    workers run steps of each."""
    instance = ingested(deployment)
    workers = start_workers(deployment, tmp_path)
    try:
        success, failures, events, chosen = train_phase1(instance, 4, TINY_TIMESTEPS)
        tuned, tuning_failures, tuning_events = tune(instance, study_db, 2)
    finally:
        for worker in workers.values():
            kill(worker)

    assert success, failures
    by_worker = steps_by_worker(events)
    assert set(by_worker) == {"w1", "w2"}, by_worker
    assert candidate_runs(events) == [f"phase1_model.phase1_candidate[seed_{s}]" for s in range(4)]
    # The four candidates are independent: both workers trained some of them.
    assert all(any("_candidate[" in k for k in keys) for keys in by_worker.values())
    assert len(chosen) == 1 and Path(chosen[0]).exists()

    assert tuned, tuning_failures
    trials = {w: [k for k in keys if ".tuning_trial[" in k] for w, keys in steps_by_worker(
        tuning_events
    ).items()}  # fmt: skip
    assert sorted(k for keys in trials.values() for k in keys) == [
        f"tuned_hyperparameters.tuning_trial[trial_{i}]" for i in (0, 1)
    ]
    assert all(trials.get(worker) for worker in ("w1", "w2")), trials
    study = Study(name="celery", storage=study_db, trials=2).open()
    assert len(study.trials) == 2  # both workers' trials in the one study


def phase1_with_a_fault(deployment: dict, tmp_path: Path, fault) -> tuple[list[str], tuple]:
    """Two candidates of phase 1 on workers w1 and w2; ``fault(workers, training)`` strikes
    mid-step, once the candidate steps are on the workers named in ``training``. Returns
    those names and ``train_phase1``'s result."""
    instance = ingested(deployment)
    workers = start_workers(deployment, tmp_path)
    outcome: dict = {}
    try:
        runner = threading.Thread(
            target=lambda: outcome.update(result=train_phase1(instance, 2, 40 * TINY_TIMESTEPS))
        )
        runner.start()
        training = training_workers(instance, runner)
        if training:
            time.sleep(3)  # mid-step: training, with checkpoints on the way
            fault(workers, training)
        runner.join(timeout=900)
    finally:
        for worker in workers.values():
            kill(worker)
    assert training, "no candidate step was seen starting"
    return training, outcome["result"]


@pytest.mark.slow  # two minutes of training: run by .ci/run with the slow tests
def test_a_worker_killed_mid_step_loses_nothing(deployment, tmp_path):
    """SIGKILL the worker training a candidate: the broker hands the unacknowledged step to
    the other worker, and the run succeeds with every candidate trained and one selected."""
    training, result = phase1_with_a_fault(
        deployment, tmp_path, lambda workers, training: kill(workers[training[0]])
    )

    killed = training[0]
    success, failures, events, chosen = result
    assert success, failures
    by_worker = steps_by_worker(events)
    survivor = ({"w1", "w2"} - {killed}).pop()
    candidates = [k for k in by_worker[survivor] if "_candidate[" in k]
    # The survivor ran its own candidate and the killed worker's one again.
    assert sorted(set(candidates)) == [f"phase1_model.phase1_candidate[seed_{s}]" for s in (0, 1)]
    lineage = json.loads(Path(chosen[0]).with_suffix(".json").read_text())
    assert [c["seed"] for c in lineage["candidates"]] == [0, 1]


def restart_the_broker(workers, training) -> None:
    with broker_stopped():
        time.sleep(5)


@pytest.mark.slow  # two minutes of training: run by .ci/run with the slow tests
def test_a_broker_restart_mid_run_loses_nothing(deployment, tmp_path):
    """Restart RabbitMQ while both workers train a candidate: the steps survive it
    (durable queue, results in PostgreSQL, publishing retried), and the run succeeds with
    both candidates and one chosen. The steps running during the restart cannot be
    acknowledged, so the broker may deliver them again: a repeat finds its work done."""
    _, result = phase1_with_a_fault(deployment, tmp_path, restart_the_broker)

    success, failures, events, chosen = result
    assert success, failures
    logs = "".join((tmp_path / f"{name}.log").read_text() for name in ("w1", "w2"))
    assert "Cannot connect to amqp" in logs  # the restart reached the workers mid-run
    runs = candidate_runs(events)
    assert sorted(set(runs)) == [f"phase1_model.phase1_candidate[seed_{s}]" for s in (0, 1)]
    lineage = json.loads(Path(chosen[0]).with_suffix(".json").read_text())
    assert [c["seed"] for c in lineage["candidates"]] == [0, 1]


def test_the_workers_and_the_runs_use_the_same_celery_settings():
    worker = yaml.safe_load((REPO / "deploy" / "celery.yaml").read_text())
    assert worker["execution"]["config"]["config_source"] == CELERY_SETTINGS
    assert worker["execution"]["config"]["backend"] == {"env": BACKEND_ENV}


def test_the_celery_executor_refuses_a_result_backend_a_broker_restart_loses(monkeypatch):
    monkeypatch.setenv(EXECUTOR_ENV, "celery")
    for value in ("rpc://", "", "cache+memory://", "RPC://", " rpc:", "amqp://guest@x//"):
        monkeypatch.setenv(BACKEND_ENV, value)
        with pytest.raises(ValueError, match=f"{BACKEND_ENV} must name a database"):
            executor()
    monkeypatch.setenv(BACKEND_ENV, "db+postgresql+psycopg2://postgres@127.0.0.1:5432/x")
    assert executor().name == "celery"
