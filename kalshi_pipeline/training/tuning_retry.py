"""A study's storage that rides out a lost connection, or says in one line that it could not.

:class:`RetryingStorage` wraps the storage Optuna is given and passes every call through.
A call that fails because the connection failed (the server refused it, was restarted, or
terminated the backend: SQLAlchemy's and the driver's ``OperationalError`` and
``InterfaceError``, wherever they sit in the exception's chain, Optuna's
``StorageInternalError`` included) is made again after 0.5, 1, 2, 4, ... seconds (each
wait twice the one before, the last one what is left), within ``retry_seconds`` in all
(``KALSHI_TUNING_RETRY_SECONDS``, 15 s by default: waits of 0.5, 1, 2, 4 and 7.5 s); then
:class:`TuningStorageError` names the storage (never its password), what was being done
and the server's reason. Once the storage is lost, later
calls are tried once more each, without waiting again, until one succeeds. Any other
error passes unchanged; a journal that fails to replay is checked and, when damaged,
named (:func:`~kalshi_pipeline.training.tuning_journal.journal_damage`).

Retrying is safe for Optuna's calls: they read, or write one row by key (a parameter, an
intermediate value, an attribute), and a write repeated after its commit was lost either
writes the same again or finds the trial finished (a state already set is taken as set).
The one exception is creating a trial: should the connection drop at its commit, the
retry may create a second trial that nobody runs. It is still retried (a study that
stopped at every dropped connection would not ride out a server restart): the orphan
sends no heartbeat and names no process, and a ``RUNNING`` trial that names no process
once the grace period is over is failed when the study is next opened
(:func:`~kalshi_pipeline.training.tuning_storage.fail_dead_trials`). Together with
``pool_pre_ping`` (a pooled connection the server closed is replaced before use), a server
that kills connections or restarts within the budget costs the study nothing.
"""

from __future__ import annotations

import abc
import logging
import time
from collections.abc import Callable, Iterator
from typing import Any

import psycopg2
import sqlalchemy.exc as sa_exc
from optuna.exceptions import UpdateFinishedTrialError
from optuna.storages import BaseStorage
from optuna.storages._heartbeat import BaseHeartbeat

from kalshi_pipeline.sources.redaction import redact
from kalshi_pipeline.sources.settings import TUNING_RETRY

log = logging.getLogger(__name__)
RETRY_SECONDS = TUNING_RETRY.default  # a server restart fits in 15 s; a typo waits that long
CHECK_SERVER = (
    "check that the server is up and accepts connections, then run again: the study goes on "
    "where it stopped"
)
_CONNECTION_FAULTS = (
    sa_exc.OperationalError,
    sa_exc.InterfaceError,
    sa_exc.DisconnectionError,
    sa_exc.TimeoutError,  # no connection free in the pool
    psycopg2.OperationalError,
    psycopg2.InterfaceError,
    ConnectionError,
)


class TuningStorageError(RuntimeError):
    """The study's storage cannot be opened or was lost (the message names it without
    credentials and says what to do)."""


def backoff(total_seconds: float) -> Iterator[float]:
    """The waits between attempts: 0.5, 1, 2, 4, ... seconds, ``total_seconds`` in all
    (the last wait is what is left: 0.5, 1, 2, 4 and 7.5 for 15 s; none for 0)."""
    spent, delay = 0.0, 0.5
    while spent < total_seconds:
        wait = min(delay, total_seconds - spent)
        yield wait
        spent, delay = spent + wait, delay * 2


def retried(seconds: float) -> str:
    """How long a storage was retried, as an error says it."""
    return f"retried for {seconds:g} s" if seconds else "not retried: KALSHI_TUNING_RETRY_SECONDS=0"


def in_chain(error: BaseException, kinds: type | tuple[type, ...]) -> BaseException | None:
    """The first error of ``kinds`` in ``error``'s chain (causes and contexts), if any."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, kinds):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def connection_fault(error: BaseException) -> BaseException | None:
    """The error in ``error``'s chain that says the connection failed (the driver's own,
    where SQLAlchemy wraps one), if any."""
    fault = in_chain(error, _CONNECTION_FAULTS)
    return None if fault is None else getattr(fault, "orig", None) or fault


def first_line(error: BaseException) -> str:
    """The error's type and the first line of its message, spaces squeezed."""
    text = str(error).strip().splitlines()[0] if str(error).strip() else ""
    return f"{type(error).__name__}: {' '.join(text.split())}".rstrip(": ")


