"""Connecting to the collector's Postgres with every wait bounded, and its errors made
clear and free of credentials.

No wait is unbounded (:class:`ConnectionSettings`, one set of defaults):

* the connect timeout ends a connection attempt to a server that accepts TCP but never
  answers (a hung server, a firewall that swallows packets);
* the statement timeout ends a statement the server runs too long: a lock the collector
  or a migration holds on a table, a runaway query; it applies to every round trip of the
  server-side cursors too (DECLARE and each FETCH);
* TCP keepalives notice a peer that vanished mid-read (a network cut, a crashed host),
  which neither the server's timeout nor a silent socket would ever report.

Every psycopg2 error becomes :class:`SourceUnavailable` (:class:`SourceTimeout` for the
timeouts, :class:`SourceMisconfigured` for a URL libpq cannot parse), naming the host,
port and database, the timeout and its value, and what was being read (listing sessions,
loading session N: snapshots or deltas). The URL may hold a password and libpq quotes
malformed URLs back, so messages pass through
:func:`~kalshi_pipeline.sources.redaction.redact`, and the psycopg2 error is neither the
cause nor the context of the new one. The two timeouts can be set with
``KALSHI_COLLECTOR_CONNECT_TIMEOUT_S`` and ``KALSHI_COLLECTOR_STATEMENT_TIMEOUT_S``
(seconds); the URL itself is never logged or shown.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import psycopg2
import psycopg2.errors
import psycopg2.extensions

from kalshi_pipeline.sources.redaction import describe_url, redact
from kalshi_pipeline.sources.settings import CONNECT_TIMEOUT, STATEMENT_TIMEOUT

CONNECT_TIMEOUT_ENV = CONNECT_TIMEOUT.name
STATEMENT_TIMEOUT_ENV = STATEMENT_TIMEOUT.name


class SourceUnavailable(RuntimeError):
    """The collector's database could not be read; the message says where and why.

    ``sqlstate`` is the server's SQLSTATE for the failure, ``None`` when there is none
    (libpq reports a failed connection without one): what callers decide by, never the
    message's text.
    """

    def __init__(self, message: str, *, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


class SourceTimeout(SourceUnavailable):
    """A connect or statement timeout expired; the message names it and its value."""


class SourceMisconfigured(SourceUnavailable):
    """libpq cannot parse the URL: retrying cannot help until it is fixed."""


@dataclass(frozen=True, kw_only=True)
class ConnectionSettings:
    """Bounds on every wait of a collector connection, in seconds (see the module doc).

    They override the same parameters given in the URL. ``application_name`` is how the
    connection shows in ``pg_stat_activity``. libpq takes the connect timeout in whole
    seconds and waits at least 2 s, whatever smaller value is asked for. The keepalives
    are set here only (no environment variable): they rarely need changing.
    """

    connect_timeout_s: float = 10
    statement_timeout_s: float = 600
    keepalives_idle_s: int = 30
    keepalives_interval_s: int = 10
    keepalives_count: int = 5
    application_name: str = "kalshi-pipeline"

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            value = getattr(self, field.name)
            if field.name != "application_name" and not value > 0:
                raise ValueError(f"ConnectionSettings.{field.name} must be > 0, got {value!r}")

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ConnectionSettings:
        """Defaults, with the two timeouts from ``KALSHI_COLLECTOR_*_TIMEOUT_S`` if set
        (checked by :mod:`kalshi_pipeline.sources.settings`: finite, above 0, at most a day;
        a bad value raises its :class:`~kalshi_pipeline.sources.settings.SettingError`)."""
        return cls(
            connect_timeout_s=CONNECT_TIMEOUT.read(environ),
            statement_timeout_s=STATEMENT_TIMEOUT.read(environ),
        )

    def libpq_parameters(self, url: str) -> dict[str, object]:
        """Keyword arguments for ``psycopg2.connect(url, ...)``; keeps the URL's options."""
        options = psycopg2.extensions.parse_dsn(url).get("options", "")
        statement_ms = math.ceil(self.statement_timeout_s * 1000)
        return {
            "connect_timeout": math.ceil(self.connect_timeout_s),
            "keepalives": 1,
            "keepalives_idle": self.keepalives_idle_s,
            "keepalives_interval": self.keepalives_interval_s,
            "keepalives_count": self.keepalives_count,
            "application_name": self.application_name,
            "options": f"{options} -c statement_timeout={statement_ms}".strip(),
        }


def connect(
    url: str,
    settings: ConnectionSettings | None = None,
    *,
    doing: str = "connecting",
    readonly: bool = True,
) -> psycopg2.extensions.connection:
    """A connection to ``url`` bounded by ``settings`` (default: from the environment).

    Fails with :class:`SourceTimeout` or :class:`SourceUnavailable`, whose message says
    ``doing`` and never holds the password.
    """
    settings = settings or ConnectionSettings.from_env()
    try:
        conn = psycopg2.connect(url, **settings.libpq_parameters(url))
        conn.set_session(readonly=readonly)
        return conn
    except psycopg2.Error as exc:
        error = source_error(exc, url, settings, f"{doing}: connecting")
    raise error


def source_error(
    exc: psycopg2.Error, url: str, settings: ConnectionSettings, doing: str
) -> SourceUnavailable:
    """The clear, redacted error for a psycopg2 error raised while ``doing``.

    Raise the result outside the ``except`` block that caught ``exc`` (or ``from None``
    at least): ``exc`` may quote the URL, so it must be neither the new error's
    ``__cause__`` nor its ``__context__``, which Dagster and tracebacks print.
    """
    where = f"collector database {describe_url(url)}"
    reason = redact(" ".join(str(exc).split()), url) or type(exc).__name__
    if isinstance(exc, psycopg2.errors.QueryCanceled) and "statement timeout" in reason:
        return SourceTimeout(
            f"{where}: statement timeout ({settings.statement_timeout_s:g} s, "
            f"{STATEMENT_TIMEOUT_ENV}) expired while {doing}",
            sqlstate=exc.pgcode,
        )
    if "timeout expired" in reason:  # libpq's words for connect_timeout
        return SourceTimeout(
            f"{where}: connect timeout ({settings.connect_timeout_s:g} s, "
            f"{CONNECT_TIMEOUT_ENV}) expired while {doing}"
        )
    if isinstance(exc, psycopg2.ProgrammingError) and reason.startswith("invalid dsn"):
        return SourceMisconfigured(f"{where}: the URL is malformed, while {doing}: {reason}")
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return SourceUnavailable(
            f"{where}: connection failed or lost while {doing}: {reason}", sqlstate=exc.pgcode
        )
    return SourceUnavailable(f"{where}: error while {doing}: {reason}", sqlstate=exc.pgcode)
