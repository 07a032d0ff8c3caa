"""Jobs, sensors and the schedule: sessions are ingested until they succeed, models retrained.

**What counts as ingested.** A session is ingested when its ``market_views`` partition is
materialised in the instance (its raw copy and views are written; the asset checks then
say whether its views are fit for training). Registering its ``sessions`` partition or
launching a run is not enough: a run that failed, was killed or never started leaves the
session missing, and missing sessions are asked for again.

``new_sessions_sensor`` (every minute) lists the source's complete sessions, registers the
unregistered ones and, for each complete session that is not ingested (oldest first, at
most ``MAX_SESSIONS_PER_TICK`` requests per tick):

* waits while an ``ingest_session`` run of that partition is in progress (see below);
* otherwise counts its attempts, i.e. its ``ingest_session`` runs recorded in the instance
  (counted there, not in the sensor's memory, so a restarted daemon counts the same). A
  run that failed only because the collector could not be reached (tagged
  ``SOURCE_DOWN_TAG`` by ``raw_sessions``) is not the session's fault and uses no attempt
  (at most ``MAX_OUTAGE_RUNS`` of them). With fewer than ``MAX_INGEST_ATTEMPTS`` attempts
  it requests run ``n`` = runs so far + 1 with run key ``session-<id>-attempt-<n>``: a new
  key per run, and the daemon never launches one key twice. A session that used its attempts is named in the tick's skip reason and log: fix
  the cause, then materialise its partition by hand (job ``ingest_session``, partition
  ``<id>``); a successful run by hand makes it ingested.
* When listing the source fails (the collector is down), the tick skips with the source's
  error (sources redact their URL; the sensor scrubs it again) and requests nothing, so an
  outage consumes no attempt; the first tick after it requests the missing sessions again.
  Inside a run, ``raw_sessions`` retries a failed source read (``SOURCE_RETRY_POLICY`` in
  :mod:`kalshi_pipeline.defs.resources`), so a short outage does not fail the run at all.

**In progress, and killed runs.** A run whose process is SIGKILLed stays ``STARTED`` in the
instance for good: nothing in it records its end. So "in progress" means a run that is not
finished (queued, not started, starting, started, canceling) and not known to be dead:

* Runs started in process by this package (``kalshi-pipeline demo``, :func:`run_ingest`)
  carry the tag ``WORKER_TAG`` (host, pid, process start time). When that process no longer
  exists on this host, :func:`ingest_states` marks the run failed, as Dagster's run
  monitoring would, and it counts as an attempt. On another host it cannot tell: the run
  stays in progress until that host's demo or sensor looks.
* Runs launched by the daemon run in a subprocess of a code server and carry no such tag.
  Dagster's run monitoring (``run_monitoring`` in ``dagster.yaml``; the daemon runs it)
  marks runs that never start failed after ``start_timeout_seconds``, and, because the
  default run launcher cannot check a worker's health, ends ingest runs that exceed
  ``INGEST_MAX_RUNTIME_SECONDS`` (the job's ``dagster/max_runtime`` tag). A killed
  daemon-launched ingest thus holds its session back for at most that long.

``retrain_sensor`` requests ``train_and_evaluate`` once at least ``retrain_after``
ingested sessions (``KALSHI_RETRAIN_AFTER_SESSIONS``, default 3) were not considered by the
latest phase-3 model (run key: the sorted new session ids). Failed or missing sessions do
not count. ``weekly_retrain`` runs ``train_and_evaluate`` every Sunday at 03:00 UTC.
"""

import json
import os
import socket
from dataclasses import dataclass, field
from pathlib import Path

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
from kalshi_pipeline.defs.resources import (
    SOURCE_DOWN_TAG,
    PipelineResource,
    SourceMismatch,
    redact_source_error,
)
from kalshi_pipeline.defs.settings import TrainingSettings

