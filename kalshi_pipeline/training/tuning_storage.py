"""Where a study's trials are kept: opening it, riding out faults, failing trials that died.

* **Storage**: an Optuna storage URL (``postgresql://...``, ``sqlite:///...``) or a
  journal file (any other path; safe for several processes on one machine). Processes
  given the same storage and study name share the study: each runs its own trials, the
  sampler sees them all.
* **Faults**: a database storage has ``pool_pre_ping`` (a connection the server closed is
  replaced before use) and every call is retried on a connection fault, within
  ``retry_seconds`` (:mod:`~kalshi_pipeline.training.tuning_retry`); opening the study is
  retried the same way. What cannot be ridden out is one :class:`TuningStorageError`
  naming the storage, never its password. A journal is checked before it is replayed: a
  damaged one is named, at its first damaged line, with what to do
  (:mod:`~kalshi_pipeline.training.tuning_journal`).
* **Trials that died**: a trial records its process (``process``, ``host:pid``, and
  ``process_started``, the process's start time, so that a reused pid is told apart). A
  database storage also records a heartbeat every ``heartbeat_seconds`` (Optuna's
  ``heartbeat_interval``): a ``RUNNING`` trial whose heartbeat is older than
  ``grace_seconds`` is failed (Optuna's ``fail_stale_trials``, before every new trial and
  when the study is opened), whichever machine ran it. Optuna's journal storage has no
  heartbeat (``JournalStorage`` is not a ``BaseHeartbeat`` in Optuna 5.1), so on every
  storage the study, when opened, also fails each ``RUNNING`` trial of a process of this
  machine that no longer exists. And it fails each ``RUNNING`` trial that names no
  process although it started more than ``grace_seconds`` ago (by this machine's clock):
  its process died between creating it and marking it (before its first heartbeat, which
  Optuna's stale-trial query needs), or a retried creation left it behind
  (:mod:`~kalshi_pipeline.training.tuning_retry`); every trial ``tune`` runs names its
  process as it starts. A trial failed so is reported through ``say`` (and records why,
  ``failed_because``, when this module fails it: Optuna fails a stale trial before its
  callback could); it counts as failed, never as complete or running; its parameters are
  not tried again (the sampler goes on). A journal's trial of a process on another
  machine (a shared volume) cannot be checked: it stays ``RUNNING``, reported as running,
  until that process's machine opens the study.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

import optuna
from optuna.exceptions import ExperimentalWarning, UpdateFinishedTrialError
from optuna.storages import JournalStorage, RDBStorage, _CachedStorage
from optuna.storages._heartbeat import is_heartbeat_enabled
from optuna.storages.journal import JournalFileBackend
from optuna.trial import FrozenTrial, TrialState
from sqlalchemy.exc import IntegrityError, NoSuchModuleError, ProgrammingError

from kalshi_pipeline.sources.redaction import describe_url, redact
from kalshi_pipeline.sources.settings import TUNING_RETRY
from kalshi_pipeline.training.tuning_journal import journal_damage
from kalshi_pipeline.training.tuning_retry import (
    CHECK_SERVER,
    RetryingStorage,
    TuningStorageError,
    backoff,
    connection_fault,
    first_line,
    retried,
)

HEARTBEAT_SECONDS = 30
GRACE_SECONDS = 180  # six missed heartbeats: a trial busy in one long step is not failed
PROCESS_GONE = "its process is gone"
NO_PROCESS = "it names no process"
_DUPLICATE_TABLE, _DUPLICATE_OBJECT = "42P07", "42710"  # PostgreSQL's SQLSTATE codes

__all__ = ["Study", "TuningStorageError", "mark_process"]


@dataclass(frozen=True, kw_only=True)
class Study:
    """Where trials are kept and how many this process runs; how long storage faults are
    retried (by default ``KALSHI_TUNING_RETRY_SECONDS``, read when the study is made) and
    how long a trial may go without a heartbeat (see the module docstring)."""

    name: str
    storage: str  # an Optuna storage URL, or the path of a journal file
    trials: int
    seed: int = 0  # the sampler's
    retry_seconds: float = field(default_factory=TUNING_RETRY.read)
    heartbeat_seconds: int = HEARTBEAT_SECONDS
    grace_seconds: int = GRACE_SECONDS

    def open(
        self,
        pruner: optuna.pruners.BasePruner | None = None,
        say: Callable[[str], None] | None = None,
    ) -> optuna.Study:
        """The study, created if new, its dead trials failed (reported through ``say``).
        Processes starting together race to create the study (or a database's tables):
        the loser sees an integrity error, or PostgreSQL's duplicate table or object, and
        retries, as after a connection fault.
        Without ``pruner``, trials run through the study never stop early."""
        say = say or (lambda line: None)
        if (why := self._journal_damage()) is not None:
            raise TuningStorageError(why)
        for wait in (*backoff(self.retry_seconds), None):
            try:
                study = optuna.create_study(
                    study_name=self.name,
                    storage=self._storage(say),
                    direction="maximize",
                    sampler=optuna.samplers.TPESampler(seed=self.seed, n_startup_trials=4),
                    pruner=pruner or optuna.pruners.NopPruner(),
                    load_if_exists=True,
                )
            except TuningStorageError:
                raise
            except Exception as error:  # the driver's message may quote the URL: redacted
                if wait is None or not (_lost_creation_race(error) or connection_fault(error)):
                    raise self._cannot_open(error) from None
                time.sleep(wait)
            else:
                fail_dead_trials(study, say, self.grace_seconds)
                return study
        raise AssertionError("unreachable: the last wait is None")

    def shown(self) -> str:
        """The storage as it may be shown: a database's host, port and name, no user or
        password; a file's path."""
        if "://" not in self.storage:
            return self.storage
        scheme, _ = self.storage.split("://", 1)
        if scheme.split("+")[0] in ("postgresql", "postgres"):
            return f"postgresql {describe_url(self._url())}"
        return _without_credentials(self.storage)

    def _cannot_open(self, error: Exception) -> TuningStorageError:
        fault = connection_fault(error)
        first = redact(first_line(fault or error), self._url())
        if "://" not in self.storage and isinstance(error, OSError):
            first += " (give the path of a journal file, or a storage URL)"
        elif "compatible with the table schema" in first:  # another alembic user's tables
            first += (
                " (does the database belong to another application, such as Dagster's "
                "instance? Give the study a database of its own)"
            )
        elif fault is not None:
            first += f" ({retried(self.retry_seconds)}; {CHECK_SERVER})"
        elif isinstance(error, NoSuchModuleError):  # a scheme SQLAlchemy has no dialect for
            first += " (give the path of a journal file, or a postgresql:// or sqlite:/// URL)"
        return TuningStorageError(f"cannot open study {self.name!r} at {self.shown()}: {first}")

    def _url(self) -> str | None:
        """The storage URL with a libpq scheme (SQLAlchemy's ``+driver`` dropped); ``None``
        for a journal (its path is no secret)."""
        scheme, _, rest = self.storage.partition("://")
        return f"{scheme.split('+')[0]}://{rest}" if rest else None

    def _journal_damage(self) -> str | None:
        return None if "://" in self.storage else journal_damage(self.storage)

    def _storage(self, say: Callable[[str], None]) -> RetryingStorage:
        shown = dict(where=self.shown(), url=self._url(), retry_seconds=self.retry_seconds)
        if "://" not in self.storage:
            Path(self.storage).parent.mkdir(parents=True, exist_ok=True)
            journal = JournalStorage(JournalFileBackend(self.storage))
            return RetryingStorage(journal, damage=self._journal_damage, **shown)
        scheme, rest = self.storage.split("://", 1)
        url = self.storage
        if scheme.split("+")[0] == "sqlite" and rest.startswith("/") and rest != "/:memory:":
            Path(rest[1:]).parent.mkdir(parents=True, exist_ok=True)  # as for a journal
        if scheme in ("postgresql", "postgres"):  # SQLAlchemy 2.1 would pick psycopg 3
            url = f"postgresql+psycopg2://{rest}"
        with warnings.catch_warnings():  # the heartbeat is "experimental" in Optuna 5.1
            warnings.simplefilter("ignore", ExperimentalWarning)
            database = RDBStorage(
                url,
                engine_kwargs={"pool_pre_ping": True},
                heartbeat_interval=self.heartbeat_seconds,
                grace_period=self.grace_seconds,
                heartbeat_stale_trial_callback=_StaleTrialReport(self.grace_seconds, say),
            )
        return RetryingStorage(_CachedStorage(database), **shown)


def _without_credentials(url: str) -> str:
    """A storage URL of another database than PostgreSQL, shown without user or password:
    its scheme, host, port and path (``sqlite:////tmp/study.db``)."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:
        return redact(url, url)
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _lost_creation_race(error: Exception) -> bool:
    """Another process created the same study, table or type first."""
    if isinstance(error, IntegrityError):
        return True
    code = getattr(getattr(error, "orig", None), "pgcode", None)
    return isinstance(error, ProgrammingError) and code in (_DUPLICATE_TABLE, _DUPLICATE_OBJECT)


@dataclass(frozen=True)
class _StaleTrialReport:
    """Optuna's callback for a trial it failed for want of a heartbeat: say so."""

    grace_seconds: int
    say: Callable[[str], None]

    def __call__(self, study: optuna.Study, trial: FrozenTrial) -> None:
        why = f"no heartbeat for {self.grace_seconds} s"  # the trial is finished: said only
        self.say(f"trial {trial.number}{_of_process(trial)}: {why}, marked failed")


def mark_process(trial: optuna.Trial) -> None:
    """Record the trial's process: this machine, pid and start time."""
    trial.set_user_attr("process", f"{socket.gethostname()}:{os.getpid()}")
    trial.set_user_attr("process_started", _started(os.getpid()))


def fail_dead_trials(
    study: optuna.Study, say: Callable[[str], None], grace_seconds: float = GRACE_SECONDS
) -> None:
    """Fail the study's ``RUNNING`` trials whose heartbeat is stale, whose process, on
    this machine, is gone, or that name no process ``grace_seconds`` after they started."""
    if is_heartbeat_enabled(study._storage):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExperimentalWarning)
            optuna.storages.fail_stale_trials(study)
    unmarked_before = datetime.now() - timedelta(seconds=grace_seconds)  # Optuna's: local
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if _process_gone(trial):
            why = PROCESS_GONE
        elif "process" not in trial.user_attrs and _started_before(trial, unmarked_before):
            why = f"{NO_PROCESS} {grace_seconds:g} s after it started"
        else:
            continue
        # Optuna has no public call to end another process's trial; its storage does it.
        storage = study._storage
        try:
            storage.set_trial_user_attr(trial._trial_id, "failed_because", why)
            storage.set_trial_state_values(trial._trial_id, TrialState.FAIL)
        except UpdateFinishedTrialError:
            continue  # another process failed it first
        say(f"trial {trial.number}{_of_process(trial)}: {why}, marked failed")


def _started_before(trial: FrozenTrial, moment: datetime) -> bool:
    return trial.datetime_start is not None and trial.datetime_start < moment


def _of_process(trial: FrozenTrial) -> str:
    process = trial.user_attrs.get("process")
    return "" if process is None else f" of process {process}"


def _process_gone(trial: FrozenTrial) -> bool:
    """The trial's process ran on this machine and has ended (or its pid is another's)."""
    host, _, pid = str(trial.user_attrs.get("process", "")).rpartition(":")
    if host != socket.gethostname() or not pid.isdigit():
        return False  # another machine's, or not yet marked: its heartbeat tells
    if not Path("/proc/self/stat").exists():  # no procfs: the pid alone
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False
    started = _started(int(pid))
    return started is None or started != trial.user_attrs.get("process_started", started)


def _started(pid: int) -> str | None:
    """The process's start time (clock ticks after boot), ``None`` when it has ended
    (a zombie, not yet reaped, has ended too) or there is no procfs."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat.rpartition(")")[2].split()  # the name, in parentheses, may hold spaces
    return None if fields[0] in ("Z", "X") else fields[19]
