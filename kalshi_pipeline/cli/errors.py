"""What the command says about an error: one line, ``error: <what> (<what to do>)``.

:func:`explain` decides by the exception's type and, for the database, by its SQLSTATE,
never by its text. An expected failure (:class:`CommandError`, the collector source's
errors, a database or operating-system error, an error our own code raises on bad input)
exits 1, or 2 for a URL libpq cannot parse; anything else is ``unexpected`` and points to
``--debug``. No line shows a database password: the collector source's own errors
(:class:`~kalshi_pipeline.sources.collector_connection.SourceUnavailable` and its subclasses) name
host, port and database only, what was being done and the driver's reason, and are shown
with what to do added by kind and SQLSTATE; a raw driver error is named by host, port and
database and its SQLSTATE's condition name, never by its text (libpq may quote the URL);
every line is redacted again.

libpq reports a failed connection (refused, unknown host, wrong password, no such
database or role) without a SQLSTATE: nothing but the text tells these apart, so they
share one message that names every thing to check. The driver's reason stays in the
collector source's message, where the user reads it.

Dagster wraps the errors raised while it loads the definitions or runs a step
(``ComponentTreeException``, ``DagsterUserCodeExecutionError``, ...): each is explained
by the error it carries (:func:`root_cause`), so the line and the exit code are the
project's own, whatever command met it (``demo`` builds the definitions).
"""

from __future__ import annotations

import argparse
import errno
import traceback
from pathlib import Path

import psycopg2

from kalshi_pipeline.sources.collector_connection import (
    CONNECT_TIMEOUT_ENV,
    STATEMENT_TIMEOUT_ENV,
    SourceMisconfigured,
    SourceTimeout,
    SourceUnavailable,
)
from kalshi_pipeline.sources.redaction import describe_url, has_credentials, redact
from kalshi_pipeline.sources.settings import COLLECTOR_URL, SettingError

PACKAGE_DIR = Path(__file__).resolve().parents[1]
DEBUG_HINT = "run with --debug for the traceback"
PERCENT_ENCODE = (
    "percent-encode the password's special characters, e.g. %25 for %, %40 for @ and %2F for /"
)
CHECK_CONNECTION = (
    "start the server, or check the host, port, database, user and password of the URL"
)
# SQLSTATEs (PostgreSQL's appendix A) the advice depends on.
QUERY_CANCELED = "57014"  # the statement timeout ended the statement
UNDEFINED_TABLE = "42P01"
# What to do about an operating-system error, by type (the first match wins).
_OS_ERROR_TODO: list[tuple[type[OSError], str]] = [
    (FileNotFoundError, "check the path"),
    (FileExistsError, "choose another path, or delete what is there"),
    (NotADirectoryError, "give a directory, not a file"),
    (IsADirectoryError, "give a file, not a directory"),
    (PermissionError, "choose another path, or fix its permissions"),
]
# Why a connection failed, by the socket error's type (a raw driver error has no type of
# its own for these: it gets no reason).
_CONNECTION_REASONS: list[tuple[type[OSError], str]] = [
    (ConnectionRefusedError, "connection refused"),
    (ConnectionResetError | ConnectionAbortedError | BrokenPipeError, "connection lost"),
    (TimeoutError, "timed out"),
]


class CommandError(Exception):
    """An expected failure the user can fix: what went wrong, and what to do about it."""

    def __init__(self, what: str, todo: str) -> None:
        super().__init__(what)
        self.what, self.todo = what, todo


class UsageError(CommandError):
    """An input the command cannot use (a path, a training setting), found after parsing:
    a usage error like argparse's, exit 2."""


def explain(exc: Exception, database: str | None) -> tuple[str, int]:
    """The one line (``error: <what> (<what to do>)``) and exit code for ``exc``.

    ``database`` is the URL the command talks to, if any (see the module docstring).
    A Dagster error that wraps another is explained by the error it wraps
    (:func:`root_cause`).
    """
    exc = root_cause(exc)
    if isinstance(exc, CommandError):
        return _line(database, exc.what, exc.todo), 2 if isinstance(exc, UsageError) else 1
    if isinstance(exc, SettingError):  # a KALSHI_* variable: the message names it and its range
        return _line(database, str(exc), "fix the variable, or unset it"), 2
    if isinstance(exc, SourceUnavailable):  # says where, what and why; we add what to do
        what = redact(" ".join(str(exc).split()), database)
        code = 2 if isinstance(exc, SourceMisconfigured) else 1
        return f"error: {what} ({source_todo(exc)})", code
    if (line := _database_error(exc, database)) is not None:
        return line, 1
    if isinstance(exc, OSError) and (exc.strerror or exc.filename):
        # Any error of the system's with a path (a name too long, a full disk, ...) is
        # the path's problem, named with it; the listed kinds say what to do.
        todo = next((t for kind, t in _OS_ERROR_TODO if isinstance(exc, kind)), None)
        if todo is None:
            todo = "free some disk space" if exc.errno == errno.ENOSPC else "check the path"
        what = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc.strerror)
        return _line(database, what, todo), 1
    if _ours(type(exc)) or (isinstance(exc, ValueError | KeyError) and _raised_by_us(exc)):
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return _line(database, str(text), DEBUG_HINT), 1
    what = redact(" ".join(f"unexpected {type(exc).__name__}: {exc}".split()), database)
    return f"error: {what} ({DEBUG_HINT})", 1