MAX_SESSIONS_PER_TICK = 25
MAX_INGEST_ATTEMPTS = 3
# Runs that failed only because the collector was unreachable do not use an attempt; this
# bounds them separately, in case the collector answers listings but never loads.
MAX_OUTAGE_RUNS = 20
# An ingest of a large recorded session takes minutes; one still running after this long
# is taken for dead (run monitoring ends it) and its session becomes missing again.
INGEST_MAX_RUNTIME_SECONDS = 1800
INGEST_JOB = "ingest_session"
WORKER_TAG = "kalshi_pipeline/worker"
# Dagster's own run tags (public names; the constants live in a private module).
PARTITION_NAME_TAG = "dagster/partition"
MAX_RUNTIME_SECONDS_TAG = "dagster/max_runtime"
RETRAIN_AFTER_ENV = "KALSHI_RETRAIN_AFTER_SESSIONS"
TRAINING_ASSETS = [
    difficulty_scores, train_holdout_split, phase1_model, phase2_model, phase3_model,
    evaluation_report,
]  # fmt: skip

ingest_session_job = dg.define_asset_job(
    INGEST_JOB,
    selection=[raw_sessions, market_views],  # partitioned by sessions, as they are
    tags={MAX_RUNTIME_SECONDS_TAG: str(INGEST_MAX_RUNTIME_SECONDS)},
)
train_and_evaluate_job = dg.define_asset_job("train_and_evaluate", selection=TRAINING_ASSETS)

DEMO_RUN_CONFIG = dg.RunConfig(
    ops={
        name: TrainingSettings(profile="demo")
        for name in ("phase1_model", "phase2_model", "phase3_model", "evaluation_report")
    }
)


# -- the ingest state of sessions, from the instance -------------------------------------
@dataclass
class IngestState:
    """One session's ingest as the instance records it."""

    ingested: bool = False
    running: list[str] = field(default_factory=list)  # run ids in progress
    attempts: int = 0  # ingest_session runs of the partition, but for those below
    outages: int = 0  # runs that failed because the collector could not be reached
    failed_runs: list[str] = field(default_factory=list)

    @property
    def runs(self) -> int:
        return self.attempts + self.outages

    @property
    def exhausted(self) -> bool:
        used = self.attempts >= MAX_INGEST_ATTEMPTS or self.outages >= MAX_OUTAGE_RUNS
        return not self.ingested and not self.running and used


def ingested_sessions(instance: dg.DagsterInstance) -> set[str]:
    """Keys of the sessions whose ``market_views`` partition is materialised."""
    return set(instance.get_materialized_partitions(market_views.key))


def ingest_states(instance: dg.DagsterInstance, keys: list[str]) -> dict[str, IngestState]:
    """The ingest state of each session key; runs whose worker is known dead are failed.

    Marking such a run failed is what Dagster's run monitoring does for a dead worker it
    can see; here it is done for in-process runs, which monitoring cannot check.
    """
    done = ingested_sessions(instance)
    states = {k: IngestState(ingested=k in done) for k in keys}
    missing = [k for k in keys if k not in done]
    if not missing:
        return states
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=INGEST_JOB, tags={PARTITION_NAME_TAG: missing})
    )
    for run in runs:
        state = states.get(run.tags.get(PARTITION_NAME_TAG, ""))
        if state is None:
            continue
        if run.tags.get(SOURCE_DOWN_TAG):
            state.outages += 1
        else:
            state.attempts += 1
        if not run.is_finished and _worker_is_gone(run.tags.get(WORKER_TAG)):
            instance.report_run_failed(
                run,
                f"session {run.tags[PARTITION_NAME_TAG]}: the process that ran this ingest "
                f"({run.tags[WORKER_TAG]}) is gone (killed?); marked failed so the session "
                "is ingested again",
            )
            run = instance.get_run_by_id(run.run_id) or run
        if not run.is_finished:
            state.running.append(run.run_id)
        elif run.status != dg.DagsterRunStatus.SUCCESS:
            state.failed_runs.append(run.run_id)
    return states


def this_worker() -> str:
    """``host/pid/start time`` of this process: the ``WORKER_TAG`` of in-process runs."""
    return f"{socket.gethostname()}/{os.getpid()}/{_process_start(os.getpid())}"


