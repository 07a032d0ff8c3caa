"""The main job on the embedded default: ``kalshi-pipeline demo``.

One source decides both which sessions exist and where they are loaded from: the
pipeline resource's (:meth:`PipelineResource.source`), which is the collector's Postgres
when ``KALSHI_COLLECTOR_URL`` is set and the local Parquet store under ``<home>/sessions``
otherwise. Only in the local case, and only when that store is empty, does the demo
simulate sessions; with a collector it simulates nothing and writes nothing to the local
store. It prints which source it uses, never the URL.

It uses the local Dagster instance in ``$DAGSTER_HOME`` (``<home>/dagster`` when unset,
with the instance settings shipped in the package, ``kalshi_pipeline/dagster.yaml``, a
copy of the repository root's: SQLite, no services), registers every complete
session as a ``sessions`` partition and ingests every complete session that is not yet
ingested, i.e. whose ``market_views`` partition is not materialised (see
:mod:`kalshi_pipeline.defs.ingest_runs`): new sessions, and sessions whose earlier ingest
failed or was killed. An ingest run left unfinished by a process that no longer exists is
marked failed first; one still running in another live process is left to it. The demo
does not bound attempts (it is the by-hand path): a session that fails here fails the demo
before training, naming the session and its run. Then it runs the training graph with
:data:`kalshi_pipeline.pipeline_config.DEMO` (the ``default`` profile on a smaller budget)
and prints where the report is and its first line. Runs are recorded in the instance, so
``dagster dev`` with the same ``DAGSTER_HOME`` shows them.

This is a runner, not a Dagster definition: it sits above ``defs`` (beside the CLI, the
one that calls it), so loading the definitions never imports it (docs/architecture.md).
The settings are package data (:mod:`importlib.resources`), so an installed package runs
the demo as a checkout does; a package without them is broken and fails, never falls
back to other settings.
"""

from __future__ import annotations

import json
import logging
import os
import time
from importlib import resources
from pathlib import Path

import dagster as dg
import yaml
from dagster_shared.check import CheckError

from kalshi_pipeline.definitions import defs
from kalshi_pipeline.defs.ingest_runs import run_ingest
from kalshi_pipeline.defs.jobs import DEMO_RUN_CONFIG
from kalshi_pipeline.defs.partitions import sessions
from kalshi_pipeline.defs.resources import PipelineResource, redact_collector
from kalshi_pipeline.defs.session_survey import read_source, survey
from kalshi_pipeline.demo_interrupts import (
    RunInterrupted,
    ends_the_run_on_interrupt,
    interrupted,
    signals_interrupt,
)
from kalshi_pipeline.paths import HOME_ENV, artifacts_dir, sessions_dir
from kalshi_pipeline.sources import ParquetSessionStore, SessionSource
from kalshi_pipeline.sources.settings import EXECUTOR, SettingError
from kalshi_pipeline.sources.simulator import simulate_sessions
from kalshi_pipeline.sources.simulator_config import DEMO_SEED, DEMO_SESSIONS, DEMO_SIMULATOR
from kalshi_pipeline.training.registry import Registry, registry_path

# The instance settings a new local instance gets (package data; the repository root's
# dagster.yaml is the same file, for users who copy it into their DAGSTER_HOME).
INSTANCE_SETTINGS = resources.files("kalshi_pipeline").joinpath("dagster.yaml")
_QUIET = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# Training logs its progress at INFO every few seconds (and Dagster's own events at DEBUG):
# the demo shows those lines, so it is never silent for long.
_PROGRESS = {"loggers": {"console": {"config": {"log_level": "INFO"}}}}


# The instance's parts dagster.yaml may name a class for, loaded when first used.
_LOADED_ON_FIRST_USE = ("run_coordinator", "run_launcher", "compute_log_manager")


class IngestFailed(RuntimeError):
    """Some sessions could not be ingested; training was not started."""


