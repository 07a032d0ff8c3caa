"""The main job on the embedded default: ``kalshi-pipeline demo``.

Makes a simulated session store under ``<home>/sessions`` if there is none, uses the
local Dagster instance in ``$DAGSTER_HOME`` (``<home>/dagster`` when unset, with the
repository's instance settings: SQLite, no services), registers every complete session as
a ``sessions`` partition, materialises ``raw_sessions`` and ``market_views`` for each new
partition, then the training graph with the demo profile, and prints where the report is.
Runs are recorded in the instance, so ``dagster dev`` with the same ``DAGSTER_HOME`` shows
them. Sessions already ingested are not ingested again.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import dagster as dg

from kalshi_pipeline.defs.automation import DEMO_RUN_CONFIG
from kalshi_pipeline.defs.partitions import session_key, sessions
from kalshi_pipeline.settings import HOME_ENV, sessions_dir
from kalshi_pipeline.sources import ParquetSessionStore
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_sessions

DEMO_SESSIONS, DEMO_MARKETS, DEMO_SEED = 4, 40, 0
INSTANCE_SETTINGS = Path(__file__).resolve().parents[2] / "dagster.yaml"
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}


def prepare_instance(home: Path) -> dg.DagsterInstance:
    """The local instance: ``$DAGSTER_HOME``, or ``<home>/dagster`` with our settings."""
    if not os.environ.get("DAGSTER_HOME"):
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        settings = dagster_home / "dagster.yaml"
        if not settings.exists():
            settings.write_text(
                INSTANCE_SETTINGS.read_text() if INSTANCE_SETTINGS.exists() else "{}\n"
            )
        os.environ["DAGSTER_HOME"] = str(dagster_home)
    return dg.DagsterInstance.get()


def ensure_store(home: Path) -> ParquetSessionStore:
    store = ParquetSessionStore(sessions_dir(home))
    if not store.list_sessions():
        print(f"no session store at {store.path}: simulating {DEMO_SESSIONS} sessions")
        for session in simulate_sessions(
            DEMO_SESSIONS, DEMO_SEED, SimulatorConfig(markets=DEMO_MARKETS), progress=True
        ):
            store.write_session(session)
    return store


def run_demo(home: Path, run_config: dg.RunConfig | None = None) -> Path:
    """The whole graph on the embedded default; returns the report's path."""
    os.environ[HOME_ENV] = str(home)
    store = ensure_store(home)
    instance = prepare_instance(home)
    from kalshi_pipeline.definitions import defs

    definitions = defs()
    registered = set(instance.get_dynamic_partitions(sessions.name))
    keys = [session_key(s.session_id) for s in store.list_sessions() if s.is_complete]
    new = [k for k in keys if k not in registered]
    instance.add_dynamic_partitions(sessions.name, new)
    print(f"instance: {instance.root_directory}; sessions: {len(keys)} ({len(new)} new)")
    ingest = definitions.resolve_job_def("ingest_session")
    for number, key in enumerate(new, 1):
        started = time.perf_counter()
        result = ingest.execute_in_process(
            instance=instance, partition_key=key, run_config=_QUIET, raise_on_error=True
        )
        views = _metadata(result, "market_views", "views")
        print(
            f"[{number}/{len(new)}] session {key}: {views} views "
            f"({time.perf_counter() - started:.1f}s)"
        )
    print("training phases 1-3 (demo profile) and evaluating ...")
    started = time.perf_counter()
    config = run_config or DEMO_RUN_CONFIG
    result = definitions.resolve_job_def("train_and_evaluate").execute_in_process(
        instance=instance, run_config=_with_quiet_logs(config), raise_on_error=True
    )
    report = Path(result.output_for_node("evaluation_report"))
    print(f"done in {time.perf_counter() - started:.0f}s; report: {report}")
    return report


def _with_quiet_logs(config: dg.RunConfig) -> dict:
    return {**config.to_config_dict(), **_QUIET}


def _metadata(result: dg.ExecuteInProcessResult, asset: str, key: str):
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.to_user_string() == asset:
            return materialization.metadata[key].value
    return None