def run_ingest(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    key: str,
    run_config: dict | None = None,
) -> dg.ExecuteInProcessResult:
    """One ``ingest_session`` run of partition ``key`` in this process (not raising).

    Tagged with this process (``WORKER_TAG``) so that, if the process is killed, the next
    demo or sensor tick knows the run is dead instead of waiting for it forever.
    """
    return definitions.resolve_job_def(INGEST_JOB).execute_in_process(
        instance=instance,
        partition_key=key,
        run_config=run_config,
        tags={WORKER_TAG: this_worker()},
        raise_on_error=False,
    )


def _process_start(pid: int) -> str:
    """The process's start time in clock ticks (Linux), so a reused pid is not mistaken."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return "?"
    return stat.rsplit(")", 1)[1].split()[19]  # field 22, counted after the command name


def _worker_is_gone(worker: str | None) -> bool:
    if not worker:
        return False
    host, _, rest = worker.partition("/")
    pid_text, _, started = rest.partition("/")
    if host != socket.gethostname() or not pid_text.isdigit():
        return False  # another machine's process, or not ours: cannot tell
    pid = int(pid_text)
    if Path("/proc").is_dir():
        return _process_start(pid) != started
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


# -- sensors ------------------------------------------------------------------------------
@dg.sensor(
    job=ingest_session_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def new_sessions_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
    try:
        listed = pipeline.source().list_sessions()
    except Exception as exc:  # any source failure: skip, request nothing, retry next tick
        reason = (
            f"cannot list sessions from the {pipeline.source_kind()} source "
            f"({redact_source_error(exc)}); nothing requested, no attempt used; "
            "missing sessions are requested again once it answers"
        )
        context.log.warning(reason)
        return dg.SkipReason(reason)
    try:
        pipeline.check_source()
    except SourceMismatch as exc:
        context.log.error(str(exc))
        return dg.SkipReason(f"nothing requested: {exc}")
    complete = [session_key(s.session_id) for s in listed if s.is_complete]
    registered = set(context.instance.get_dynamic_partitions(sessions.name))
    unregistered = [k for k in complete if k not in registered]
    states = ingest_states(context.instance, complete)

    requests, running, exhausted = [], [], []
    for key in complete:
        state = states[key]
        if state.ingested:
            continue
        if state.running:
            running.append(key)
        elif state.exhausted:
            exhausted.append(key)
        elif len(requests) < MAX_SESSIONS_PER_TICK:
            attempt = state.runs + 1  # a new run key for every run
            requests.append(
                dg.RunRequest(partition_key=key, run_key=f"session-{key}-attempt-{attempt}")
            )
    notes = []
    if running:
        notes.append(f"being ingested: sessions {', '.join(running)}")
    if exhausted:
        notes.append(
            f"sessions {', '.join(exhausted)} failed {MAX_INGEST_ATTEMPTS} ingest attempts and "
            "are not requested again: fix the cause (see their failed runs), then materialise "
            "each by hand (job ingest_session, its partition)"
        )
        context.log.warning(notes[-1])
    if not requests and not unregistered:
        return dg.SkipReason("; ".join(["no session to ingest", *notes]))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[sessions.build_add_request(unregistered)]
        if unregistered
        else [],
    )


def retrain_after() -> int:
    return int(os.environ.get(RETRAIN_AFTER_ENV, "3"))


@dg.sensor(job=train_and_evaluate_job, minimum_interval_seconds=300)
def retrain_sensor(context: dg.SensorEvaluationContext):
    registered = set(context.instance.get_dynamic_partitions(sessions.name))
    ingested = {int(k) for k in ingested_sessions(context.instance) & registered}
    considered = set()
    event = context.instance.get_latest_materialization_event(phase3_model.key)
    if event is not None and event.asset_materialization is not None:
        metadata = event.asset_materialization.metadata
        # Models since this change record every session whose views training read
        # ("scored_sessions"); older ones only the sessions of their training views.
        value = metadata.get("scored_sessions") or metadata.get("sessions")
        considered = set(json.loads(json.dumps(value.value))) if value is not None else set()
    new = sorted(ingested - considered)
    if len(new) < retrain_after():
        return dg.SkipReason(
            f"{len(new)} new sessions since the last model; waiting for {retrain_after()} "
            "(only sessions whose ingest succeeded count)"
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