class RetryingStorage(BaseStorage, BaseHeartbeat):
    """``inner`` with connection faults retried (see the module docstring); ``where`` is
    the storage as it may be shown, ``url`` the one whose credentials are redacted,
    ``damage`` a check run when a call fails otherwise (a journal's)."""

    def __init__(
        self,
        inner: BaseStorage,
        *,
        where: str,
        url: str | None,
        retry_seconds: float = RETRY_SECONDS,
        damage: Callable[[], str | None] | None = None,
    ) -> None:
        self._inner, self._where, self._url = inner, where, url
        self._retry_seconds, self._damage = retry_seconds, damage
        self._lost: str | None = None  # the message, once the budget is spent

    def _call(self, name: str, *args: Any, **kwargs: Any) -> Any:
        waits = iter(() if self._lost else backoff(self._retry_seconds))
        retried = False
        while True:
            try:
                result = getattr(self._inner, name)(*args, **kwargs)
            except UpdateFinishedTrialError:
                if retried and name == "set_trial_state_values" and self._state_set(*args):
                    return True  # the first attempt's commit went through
                raise
            except Exception as error:
                fault = connection_fault(error)
                if fault is None:
                    self._raise_if_damaged(error)
                    raise
                wait = next(waits, None)
                if wait is None:
                    raise self._give_up(name, fault) from None
                log.info("%s: %s; trying again in %.1f s", self._where, first_line(fault), wait)
                time.sleep(wait)
                retried = True
            else:
                self._lost = None
                return result

    def _state_set(self, trial_id: int, state: Any, *_: Any) -> bool:
        return self._inner.get_trial(trial_id).state == state

    def _give_up(self, name: str, fault: BaseException) -> TuningStorageError:
        if self._lost is None:
            reason = redact(first_line(fault), self._url)
            self._lost = (
                f"lost the study's storage {self._where} ({name.replace('_', ' ')}, "
                f"{retried(self._retry_seconds)}): {reason} ({CHECK_SERVER})"
            )
        return TuningStorageError(self._lost)

    def _raise_if_damaged(self, error: Exception) -> None:
        damaged = self._damage is not None and isinstance(error, ValueError)
        if damaged and (why := self._damage()) is not None:
            raise TuningStorageError(why) from None

    # The heartbeat (PostgreSQL and SQLite storages; a journal has none).
    def get_heartbeat_interval(self) -> int | None:
        inner = self._inner
        return inner.get_heartbeat_interval() if isinstance(inner, BaseHeartbeat) else None

    def get_heartbeat_stale_trial_callback(self) -> Callable | None:
        inner = self._inner
        is_heartbeat = isinstance(inner, BaseHeartbeat)
        return inner.get_heartbeat_stale_trial_callback() if is_heartbeat else None

    def record_heartbeat(self, trial_id: int) -> None:
        """A missed heartbeat is not an error of the trial (Optuna's thread would die of
        it); the next one is tried at the next interval."""
        try:
            self._call("record_heartbeat", trial_id)
        except TuningStorageError as lost:
            log.info("trial id %s: heartbeat not recorded: %s", trial_id, lost)

    def remove_session(self) -> None:
        self._inner.remove_session()


def _passed_through(name: str) -> Callable[..., Any]:
    def method(self: RetryingStorage, *args: Any, **kwargs: Any) -> Any:
        return self._call(name, *args, **kwargs)

    method.__name__ = name
    return method


_OWN = {"remove_session", "record_heartbeat"}
for _name in [
    *(n for n, v in vars(BaseStorage).items() if callable(v) and not n.startswith("_")),
    "_get_stale_trial_ids",
]:
    if _name not in _OWN:
        setattr(RetryingStorage, _name, _passed_through(_name))
abc.update_abstractmethods(RetryingStorage)  # every abstract method is set above
