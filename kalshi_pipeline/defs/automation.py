"""Jobs, sensors and the schedule: new sessions are ingested, models retrained.

* ``new_sessions_sensor`` lists the source's complete sessions, registers the ones not yet
  in the ``sessions`` partitions and requests one ``ingest_session`` run per new session
  (run key ``session-<id>``: the daemon never launches a key twice). At most
  ``MAX_SESSIONS_PER_TICK`` per tick; the rest come on the next ticks.
* ``retrain_sensor`` requests ``train_and_evaluate`` once at least ``retrain_after``
  sessions (``KALSHI_RETRAIN_AFTER_SESSIONS``, default 3) are registered that the latest
  phase-3 model was not trained on (run key: the sorted new session ids).
* ``weekly_retrain`` runs ``train_and_evaluate`` every Sunday at 03:00 UTC.
"""

import json
import os

import dagster as dg

from kalshi_pipeline.defs.assets.data_assets import market_views, raw_sessions
from kalshi_pipeline.defs.assets.model_assets import (
    difficulty_scores,
    evaluation_report,
    phase1_model,
    phase2_model,
    phase3_model,
    train_holdout_split,
)
from kalshi_pipeline.defs.partitions import session_key, sessions
from kalshi_pipeline.defs.resources import PipelineResource
from kalshi_pipeline.defs.settings import TrainingSettings

MAX_SESSIONS_PER_TICK = 25
RETRAIN_AFTER_ENV = "KALSHI_RETRAIN_AFTER_SESSIONS"
TRAINING_ASSETS = [
    difficulty_scores, train_holdout_split, phase1_model, phase2_model, phase3_model,
    evaluation_report,
]  # fmt: skip

ingest_session_job = dg.define_asset_job(
    "ingest_session", selection=[raw_sessions, market_views], partitions_def=sessions
)
train_and_evaluate_job = dg.define_asset_job("train_and_evaluate", selection=TRAINING_ASSETS)

DEMO_RUN_CONFIG = dg.RunConfig(
    ops={
        name: TrainingSettings(profile="demo")
        for name in ("phase1_model", "phase2_model", "phase3_model", "evaluation_report")
    }
)


@dg.sensor(
    job=ingest_session_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def new_sessions_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
    registered = set(context.instance.get_dynamic_partitions(sessions.name))
    complete = [s for s in pipeline.source().list_sessions() if s.is_complete]
    new = [
        session_key(s.session_id) for s in complete if session_key(s.session_id) not in registered
    ]
    if not new:
        return dg.SkipReason("no new closed session")
    new = new[:MAX_SESSIONS_PER_TICK]
    return dg.SensorResult(
        run_requests=[dg.RunRequest(partition_key=k, run_key=f"session-{k}") for k in new],
        dynamic_partitions_requests=[sessions.build_add_request(new)],
    )


def retrain_after() -> int:
    return int(os.environ.get(RETRAIN_AFTER_ENV, "3"))


@dg.sensor(job=train_and_evaluate_job, minimum_interval_seconds=300)
def retrain_sensor(context: dg.SensorEvaluationContext):
    registered = {int(k) for k in context.instance.get_dynamic_partitions(sessions.name)}
    trained_on = set()
    event = context.instance.get_latest_materialization_event(phase3_model.key)
    if event is not None and event.asset_materialization is not None:
        value = event.asset_materialization.metadata.get("sessions")
        trained_on = set(json.loads(json.dumps(value.value))) if value is not None else set()
    new = sorted(registered - trained_on)
    if len(new) < retrain_after():
        return dg.SkipReason(
            f"{len(new)} new sessions since the last model; waiting for {retrain_after()}"
        )
    return dg.RunRequest(run_key="retrain-" + "-".join(map(str, new)))


weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=train_and_evaluate_job,
    cron_schedule="0 3 * * 0",
    execution_timezone="UTC",
)


@dg.definitions
def automation() -> dg.Definitions:
    return dg.Definitions(
        jobs=[ingest_session_job, train_and_evaluate_job],
        sensors=[new_sessions_sensor, retrain_sensor],
        schedules=[weekly_retrain],
    )
