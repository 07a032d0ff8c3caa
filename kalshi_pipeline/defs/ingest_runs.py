"""The ingest state of sessions, read from the instance's runs (what the sensor and the
demo decide from).

**What counts as ingested.** A session is ingested when its ``market_views`` partition is
materialised in the instance (its raw copy and views are written; the asset checks then
say whether its views are fit for training). Registering its ``sessions`` partition or
launching a run is not enough: a run that failed, was killed or never started leaves the
session missing, and missing sessions are asked for again (:mod:`.sensors`).

Attempts are the session's ``ingest_session`` runs recorded in the instance (counted
there, not in a sensor's memory, so a restarted daemon counts the same). A run that failed
only because the collector could not be reached (tagged ``SOURCE_DOWN_TAG`` by
``raw_sessions``) is not the session's fault and uses no attempt (at most
``MAX_OUTAGE_RUNS`` of them).

**A session that changed after its ingest** (:mod:`.session_survey`: its fingerprint
differs from the one its ingest recorded) is to be ingested again: its earlier views stay in
use meanwhile. Its attempts are only the runs tagged with its new fingerprint
(``FINGERPRINT_TAG``), so each version of a session has attempts of its own.

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
"""

import os
import socket
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg

from kalshi_pipeline.defs.jobs import INGEST_JOB
from kalshi_pipeline.defs.recorded_fingerprints import MARKET_VIEWS
from kalshi_pipeline.defs.resources import SOURCE_DOWN_TAG

MAX_INGEST_ATTEMPTS = 3
# Runs that failed only because the collector was unreachable do not use an attempt; this
# bounds them separately, in case the collector answers listings but never loads.
MAX_OUTAGE_RUNS = 20
WORKER_TAG = "kalshi_pipeline/worker"
# The fingerprint token of the session version a re-ingest run was asked for.
FINGERPRINT_TAG = "kalshi_pipeline/source_fingerprint"
PARTITION_NAME_TAG = "dagster/partition"  # Dagster's public run tag


@dataclass
class IngestState:
    """One session's ingest as the instance records it."""

    ingested: bool = False  # its views are of the session as the source holds it now
    changed: str | None = None  # ingested earlier, since changed: its new fingerprint token
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
    return set(instance.get_materialized_partitions(MARKET_VIEWS))


def ingest_states(
    instance: dg.DagsterInstance, keys: list[str], changed: Mapping[str, str] | None = None
) -> dict[str, IngestState]:
    """The ingest state of each session key; runs whose worker is known dead are failed.

    ``changed`` maps the keys of ingested sessions that changed since to their new
    fingerprint token: they are not ingested (as they are now), and only runs tagged with
    that token count as their attempts. Marking a dead worker's run failed is what
    Dagster's run monitoring does for a dead worker it can see; here it is done for
    in-process runs, which monitoring cannot check.
    """
    changed = changed or {}
    done = ingested_sessions(instance)
    states = {
        k: IngestState(ingested=k in done and k not in changed, changed=changed.get(k))
        for k in keys
    }
    missing = [k for k in keys if not states[k].ingested]
    if not missing:
        return states
    runs = instance.get_runs(
        filters=dg.RunsFilter(job_name=INGEST_JOB, tags={PARTITION_NAME_TAG: missing})
    )
    for run in runs:
        state = states.get(run.tags.get(PARTITION_NAME_TAG, ""))
        if state is None:
            continue
        run = _failed_if_worker_gone(instance, run)
        if not run.is_finished:
            state.running.append(run.run_id)  # of this version or an earlier one: wait
        if state.changed and run.tags.get(FINGERPRINT_TAG) != state.changed:
            continue  # an ingest of an earlier version of the session
        if run.tags.get(SOURCE_DOWN_TAG):
            state.outages += 1
        else:
            state.attempts += 1
        if run.is_finished and run.status != dg.DagsterRunStatus.SUCCESS:
            state.failed_runs.append(run.run_id)
    return states


def _failed_if_worker_gone(instance: dg.DagsterInstance, run: dg.DagsterRun) -> dg.DagsterRun:
    """The run, marked failed first if it is unfinished and its process is known gone."""
    if run.is_finished or not _worker_is_gone(run.tags.get(WORKER_TAG)):
        return run
    instance.report_run_failed(
        run,
        f"session {run.tags[PARTITION_NAME_TAG]}: the process that ran this ingest "
        f"({run.tags[WORKER_TAG]}) is gone (killed?); marked failed so the session "
        "is ingested again",
    )
    return instance.get_run_by_id(run.run_id) or run


def this_worker() -> str:
    """``host/pid/start time`` of this process: the ``WORKER_TAG`` of in-process runs."""
    return f"{socket.gethostname()}/{os.getpid()}/{_process_start(os.getpid())}"


def run_ingest(
    definitions: dg.Definitions,
    instance: dg.DagsterInstance,
    key: str,
    run_config: dict | None = None,
    tags: Mapping[str, str] | None = None,
    console: dg.LoggerDefinition | None = None,
) -> dg.ExecuteInProcessResult:
    """One ``ingest_session`` run of partition ``key`` in this process (not raising), its
    console logger ``console`` when given.

    Tagged with this process (``WORKER_TAG``) so that, if the process is killed, the next
    demo or sensor tick knows the run is dead instead of waiting for it forever.
    """
    job = definitions.resolve_job_def(INGEST_JOB)
    if console is not None:
        job = job.with_logger_defs({"console": console})
    return job.execute_in_process(
        instance=instance,
        partition_key=key,
        run_config=run_config,
        tags={**(tags or {}), WORKER_TAG: this_worker()},
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
