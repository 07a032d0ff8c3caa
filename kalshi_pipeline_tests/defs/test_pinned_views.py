"""One training run reads one version of each session's views, and says what it trains.

A ``train_and_evaluate`` run reads views step by step (the statistics for the split,
then each phase, the evaluation, the promotion), and a session may be ingested again
between two of its steps (the sensor re-ingests a session that changed). The split pins
the version of every views file it was made from; a later step that finds another
version fails, naming the session and the file, instead of training or evaluating on a
mix of the two. Steps whose error cannot change on a retry fail once, not three times.
"""

from __future__ import annotations

import pickle

import dagster as dg

from kalshi_pipeline.defs.config import TrainingSettings
from kalshi_pipeline.market.split import Split
from kalshi_pipeline.paths import artifacts_dir, sessions_dir
from kalshi_pipeline.sources.simulator import simulate_session
from kalshi_pipeline_tests.defs.conftest import SMALL, TINY_TIMESTEPS, ingest, store_at

SCORES_AND_SPLIT = [dg.AssetKey("difficulty_scores"), dg.AssetKey("train_holdout_split")]


def phase1(budget: int) -> dg.RunConfig:
    return dg.RunConfig(
        ops={"phase1_model": TrainingSettings(profile="smoke", timesteps_per_phase=budget)}
    )


def step_events(instance: dg.DagsterInstance, run_id: str, step: str) -> list[str]:
    """The step's start, retry and failure events in the run's log, in order."""
    kinds = {
        dg.DagsterEventType.STEP_START: "start",
        dg.DagsterEventType.STEP_UP_FOR_RETRY: "retry",
        dg.DagsterEventType.STEP_FAILURE: "failure",
    }
    return [
        kinds[e.dagster_event.event_type]
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None
        and e.dagster_event.event_type in kinds
        and e.dagster_event.step_key == step
    ]


def failure_message(result: dg.ExecuteInProcessResult) -> tuple[str, str]:
    """The first failed step's key and its error as Dagster shows it (with causes)."""
    event = next(e for e in result.all_events if e.is_step_failure)
    return event.step_key, event.step_failure_data.error.to_string()


def test_a_session_ingested_again_mid_training_fails_the_next_phase_naming_it(
    pipeline_home, instance, definitions
):
    """The split is made from session 1's first views; the session changes at its source
    and is ingested again; phase 1, materialised next, finds another version of session
    1's views and fails naming it, before training on anything."""
    ingest(definitions, instance, "1", "2")
    training = definitions.resolve_job_def("train_and_evaluate")
    made = training.execute_in_process(instance=instance, asset_selection=SCORES_AND_SPLIT)
    split = made.output_for_node("train_holdout_split")
    assert {int(k.split("/")[0]) for k in split.train} == {1}  # session 2: walk-forward
    assert set(split.views_versions) == {1, 2}

    # Session 1 changes at its source (other rows, same markets) and is ingested again.
    store_at(pipeline_home).write_session(simulate_session(1, 5, SMALL), replace=True)
    (again,) = ingest(definitions, instance, "1")
    assert again.success

    result = training.execute_in_process(
        instance=instance, asset_selection=[dg.AssetKey("phase1_model")],
        run_config=phase1(TINY_TIMESTEPS), raise_on_error=False,
    )  # fmt: skip
    assert not result.success
    step, message = failure_message(result)
    views = artifacts_dir(pipeline_home) / "views" / "session-1.parquet"
    assert step == "phase1_model.phase1_candidates"
    assert "session 1's views changed since this training's split was made" in message
    assert f"views file {views} is now version" in message
    assert "run train_and_evaluate again" in message
    assert not (artifacts_dir(pipeline_home) / "models" / f"run-{result.run_id}").exists()


def test_a_split_stored_before_splits_pinned_views_loads_pinning_none():
    """An earlier run's split in the IO manager (a phase or the promotion materialised
    alone after an upgrade) loads with nothing pinned, as before, not AttributeError."""
    split = Split(train=("1/A",), holdout=(), difficulty={"1/A": 0.5}, train_markets=1,
                  holdout_markets=0)  # fmt: skip
    old = object.__new__(Split)  # as pickled then: without the field
    old.__dict__.update({k: v for k, v in split.__dict__.items() if k != "views_versions"})
    loaded = pickle.loads(pickle.dumps(old))
    assert loaded == split and loaded.views_versions == {}


def test_a_damaged_raw_store_fails_its_ingest_once_naming_the_file(
    pipeline_home, instance, definitions
):
    """A damaged file in the store cannot read better a moment later: the step fails at
    once, not after the source retries meant for a collector that is down."""
    damaged = sessions_dir(pipeline_home) / "session-1" / "deltas.parquet"
    damaged.write_bytes(b"not parquet at all")

    (result,) = ingest(definitions, instance, "1", raise_on_error=False)

    assert not result.success
    assert step_events(instance, result.run_id, "raw_sessions") == ["start", "failure"]
    step, message = failure_message(result)
    assert step == "raw_sessions" and str(damaged) in message


def test_a_budget_that_rounds_up_is_said_in_the_phase_run_log(pipeline_home, instance, definitions):
    """What ``train`` prints before training, a Dagster run says as a warning at the start
    of each phase: here one timestep under a whole rollout, which trains the rollout."""
    ingest(definitions, instance, "1", "2")
    training = definitions.resolve_job_def("train_and_evaluate")
    result = training.execute_in_process(
        instance=instance, asset_selection=[*SCORES_AND_SPLIT, dg.AssetKey("phase1_model")],
        run_config=phase1(TINY_TIMESTEPS - 1),
    )  # fmt: skip

    warnings = [
        e.user_message
        for e in instance.all_logs(result.run_id)
        if e.level == 30 and e.step_key == "phase1_model.phase1_candidates"
    ]
    assert [w for w in warnings if w.startswith("phase 1: ")] == [
        f"phase 1: each phase trains {TINY_TIMESTEPS:,} timesteps, not its budget of "
        f"{TINY_TIMESTEPS - 1:,}: budgets round up to whole rollouts of {TINY_TIMESTEPS:,} "
        "timesteps (8 envs x 256 steps); for fewer, give fewer envs or a budget of whole "
        "rollouts"
    ]