def root_cause(exc: BaseException) -> BaseException:
    """The error Dagster's wrappers carry, unwrapped to the first that is not one.

    Dagster raises our own errors wrapped: loading the definitions in a
    ``ComponentTreeException``, a step's in ``DagsterUserCodeExecutionError`` (or its
    subclass ``DagsterExecutionStepExecutionError``, which keep it as ``user_exception``
    and ``original_exc_info``), others ``raise ... from`` it. A wrapper is an error of a
    ``dagster`` package (``dagster``, ``dagster_celery``, ...) that carries another; a
    Dagster error carrying none is its own root cause, and an error of ours is never
    unwrapped (its message is the one to show, whatever caused it)."""
    seen: set[int] = set()
    while type(exc).__module__.startswith("dagster") and id(exc) not in seen:
        seen.add(id(exc))
        info = getattr(exc, "original_exc_info", None) or (None, None, None)
        inner = next(
            (e for e in (getattr(exc, "user_exception", None), info[1], exc.__cause__)
             if isinstance(e, BaseException)),
            None,
        )  # fmt: skip
        if inner is None:
            break
        exc = inner
    return exc


def _database_error(exc: Exception, database: str | None) -> str | None:
    """The line for a connection or raw driver error, else ``None``."""
    at = f" at {describe_url(database)}" if database else ""
    driver = (psycopg2.OperationalError, psycopg2.InterfaceError)
    if isinstance(exc, (ConnectionError, TimeoutError, *driver)):
        reason = next((r for kind, r in _CONNECTION_REASONS if isinstance(exc, kind)), None)
        reason = reason or _condition(getattr(exc, "pgcode", None))
        what = f"cannot reach the database{at}{f': {reason}' if reason else ''}"
        return _line(database, what, CHECK_CONNECTION)
    if isinstance(exc, psycopg2.Error):
        code = _condition(exc.pgcode) or type(exc).__name__
        return _line(database, f"the database{at} refused the command: {code}", DEBUG_HINT)
    return None


def _condition(sqlstate: str | None) -> str | None:
    """PostgreSQL's name of a SQLSTATE (``UNIQUE_VIOLATION``), if there is one."""
    if not sqlstate:
        return None
    from psycopg2 import errorcodes

    return errorcodes.lookup(sqlstate)


def source_todo(exc: SourceUnavailable) -> str:
    """What to do about a collector source error, by its kind and SQLSTATE."""
    sqlstate = getattr(exc, "sqlstate", None)
    if isinstance(exc, SourceMisconfigured):
        return f"fix the URL; {PERCENT_ENCODE}"
    if isinstance(exc, SourceTimeout) and sqlstate == QUERY_CANCELED:
        return (
            "a lock or a long query held the statement: retry later, or raise "
            f"{STATEMENT_TIMEOUT_ENV}"
        )
    if isinstance(exc, SourceTimeout):  # libpq's connect timeout has no SQLSTATE
        return (
            f"check that the server answers and the network to it, or raise {CONNECT_TIMEOUT_ENV}"
        )
    if sqlstate == UNDEFINED_TABLE:  # the source reads the collector's tables only
        return (
            "point the URL at the collector's database, or create its tables with the "
            "collector's schema (kalshi_pipeline/sources/collector_schema.sql)"
        )
    return CHECK_CONNECTION


def _line(database: str | None, what: str, todo: str) -> str:
    """One line; messages ending in ``(...)`` or a full stop already say what to do."""
    what = redact(" ".join(what.split()), database)
    return f"error: {what}" if what.endswith((")", ".")) else f"error: {what} ({todo})"


def _ours(kind: type) -> bool:
    return kind.__module__.split(".")[0] == "kalshi_pipeline"


def _raised_by_us(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(PACKAGE_DIR)


def database_url(args: argparse.Namespace) -> str | None:
    """The database the command talks to: ``--postgres``, else a study's ``--storage``
    URL if it holds a password (a journal's path, or a URL without one, is no secret and
    stays readable in errors), else the collector's, if set."""
    storage = getattr(args, "storage", None)
    return (
        getattr(args, "postgres", None)
        or (storage if storage and "://" in storage and has_credentials(storage) else None)
        or COLLECTOR_URL.read()
    )
