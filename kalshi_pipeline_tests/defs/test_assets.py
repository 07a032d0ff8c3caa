"""The assets on a real Dagster instance: ingest, checks, the whole graph, increments.

Every test materialises through the project's jobs (``ingest_session``,
``train_and_evaluate``) on a temporary SQLite instance, with sessions from the simulator
in a local Parquet store under a temporary ``KALSHI_PIPELINE_HOME``.
"""

from __future__ import annotations

import base64
import csv
import json
import os
import re
import socket
import subprocess
import sys
from contextlib import closing
from pathlib import Path

import dagster as dg
import psycopg2
import pyarrow.parquet as pq
import pytest
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from kalshi_pipeline.defs.config import FilterSettings, TrainingSettings, TuningSettings
from kalshi_pipeline.defs.partitions import sessions
from kalshi_pipeline.defs.resources import PipelineResource
from kalshi_pipeline.defs.sensors import new_sessions_sensor
from kalshi_pipeline.market.views import read_views
from kalshi_pipeline.paths import (
    COLLECTOR_URL_ENV,
    artifacts_dir,
    hyperparameters_file,
    tuning_dir,
)
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.training.config import read_hyperparameters
from kalshi_pipeline.training.report import PLOTS
from kalshi_pipeline.training.tuning import Study
from kalshi_pipeline_tests.defs.conftest import (
    MARKETS,
    TINY_TIMESTEPS,
    TOO_SHORT,
    ingest,
    materialization,
    metadata,
    simulated,
    store_at,
)

CHECKS = ("min_episode_length", "min_coverage", "data_quality")


def check_evaluations(result: dg.ExecuteInProcessResult) -> dict[str, dg.AssetCheckEvaluation]:
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def materialization_count(instance: dg.DagsterInstance, asset: str, partition: str) -> int:
    records = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), asset_partitions=[partition]),
        limit=100,
    ).records
    return len(records)


def files_under(directory: Path) -> dict[Path, tuple[int, bytes]]:
    """Every file below ``directory`` with its modification time and content."""
    return {
        p: (p.stat().st_mtime_ns, p.read_bytes())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    }


# -- one session -------------------------------------------------------------------------
def test_ingesting_a_session_writes_its_raw_copy_and_views_with_metadata(
    pipeline_home, instance, definitions
):
    (result,) = ingest(definitions, instance, "1")
    artifacts = artifacts_dir(pipeline_home)

    source = store_at(pipeline_home).load_session(1)
    copy = PipelineResource().raw_store(1).load_session(1)
    assert copy.info == source.info
    assert copy.snapshots.equals(source.snapshots) and copy.deltas.equals(source.deltas)
    assert artifacts / "raw" in PipelineResource().raw_store(1).path.parents
    raw = metadata(result, "raw_sessions")
    assert raw["status"] == "closed" and raw["markets"] == MARKETS
    assert (raw["snapshots"], raw["deltas"]) == (source.snapshots.num_rows, source.deltas.num_rows)

    views_file = artifacts / "views" / "session-1.parquet"
    views = read_views(views_file)
    assert {v.market_ticker for v in views} == set(source.info.market_tickers)
    meta = metadata(result, "market_views")
    assert Path(meta["path"]) == views_file
    assert meta["views"] == len(views) == MARKETS
    assert meta["steps"] == sum(len(v) for v in views)
    assert isinstance(meta["repairs"], dict)
    assert meta["rejected_markets"] == 0
    table = meta["statistics"].splitlines()
    assert table[0].startswith("| market | steps |") and len(table) == 2 + len(views)
    for view in views:
        row = next(line for line in table if line.startswith(f"| {view.market_ticker} |"))
        assert row.split("|")[2].strip() == str(len(view))

    # The materialisations are the instance's, per partition, not only the run's.
    for asset in ("raw_sessions", "market_views"):
        latest = instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert latest.asset_materialization.partition == "1"
    # The views were built through scratch files, and none is left.
    assert [p for p in (artifacts / "scratch").rglob("*") if p.is_file()] == []


def test_the_scratch_of_a_process_that_is_gone_is_deleted_and_the_rest_kept(pipeline_home):
    root, host = artifacts_dir(pipeline_home) / "scratch", socket.gethostname()
    gone = subprocess.Popen([sys.executable, "-c", "pass"])
    gone.wait()
    running = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(120)"])
    try:
        left = {
            "gone": root / f"pid-{gone.pid}-on-{host}",
            "running": root / f"pid-{running.pid}-on-{host}",
            "another host": root / f"pid-{gone.pid}-on-another-{host}",
        }
        for directory in left.values():
            (directory / "views-1").mkdir(parents=True)
            (directory / "views-1" / "events-0.npz").write_bytes(b"x")

        mine = PipelineResource().scratch()
    finally:
        running.kill()
        running.wait()

    assert mine == root / f"pid-{os.getpid()}-on-{host}" and mine.is_dir()
    assert not left["gone"].exists()
    assert left["running"].exists() and left["another host"].exists()