def prepare_instance(home: Path) -> dg.DagsterInstance:
    """The local instance: ``$DAGSTER_HOME``, or ``<home>/dagster`` with our settings.

    A ``DAGSTER_HOME`` that is set must be an absolute path to an existing directory
    (Dagster's own rule), and its ``dagster.yaml`` valid: anything else is a
    :class:`SettingError` naming it, before any work, not Dagster's error.
    """
    given = os.environ.get("DAGSTER_HOME")
    if given and not (os.path.isabs(given) and os.path.isdir(given)):
        problem, fix = (
            ("is not a directory", "create that directory")
            if os.path.isabs(given)
            else ("is not an absolute path", "give an absolute path")
        )
        raise SettingError(
            f"DAGSTER_HOME={given!r} {problem} ({fix}, or unset DAGSTER_HOME for the "
            f"demo's own instance under {home / 'dagster'})"
        )
    if not given:
        dagster_home = home / "dagster"
        dagster_home.mkdir(parents=True, exist_ok=True)
        settings = dagster_home / "dagster.yaml"
        if not settings.exists():
            settings.write_text(INSTANCE_SETTINGS.read_text())
        os.environ["DAGSTER_HOME"] = str(dagster_home)
    return _load_instance(Path(os.environ["DAGSTER_HOME"]) / "dagster.yaml")


def _load_instance(settings: Path) -> dg.DagsterInstance:
    """The instance of ``settings``; settings that cannot be used are a SettingError."""
    todo = "fix the file, or move it away for the default local instance"
    for name in _variables_read(settings):  # Dagster would say it with its whole schema
        if not os.environ.get(name):
            raise SettingError(
                f"the Dagster instance settings {settings} read {name} from the environment, "
                f"and it is not set (set it, or {todo})"
            )
    try:
        instance = dg.DagsterInstance.get()
        for part in _LOADED_ON_FIRST_USE:  # a bad class in dagster.yaml fails here, not in a run
            getattr(instance, part)
        return instance
    except (yaml.YAMLError, CheckError, dg.DagsterInvalidConfigError) as exc:
        reason = " ".join(str(exc).split())[:300]
        raise SettingError(
            f"the Dagster instance settings {settings} cannot be used: {reason} ({todo})"
        ) from None


def _variables_read(settings: Path) -> list[str]:
    """The environment variables ``settings`` reads (Dagster's ``{env: NAME}`` values)."""
    try:
        found = [yaml.safe_load(settings.read_text())]
    except (OSError, yaml.YAMLError):
        return []  # Dagster names what is wrong with the file itself
    names = []
    while found:
        value = found.pop()
        if isinstance(value, dict):
            if set(value) == {"env"} and isinstance(value["env"], str):
                names.append(value["env"])
            found.extend(value.values())
        elif isinstance(value, list):
            found.extend(value)
    return sorted(set(names))


def ensure_store(home: Path) -> ParquetSessionStore:
    store = ParquetSessionStore(sessions_dir(home))
    if not store.list_sessions():
        print(
            f"no session store at {store.path}: simulating {DEMO_SESSIONS} sessions of "
            f"{DEMO_SIMULATOR.markets} markets, {DEMO_SIMULATOR.liquid_fraction:.0%} of them liquid"
        )
        for session in simulate_sessions(DEMO_SESSIONS, DEMO_SEED, DEMO_SIMULATOR, progress=True):
            store.write_session(session)
    return store


def demo_source(home: Path) -> SessionSource:
    """The session source the demo and the assets share (a local store is filled if empty)."""
    os.environ[HOME_ENV] = str(home)
    pipeline = PipelineResource()
    print(f"sessions from: {pipeline.source_kind()}")
    pipeline.check_source()  # a home filled from another source is never mixed with this one
    if isinstance(pipeline.source(), ParquetSessionStore):
        ensure_store(home)
    return pipeline.source()


