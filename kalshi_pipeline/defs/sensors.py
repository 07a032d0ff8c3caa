"""The sensors: sessions are ingested until they succeed; models retrained on new data.

``new_sessions_sensor`` (every minute) lists the source's complete sessions, registers the
unregistered ones and, for each complete session that is not ingested
(:mod:`.ingest_runs`; oldest first, at most ``MAX_SESSIONS_PER_TICK`` requests per tick):

* waits while an ``ingest_session`` run of that partition is in progress;
* otherwise, with fewer than ``MAX_INGEST_ATTEMPTS`` attempts, requests run ``n`` = runs
  so far + 1 with run key ``session-<id>-attempt-<n>``: a new key per run, and the daemon
  never launches one key twice. A session that used its attempts is named in the tick's
  skip reason and log: fix the cause, then materialise its partition by hand (job
  ``ingest_session``, partition ``<id>``); a successful run by hand makes it ingested.
* A session ingested earlier whose fingerprint changed since (a collector resumed it:
  :mod:`.session_survey`) is requested again, logged with its old and new fingerprint and
  what changed, under run key ``session-<id>-<new fingerprint>-attempt-<n>`` (tagged
  ``FINGERPRINT_TAG``): a new key per version, so the daemon launches it, with attempts of
  its own. Its earlier views stay in use meanwhile.
* Sessions that wait are named in the skip reason: one ingested earlier that is being
  recorded again, one of an unknown status, an ``error`` one with no end time.
* When listing the source fails (the collector is down), the tick skips with the source's
  error (sources redact their URL; the sensor scrubs it again) and requests nothing, so an
  outage consumes no attempt; the first tick after it requests the missing sessions again.
  Inside a run, ``raw_sessions`` retries a failed source read (``SOURCE_RETRY_POLICY`` in
  :mod:`kalshi_pipeline.defs.resources`), so a short outage does not fail the run at all.

``retrain_sensor`` requests ``train_and_evaluate`` once at least ``retrain_after``
ingested sessions (``KALSHI_RETRAIN_AFTER_SESSIONS``, default 3) are new to the latest
phase-3 model: not considered by it, or ingested again (their views rebuilt) since the run
that made it began, so that what a resumed session gained reaches a model (run key: the
sorted new session ids, a session ingested again with its views' version,
``retrain-3-4-5v812``). Failed or missing sessions do not count.

``paper_trading_sensor`` (stopped by default: start it in the UI) requests
``paper_trade_session`` for every session whose ``market_views`` is materialised and whose
``paper_trading`` is not, oldest first, at most ``MAX_PAPER_SESSIONS_PER_TICK`` per tick,
under run key ``paper-session-<id>``. A session whose paper run did not materialise is not
requested again: it is named in the skip reason, to be materialised by hand.
"""

import json

import dagster as dg

from kalshi_pipeline.defs.assets.model_assets import phase3_model
from kalshi_pipeline.defs.assets.paper_assets import paper_trading
from kalshi_pipeline.defs.ingest_runs import MAX_INGEST_ATTEMPTS, ingested_sessions
from kalshi_pipeline.defs.jobs import (
    PAPER_TRADING_JOB,
    ingest_session_job,
    paper_trading_job,
    train_and_evaluate_job,
)
from kalshi_pipeline.defs.partitions import session_key, sessions
from kalshi_pipeline.defs.recorded_fingerprints import MARKET_VIEWS, latest_materializations
from kalshi_pipeline.defs.resources import PipelineResource, SourceMismatch, redact_source_error
from kalshi_pipeline.defs.session_survey import Survey, read_source, survey
from kalshi_pipeline.sources.settings import RETRAIN_AFTER_SESSIONS

MAX_SESSIONS_PER_TICK = 25
MAX_PAPER_SESSIONS_PER_TICK = 10
RETRAIN_AFTER_ENV = RETRAIN_AFTER_SESSIONS.name