def test_the_checks_pass_and_list_excluded_views_with_their_reasons(
    pipeline_home, instance, definitions
):
    (result,) = ingest(definitions, instance, "1")
    evaluations = check_evaluations(result)
    assert set(evaluations) == set(CHECKS)
    assert all(e.passed for e in evaluations.values())

    views = {
        v.market_ticker: len(v)
        for v in read_views(artifacts_dir(pipeline_home) / "views" / "session-1.parquet")
    }
    short = {t: n for t, n in views.items() if n < FilterSettings().min_episode_length}
    assert short, "the fixture session should have views below the minimum length"
    length = evaluations["min_episode_length"].metadata
    assert length["excluded"].value == len(short)
    listed = length["views"].value.splitlines()
    assert len(listed) == len(short)
    for ticker, steps in short.items():  # each excluded market, with why
        (line,) = [line for line in listed if line.startswith(f"- {ticker}: ")]
        assert "too short" in line and f"{steps} steps" in line
    usable = evaluations["data_quality"].metadata["usable_views"].value
    assert usable == metadata(result, "market_views")["passing_filters"] > 0
    assert evaluations["data_quality"].metadata["rejected_markets"].value == "(none)"

    # Recorded on the instance, as the UI shows them.
    latest = instance.event_log_storage.get_latest_asset_check_execution_by_key(
        [dg.AssetCheckKey(dg.AssetKey("market_views"), name) for name in CHECKS]
    )
    assert {key.name: record.status for key, record in latest.items()} == {
        name: AssetCheckExecutionRecordStatus.SUCCEEDED for name in CHECKS
    }


@pytest.mark.parametrize("unusable", ["every market too short", "a filter nothing passes"])
def test_a_session_with_no_usable_view_fails_data_quality_and_blocks_downstream(
    unusable, pipeline_home, instance, definitions
):
    run_config = None
    if unusable == "every market too short":
        store_at(pipeline_home).write_session(simulated(9, TOO_SHORT))
        key = "9"
    else:
        run_config = dg.RunConfig(ops={"market_views": FilterSettings(min_episode_length=10**6)})
        key = "1"
    instance.add_dynamic_partitions(sessions.name, [key])

    # One run holding the session's assets and what is downstream of them.
    result = dg.materialize(
        definitions.assets,
        selection=["raw_sessions", "market_views", "difficulty_scores"],
        partition_key=key,
        instance=instance,
        resources=definitions.resources,
        run_config=run_config,
        raise_on_error=False,
    )

    assert not result.success
    quality = check_evaluations(result)["data_quality"]
    assert not quality.passed
    assert quality.severity == dg.AssetCheckSeverity.ERROR
    assert quality.metadata["usable_views"].value == 0
    assert "no view of this session is usable" in quality.description
    # The views are recorded (a user can see why), but nothing downstream ran.
    assert materialization_count(instance, "market_views", key) == 1
    assert instance.get_latest_materialization_event(dg.AssetKey("difficulty_scores")) is None
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "difficulty_scores" not in started
    failed = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert [e.step_key for e in failed] == ["market_views"]


def test_an_active_session_fails_raw_sessions_naming_the_session(
    pipeline_home, instance, definitions
):
    store_at(pipeline_home).write_session(simulated(7, status="active", ended_at=None))
    (result,) = ingest(definitions, instance, "7", raise_on_error=False)

    assert not result.success
    (failure,) = [e for e in result.all_events if e.event_type_value == "STEP_FAILURE"]
    assert failure.step_key == "raw_sessions"
    error = failure.step_failure_data.error
    messages = []
    while error is not None:
        messages.append(error.message)
        error = error.cause
    assert any("session 7 is still active" in m for m in messages), messages
    assert materialization_count(instance, "raw_sessions", "7") == 0
    assert not (artifacts_dir(pipeline_home) / "views" / "session-7.parquet").exists()


# -- the whole graph ---------------------------------------------------------------------
PHASES = ("phase1_model", "phase2_model", "phase3_model")


def test_the_whole_graph_succeeds(trained):
    assert all(r.success for r in trained.ingest_results)
    assert trained.training.success
    training_assets = {"difficulty_scores", "train_holdout_split", *PHASES, "evaluation_report"}
    for asset in training_assets:
        event = trained.instance.get_latest_materialization_event(dg.AssetKey(asset))
        assert event is not None and event.run_id == trained.training.run_id, asset