def ingest_missing(
    home: Path, instance: dg.DagsterInstance, definitions: dg.Definitions
) -> list[str]:
    """Ingest every complete session of the demo's source that is not ingested yet, or
    that changed since its ingest (:mod:`kalshi_pipeline.defs.session_survey`).

    Returns the keys ingested by this call; raises :class:`IngestFailed` naming each
    session that failed (with its run id and error) after trying all of them. Sessions
    that wait are named (one recording again keeps its earlier views). Only a source with
    no complete session and no views ingested from it is refused, saying what it lists.
    """
    source = demo_source(home)
    reading = read_source(source, instance)
    found = survey(reading, instance)
    keys = found.complete
    for line in found.waiting:
        print(line)
    if not keys and not found.recording_again:
        raise IngestFailed(
            f"the session source lists no complete session ({len(reading.listed)} listed, "
            "none closed or with an end time): nothing to train on"
        )
    registered = set(instance.get_dynamic_partitions(sessions.name))
    instance.add_dynamic_partitions(sessions.name, [k for k in keys if k not in registered])
    states = found.states
    busy = [k for k in keys if not states[k].ingested and states[k].running]
    missing = [k for k in keys if not states[k].ingested and not states[k].running]
    print(
        f"instance: {instance.root_directory}; complete sessions: {len(keys)} "
        f"({len(missing)} to ingest)"
    )
    for key in busy:
        print(
            f"session {key}: being ingested by another process (run "
            f"{', '.join(states[key].running)}); not waited for"
        )
    failed = []
    for number, key in enumerate(missing, 1):
        if key in found.changes:
            print(f"session {key} changed since its ingest ({found.changes[key]}): again")
        started = time.perf_counter()
        tags = found.fingerprint_tags(key)
        result = _ingest(
            definitions, instance, key, run_config=_QUIET, tags=tags, console=_terminal_logger
        )
        if not result.success:
            failed.append(f"session {key} (run {result.run_id}): {_first_error(result)}")
            print(f"[{number}/{len(missing)}] session {key}: FAILED")
            continue
        views = _metadata(result, "market_views", "views")
        print(
            f"[{number}/{len(missing)}] session {key}: {views} views "
            f"({time.perf_counter() - started:.1f}s)"
        )
    if failed:
        raise IngestFailed(
            f"{len(failed)} of {len(missing)} sessions failed to ingest; training not started "
            "(run the demo again to retry them):\n" + "\n".join(failed)
        )
    return missing


def train(
    instance: dg.DagsterInstance, definitions: dg.Definitions, run_config: dg.RunConfig
) -> Path:
    """``train_and_evaluate`` in process; returns the report's path.

    The terminal shows the run's progress and warnings; a failed step's error and
    traceback stay in the run's log (the instance's), and the run's failure is raised as
    :class:`TrainingFailed`, one line from its first failed step's root cause. A split too
    small for the run (an empty holdout, validation or training side) fails its first
    step, before any phase trains. SIGTERM or SIGINT ends the run at once, recorded as
    failed and with no promotion, and raises :class:`RunInterrupted`
    (:mod:`kalshi_pipeline.demo_interrupts`).
    """
    print("training phases 1-3 and evaluating (about two minutes on two cores) ...")
    started = time.perf_counter()
    job = definitions.resolve_job_def("train_and_evaluate")
    result = job.with_logger_defs({"console": _terminal_logger}).execute_in_process(
        instance=instance,
        run_config={**run_config.to_config_dict(), **_PROGRESS},
        raise_on_error=False,
    )
    if not result.success:
        _stop_if_interrupted(result, "the training run")
        raise TrainingFailed(
            f"training run {result.run_id} failed: {_first_error(result)} (the run's log, "
            f"with tracebacks: dagster dev with DAGSTER_HOME={instance.root_directory})"
        )
    report = Path(result.output_for_node("evaluation_report"))
    print(f"done in {time.perf_counter() - started:.0f}s; report: {report}")
    # The report's first line: what the model did on the markets it never trained on.
    print(json.loads((report.parent / "summary.json").read_text())["headline"])
    return report


class TrainingFailed(RuntimeError):
    """The training run failed; the message is its first failed step's reason."""


def _ingest(definitions, instance, key, **options) -> dg.ExecuteInProcessResult:
    """:func:`~kalshi_pipeline.defs.ingest_runs.run_ingest`; an interrupted run stops the
    demo (:class:`RunInterrupted`) instead of going on to the next session."""
    result = run_ingest(definitions, instance, key, **options)
    if not result.success:
        _stop_if_interrupted(result, f"the ingest run of session {key}")
    return result


def _stop_if_interrupted(result: dg.ExecuteInProcessResult, what: str) -> None:
    """Raise :class:`RunInterrupted` if SIGTERM or SIGINT ended this run: the demo stops."""
    if interrupted(result):
        raise RunInterrupted(
            f"{what} ({result.run_id}) was interrupted by SIGTERM or SIGINT and is recorded "
            "as failed; nothing after it ran (run the demo again to go on)"
        )


