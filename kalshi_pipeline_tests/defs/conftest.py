"""Fixtures for the Dagster layer: a small simulated store, a test instance, the defs.

``pipeline_home`` points ``KALSHI_PIPELINE_HOME`` at a temporary directory holding a local
Parquet store of two closed simulated sessions (ten markets each); ``instance`` is a real
(SQLite, temporary) Dagster instance. ``trained`` runs the whole graph once per test
module (two sessions ingested, then ``train_and_evaluate`` with ``TINY_TRAINING``: the
smoke profile cut to one PPO rollout per phase) and is shared by that module's tests.

A failing source read is retried by ``raw_sessions``, which waits
``KALSHI_SOURCE_RETRY_DELAY_SECONDS`` before each retry: it is cut to a hundredth of a
second here (unless set), to keep tests of failing ingests fast.
"""

from __future__ import annotations

import os

os.environ.setdefault("KALSHI_SOURCE_RETRY_DELAY_SECONDS", "0.01")

import dataclasses
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from kalshi_pipeline.defs.config import TrainingSettings
from kalshi_pipeline.defs.partitions import sessions
from kalshi_pipeline.paths import COLLECTOR_URL_ENV, HOME_ENV, sessions_dir
from kalshi_pipeline.sources import ParquetSessionStore, RawSession
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session
from kalshi_pipeline.training.config import PROFILES

SEED = 0
MARKETS = 10
SMALL = SimulatorConfig(markets=MARKETS)
# Every market of a session this size has far fewer than the 50 steps training needs.
TOO_SHORT = SimulatorConfig(
    population=Population.TWO_CLASS, markets=4, median_events_per_market=8, events_sigma=0.2
)

# The smoke profile collects PPO rollouts of n_steps on each of n_envs envs; one rollout per
# phase is the least that trains (so the model's timestep count is exactly this).
TINY_TIMESTEPS = PROFILES["smoke"].hyperparameters.n_steps * PROFILES["smoke"].n_envs
TRAINING_ASSETS = ("phase1_model", "phase2_model", "phase3_model", "evaluation_report")
TINY_TRAINING = dg.RunConfig(
    ops={
        name: TrainingSettings(profile="smoke", timesteps_per_phase=TINY_TIMESTEPS)
        for name in TRAINING_ASSETS
    }
)


def simulated(session_id: int, config: SimulatorConfig = SMALL, **info_changes) -> RawSession:
    """Simulated session ``session_id``; ``info_changes`` edit its SessionInfo (status...)."""
    session = simulate_session(session_id, SEED, config)
    if info_changes:
        session = dataclasses.replace(
            session, info=dataclasses.replace(session.info, **info_changes)
        )
    return session


def store_at(home: Path) -> ParquetSessionStore:
    return ParquetSessionStore(sessions_dir(home))


def ingest(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    *keys: str,
    raise_on_error: bool = True,
    run_config: dg.RunConfig | None = None,
) -> list[dg.ExecuteInProcessResult]:
    """Register the session partitions ``keys`` and run ``ingest_session`` for each."""
    instance.add_dynamic_partitions(sessions.name, list(keys))
    job = definitions.resolve_job_def("ingest_session")
    return [
        job.execute_in_process(
            instance=instance, partition_key=key, raise_on_error=raise_on_error,
            run_config=run_config,
        )
        for key in keys
    ]  # fmt: skip


def materialization(result: dg.ExecuteInProcessResult, asset: str) -> dg.AssetMaterialization:
    """The one materialisation of ``asset`` in a run's result."""
    found = [
        m for m in result.asset_materializations_for_node(asset) if m.asset_key.path == [asset]
    ]
    assert len(found) == 1, f"{asset}: {len(found)} materialisations"
    return found[0]


def metadata(result: dg.ExecuteInProcessResult, asset: str) -> dict:
    """The metadata values of ``asset``'s materialisation, unwrapped."""
    return {k: v.value for k, v in materialization(result, asset).metadata.items()}


@pytest.fixture
def pipeline_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """``$KALSHI_PIPELINE_HOME``: a local store of closed sessions 1 and 2, no collector."""
    home = tmp_path / "home"
    monkeypatch.setenv(HOME_ENV, str(home))
    monkeypatch.delenv(COLLECTOR_URL_ENV, raising=False)
    store = store_at(home)
    for session_id in (1, 2):
        store.write_session(simulated(session_id))
    return home


@pytest.fixture
def instance() -> Iterator[dg.DagsterInstance]:
    with dg.instance_for_test() as test_instance:
        yield test_instance


@pytest.fixture(scope="session")
def definitions() -> dg.Definitions:
    from kalshi_pipeline.definitions import defs

    return defs()


@pytest.fixture(scope="session")
def tiny_training() -> dg.RunConfig:
    return TINY_TRAINING


@dataclass
class Trained:
    """The whole graph, run once: two sessions ingested, then train_and_evaluate."""

    home: Path
    instance: dg.DagsterInstance
    ingest_results: list[dg.ExecuteInProcessResult]
    training: dg.ExecuteInProcessResult


@pytest.fixture(scope="module")
def trained(
    tmp_path_factory: pytest.TempPathFactory,
    definitions: dg.Definitions,
    tiny_training: dg.RunConfig,
) -> Iterator[Trained]:
    home = tmp_path_factory.mktemp("trained") / "home"
    with pytest.MonkeyPatch.context() as patch, dg.instance_for_test() as test_instance:
        patch.setenv(HOME_ENV, str(home))
        patch.delenv(COLLECTOR_URL_ENV, raising=False)
        store = store_at(home)
        for session_id in (1, 2):
            store.write_session(simulated(session_id))
        ingested = ingest(definitions, test_instance, "1", "2")
        training = definitions.resolve_job_def("train_and_evaluate").execute_in_process(
            instance=test_instance, run_config=tiny_training
        )
        yield Trained(home, test_instance, ingested, training)