def test_difficulty_scores_point_at_their_parquet_table(trained):
    meta = metadata(trained.training, "difficulty_scores")
    table = pq.read_table(meta["scores_path"])
    scores = Path(meta["scores_path"])
    assert scores.parent == artifacts_dir(trained.home) / "difficulty_scores"
    assert scores.name.startswith("run-")
    assert table.num_rows == meta["views"] == 2 * MARKETS
    assert meta["sessions"] == 2


def test_each_phase_model_records_its_lineage(trained):
    split = trained.training.output_for_node("train_holdout_split")
    train_views = set(split.train)
    models_dir = artifacts_dir(trained.home) / "models" / f"run-{trained.training.run_id}"
    parent = ""
    for phase, name in enumerate(PHASES, 1):
        meta = metadata(trained.training, name)
        model = Path(meta["model_path"])
        assert model == models_dir / f"phase{phase}" / "model.zip" and model.exists()
        assert str(model) == trained.training.output_for_node(name)
        assert meta["sessions"] == [1]  # session 2 is kept for the walk-forward evaluation
        assert meta["views"] == len(train_views)
        assert meta["parent_model"] == parent  # phase 1 has none; 2 and 3 their predecessor
        assert meta["seed"] == 0
        assert meta["timesteps"] == TINY_TIMESTEPS
        config = meta["config"]
        assert config["phase1_timesteps"] == config["phase3_timesteps"] == TINY_TIMESTEPS
        assert config["hyperparameters"]["n_steps"] * config["n_envs"] == TINY_TIMESTEPS
        parent = str(model)


def test_each_phase_logs_its_progress_and_evaluation_its_episodes(trained):
    """The run's log (the UI's, and the demo's console): each phase's candidate says its
    timesteps, timesteps/s and latest validation score; the evaluation its episodes."""
    messages = {}
    for entry in trained.instance.all_logs(trained.training.run_id):
        if entry.user_message and entry.step_key:
            messages.setdefault(entry.step_key.split(".")[0], []).append(entry.user_message)
    for phase, name in enumerate(PHASES, 1):
        progress = [m for m in messages[name] if f"phase {phase}: " in m]
        assert progress, name
        done = f"{TINY_TIMESTEPS:,}/{TINY_TIMESTEPS:,} timesteps ("
        assert any(m.startswith(f"seed 0, phase {phase}: {done}") for m in progress), progress
        assert all(re.search(r"timesteps \([\d,]+/s\)", m) for m in progress)
        assert any("validation at " in m and "model - HOLD" in m for m in progress)
    assert any(m.startswith("evaluated: ") for m in messages["evaluation_report"])


def test_the_evaluation_report_shows_its_summary_and_plots(trained):
    meta = metadata(trained.training, "evaluation_report")
    report = Path(meta["report"])
    assert report.exists() and report == Path(trained.training.output_for_node("evaluation_report"))
    assert report.is_relative_to(artifacts_dir(trained.home) / "reports")
    phase3 = metadata(trained.training, "phase3_model")["model_path"]
    assert meta["model"] == phase3
    assert meta["summary"].startswith("# Evaluation report")  # results first
    assert phase3 in report.read_text()  # the report names the model it evaluated (last)
    # Besides the holdout, every view of session 2, recorded after the training session.
    walk_forward = trained.training.output_for_node("train_holdout_split").walk_forward
    assert walk_forward and {key.split("/")[0] for key in walk_forward} == {"2"}
    # Under the first line, the execution it was measured under; then the walk-forward.
    lines = report.read_text().splitlines()
    assert lines[2].startswith("Execution: taker (orders cross the spread at once")
    assert lines[4].startswith(f"Walk-forward, on the {len(walk_forward)} views of session(s) 2,")
    with open(report.parent / "episodes.csv") as fh:
        played = {r["view_key"] for r in csv.DictReader(fh) if r["split"] == "walk_forward"}
    assert played == set(walk_forward)
    images = re.findall(r"!\[[^]]*\]\(data:image/png;base64,([A-Za-z0-9+/=]+)\)", meta["plots"])
    assert len(images) == len(PLOTS)
    assert all(base64.b64decode(image).startswith(b"\x89PNG\r\n\x1a\n") for image in images)