def _without_errors(record: logging.LogRecord) -> bool:
    """The terminal's filter: records below ERROR only. Dagster logs a failed step at
    ERROR with its whole traceback (and each skipped step after it); the demo prints the
    one line instead (:class:`TrainingFailed`), and the run's log keeps them all."""
    return record.levelno < logging.ERROR


@dg.logger(dg.colored_console_logger.config_schema)
def _terminal_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    """Dagster's console logger, with :func:`_without_errors` on its handlers; an
    interrupt it sees ends the run
    (:func:`~kalshi_pipeline.demo_interrupts.ends_the_run_on_interrupt`)."""
    logger = dg.colored_console_logger.logger_fn(init_context)
    for handler in logger.handlers:
        handler.addFilter(_without_errors)
    return ends_the_run_on_interrupt(logger)


def run_demo(home: Path, run_config: dg.RunConfig | None = None) -> Path:
    """The whole graph on the embedded default; returns the report's path.

    SIGTERM or SIGINT stops it promptly, wherever it is
    (:func:`~kalshi_pipeline.demo_interrupts.signals_interrupt`): ``KeyboardInterrupt``,
    or :class:`RunInterrupted` when a run was interrupted.
    """
    with signals_interrupt():
        return _run_demo(home, run_config)


def _run_demo(home: Path, run_config: dg.RunConfig | None) -> Path:
    os.environ[HOME_ENV] = str(home)
    instance = prepare_instance(home)
    definitions = defs()
    if EXECUTOR.read() != EXECUTOR.default:
        print(
            f"{EXECUTOR.name}={EXECUTOR.read()} applies to runs that dagster dev and its "
            "daemon launch; the demo runs its jobs in this process"
        )
    # The run ends with a promotion, which needs the model history: a damaged one is
    # named now, before any work, not after three phases of training.
    Registry(registry_path(artifacts_dir(home))).read()
    ingest_missing(home, instance, definitions)
    return train(instance, definitions, run_config or DEMO_RUN_CONFIG)


def _first_error(result: dg.ExecuteInProcessResult) -> str:
    """The reason of the run's first step failure, on one line: the user's error, not
    Dagster's wrapper (nor the error ours was raised from), for the project's own errors
    without their module and type, and for a failed blocking check the check's reason."""
    for event in result.all_events:
        if not event.is_step_failure:
            continue
        data = event.step_failure_data
        if data.user_failure_data is not None and data.user_failure_data.description:
            return redact_collector(" ".join(data.user_failure_data.description.split()))
        error = data.error
        while error is not None and _is_wrapper(error.cls_name) and error.cause:
            error = error.cause
        if error is None:
            return "step failed"
        if error.cls_name == "DagsterAssetCheckFailedError":
            return redact_collector(_failed_check(result) or error.message.strip())
        message = " ".join(error.message.split())
        kind, _, reason = message.partition(": ")
        if kind.startswith("kalshi_pipeline.") and reason:
            message = reason
        return redact_collector(message)
    return _run_failure(result)


def _run_failure(result: dg.ExecuteInProcessResult) -> str:
    """Why a run failed outside its steps (its failure event's error), on one line."""
    for event in result.all_events:
        data = event.event_specific_data if event.is_run_failure else None
        if data is not None and getattr(data, "error", None) is not None:
            return redact_collector(" ".join(data.error.message.split()))
    return "run failed"


def _is_wrapper(cls_name: str) -> bool:
    """Dagster's errors around the user's, and ``RetryRequested*``: a step that used up its
    retries fails as "Exceeded max_retries", its last error as the cause."""
    return cls_name.startswith(("Dagster", "RetryRequested"))


def _failed_check(result: dg.ExecuteInProcessResult) -> str | None:
    """The first blocking check that failed with ERROR, and its reason (its description)."""
    for event in result.all_events:
        if event.event_type != dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            continue
        check = event.asset_check_evaluation_data
        if not check.passed and check.severity == dg.AssetCheckSeverity.ERROR:
            why = " ".join((check.description or "see its metadata in the run").split())
            return f"check {check.check_name} of {check.asset_key.to_user_string()} failed: {why}"
    return None


def _metadata(result: dg.ExecuteInProcessResult, asset: str, key: str):
    for event in result.get_asset_materialization_events():
        materialization = event.step_materialization_data.materialization
        if materialization.asset_key.to_user_string() == asset:
            return materialization.metadata[key].value
    return None