@dg.sensor(
    job=ingest_session_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def new_sessions_sensor(context: dg.SensorEvaluationContext, pipeline: PipelineResource):
    try:
        pipeline.check_source()
        reading = read_source(pipeline.source(), context.instance)
    except SourceMismatch as exc:
        context.log.error(str(exc))
        return dg.SkipReason(f"nothing requested: {exc}")
    except Exception as exc:  # any source failure: skip, request nothing, retry next tick
        reason = (
            f"cannot list sessions from the {pipeline.source_kind()} source "
            f"({redact_source_error(exc)}); nothing requested, no attempt used; "
            "missing sessions are requested again once it answers"
        )
        context.log.warning(reason)
        return dg.SkipReason(reason)
    found = survey(reading, context.instance)
    registered = set(context.instance.get_dynamic_partitions(sessions.name))
    unregistered = [k for k in found.complete if k not in registered]
    requests, notes = _ingest_requests(context, found)
    if not requests and not unregistered:
        return dg.SkipReason("; ".join(["no session to ingest", *notes]))
    return dg.SensorResult(
        run_requests=requests,
        dynamic_partitions_requests=[sessions.build_add_request(unregistered)]
        if unregistered
        else [],
    )


def _ingest_requests(
    context: dg.SensorEvaluationContext, found: Survey
) -> tuple[list[dg.RunRequest], list[str]]:
    """The runs to request (see the module docstring) and the notes for the skip reason."""
    requests, running, exhausted = [], [], []
    for key in found.complete:
        state = found.states[key]
        if state.ingested:
            continue
        if state.running:
            running.append(key)
        elif state.exhausted:
            exhausted.append(key)
        elif len(requests) < MAX_SESSIONS_PER_TICK:
            requests.append(_run_request(context, found, key))
    notes = list(found.waiting)
    for line in found.waiting:
        context.log.info(line)
    if running:
        notes.append(f"being ingested: sessions {', '.join(running)}")
    if exhausted:
        notes.append(
            f"sessions {', '.join(exhausted)} failed {MAX_INGEST_ATTEMPTS} ingest attempts and "
            "are not requested again: fix the cause (see their failed runs), then materialise "
            "each by hand (job ingest_session, its partition)"
        )
        context.log.warning(notes[-1])
    return requests, notes


def _run_request(context: dg.SensorEvaluationContext, found: Survey, key: str) -> dg.RunRequest:
    """Run ``n`` = runs so far + 1 of the session (of its new version, if it changed)."""
    state = found.states[key]
    attempt = state.runs + 1  # a new run key for every run
    if not state.changed:
        return dg.RunRequest(partition_key=key, run_key=f"session-{key}-attempt-{attempt}")
    context.log.warning(
        f"session {key} changed since its ingest ({found.changes[key]}): ingesting it again"
    )
    return dg.RunRequest(
        partition_key=key,
        run_key=f"session-{key}-{state.changed}-attempt-{attempt}",
        tags=found.fingerprint_tags(key),
    )


def retrain_after() -> int:
    """``KALSHI_RETRAIN_AFTER_SESSIONS``: a whole number from 1 (default 3); a bad value fails
    the tick with a :class:`~kalshi_pipeline.sources.settings.SettingError` naming it."""
    return RETRAIN_AFTER_SESSIONS.read()


@dg.sensor(job=train_and_evaluate_job, minimum_interval_seconds=300)
def retrain_sensor(context: dg.SensorEvaluationContext):
    instance = context.instance
    registered = set(instance.get_dynamic_partitions(sessions.name))
    ingested = {int(k) for k in ingested_sessions(instance) & registered}
    [model] = instance.fetch_materializations(phase3_model.key, limit=1).records or [None]
    considered, rebuilt = set(), {}
    if model is not None:
        metadata = model.asset_materialization.metadata
        # Models since this change record every session whose views training read
        # ("scored_sessions"); older ones only the sessions of their training views.
        value = metadata.get("scored_sessions") or metadata.get("sessions")
        considered = set(json.loads(json.dumps(value.value))) if value is not None else set()
        rebuilt = _views_rebuilt_since(instance, model, considered & ingested)
    new = sorted((ingested - considered) | set(rebuilt))
    if len(new) < retrain_after():
        return dg.SkipReason(
            f"{len(new)} new sessions since the last model; waiting for {retrain_after()} "
            "(only sessions whose ingest succeeded count; a session ingested again counts)"
        )
    # A session ingested again is named with its views' version: a new key for each.
    named = [f"{s}v{rebuilt[s]}" if s in rebuilt else str(s) for s in new]
    return dg.RunRequest(run_key="retrain-" + "-".join(named))


def _views_rebuilt_since(
    instance: dg.DagsterInstance, model: dg.EventLogRecord, sessions_seen: set[int]
) -> dict[int, int]:
    """Sessions the model saw whose views another run built again after the model's run
    began (a session changed after its ingest): session -> the new views' storage id.
    Views built in the model's own run are those it trained on. Times, not storage ids,
    are compared: a run's own events are numbered apart from the asset index's."""
    run = instance.get_run_record_by_id(model.run_id) if model.run_id else None
    began = run.start_time if run is not None and run.start_time else model.timestamp
    keys = [session_key(s) for s in sessions_seen]
    records = latest_materializations(instance, MARKET_VIEWS, keys)
    return {
        int(r.partition_key): r.storage_id
        for r in records
        if r.timestamp > began and r.run_id != model.run_id
    }


@dg.sensor(job=paper_trading_job, minimum_interval_seconds=60)
def paper_trading_sensor(context: dg.SensorEvaluationContext):
    instance = context.instance
    registered = set(instance.get_dynamic_partitions(sessions.name))
    built = instance.get_materialized_partitions(MARKET_VIEWS) & registered
    waiting = sorted(built - instance.get_materialized_partitions(paper_trading.key), key=int)
    tried = {
        run.partition
        for run in instance.get_run_partition_data(dg.RunsFilter(job_name=PAPER_TRADING_JOB))
    }
    failed = [key for key in waiting if key in tried]
    requests = [
        dg.RunRequest(partition_key=key, run_key=f"paper-session-{key}")
        for key in waiting
        if key not in tried
    ][:MAX_PAPER_SESSIONS_PER_TICK]
    if requests:
        return requests
    note = (
        f"; sessions {', '.join(failed)} had a {PAPER_TRADING_JOB} run that did not "
        "materialise paper_trading (running, or failed: see the run; then materialise by hand)"
        if failed
        else ""
    )
    return dg.SkipReason(f"no session waiting for paper trading{note}")