# -- increments --------------------------------------------------------------------------
def test_a_new_session_is_ingested_alone(pipeline_home, instance, definitions):
    ingest(definitions, instance, "1", "2")
    artifacts = artifacts_dir(pipeline_home)
    before = files_under(artifacts)
    assert artifacts / "views" / "session-1.parquet" in before
    assert artifacts / "views" / "session-2.parquet" in before

    store_at(pipeline_home).write_session(simulated(3))
    with dg.build_sensor_context(
        instance_ref=instance.get_ref(),
        resources={"pipeline": PipelineResource()},
        definitions=definitions,
    ) as context:
        tick = new_sessions_sensor.evaluate_tick(context)
    assert [r.partition_key for r in tick.run_requests] == ["3"]
    (result,) = ingest(definitions, instance, "3")

    assert result.success
    for asset in ("raw_sessions", "market_views"):
        assert materialization(result, asset).partition == "3"
        assert [materialization_count(instance, asset, k) for k in ("1", "2", "3")] == [1, 1, 1]
    # Nothing sessions 1 and 2 wrote was touched: no rewrite, no shared file updated.
    after = files_under(artifacts)
    assert {p: after[p] for p in before} == before
    assert artifacts / "views" / "session-3.parquet" in after


def test_a_holdout_market_stays_in_holdout_as_sessions_are_added(
    pipeline_home, instance, definitions
):
    training = definitions.resolve_job_def("train_and_evaluate")
    scores_and_split = [dg.AssetKey("difficulty_scores"), dg.AssetKey("train_holdout_split")]

    def split_now() -> dict[str, set[str]]:
        """The markets on each side ("train": training and validation, between which a
        market may move as markets arrive), and "views": every (session, market) split."""
        result = training.execute_in_process(instance=instance, asset_selection=scores_and_split)
        split = result.output_for_node("train_holdout_split")
        sides = {"train": split.train + split.validation, "holdout": split.holdout}
        markets = {side: {k.split("/", 1)[1] for k in keys} for side, keys in sides.items()}
        views = {
            (int(k.split("/", 1)[0]), k.split("/", 1)[1]) for k in sides["train"] + split.holdout
        }
        return {**markets, "views": views}

    ingest(definitions, instance, "1", "2")
    before = split_now()
    store = store_at(pipeline_home)
    for session_id in (3, 4):
        store.write_session(simulated(session_id))
    ingest(definitions, instance, "3", "4")
    after = split_now()

    assert before["holdout"] and before["train"]
    assert not after["train"] & after["holdout"]  # market-grouped: no market on both sides
    assert before["holdout"] <= after["holdout"]
    assert before["train"] <= after["train"]
    assert {s for s, _ in after["views"]} == {1, 2, 3, 4} and after["views"] > before["views"]


# -- the collector's Postgres ------------------------------------------------------------
def test_the_collector_url_never_reaches_the_event_log(
    collector_tables, pipeline_home, instance, definitions, monkeypatch
):
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, simulated(5))
    monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)
    database = collector_tables.rsplit("/", 1)[1]

    (result,) = ingest(definitions, instance, "5")

    assert result.success
    raw = metadata(result, "raw_sessions")
    assert raw["source"] == "collector postgres"
    assert raw["markets"] == MARKETS
    assert metadata(result, "market_views")["views"] == MARKETS
    run = instance.get_run_by_id(result.run_id)
    logged = [dg.serialize_value(entry) for entry in instance.all_logs(result.run_id)]
    text = "\n".join([dg.serialize_value(run), *logged])
    assert len(logged) > 10 and "raw_sessions" in text
    assert collector_tables not in text
    assert database not in text


def test_tuning_runs_in_its_own_job_and_training_accepts_its_file(trained, definitions):
    settings = TuningSettings(
        study="asset", trials=2, profile="smoke", timesteps_per_phase=TINY_TIMESTEPS
    )
    result = definitions.resolve_job_def("tune_hyperparameters").execute_in_process(
        instance=trained.instance, run_config=dg.RunConfig(ops={"tuned_hyperparameters": settings})
    )

    materialised = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialised == {"tuned_hyperparameters"}  # the split is read, nothing retrained
    meta = metadata(result, "tuned_hyperparameters")
    path = Path(meta["hyperparameters_file"])
    assert path == hyperparameters_file(trained.home, "asset") and path.exists()
    assert meta["trials"] == 2 == meta["complete"] + meta["pruned"]
    assert meta["objective"] == meta["ci95"][0]
    # One step per trial (the executor may place them on different workers), each with its
    # own sampler seed: the two random first trials try different hyperparameters.
    succeeded = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    trials = {k for k in succeeded if ".tuning_trial[" in k}
    assert trials == {f"tuned_hyperparameters.tuning_trial[trial_{i}]" for i in (0, 1)}
    study = Study(
        name="asset", storage=str(tuning_dir(trained.home) / "studies.journal"), trials=2
    ).open()
    assert study.trials[0].params != study.trials[1].params
    # The training config takes the file, as the CLI's --hyperparams does.
    training = TrainingSettings(profile="smoke", hyperparams=str(path)).to_domain().resolve()
    assert training.hyperparameters == read_hyperparameters(path)
    assert json.loads(path.read_text())["study"]["name"] == "asset"
