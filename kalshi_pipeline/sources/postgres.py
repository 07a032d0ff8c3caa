"""Reading the collector's Postgres tables (and writing them, for the simulator and tests).

:class:`PostgresSessionSource` reads ``rl_orderbook_sessions``, ``rl_orderbook_snapshots``
and ``rl_orderbook_deltas`` exactly as the collector writes them (DESIGN.md section 2).
Rows stream through server-side (named) cursors in batches of ``batch_rows`` and are
turned into Arrow record batches as they arrive, so a session with millions of deltas is
held once, as Arrow columns, never also as a list of Python rows. JSONB price maps are
fetched as text and decoded by :func:`~kalshi_pipeline.sources.raw.snapshot_table`, so a
malformed map marks its row instead of failing the whole session.

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
import io
import math
import os
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from typing import TypeVar

import psycopg2
import psycopg2.errors
import psycopg2.extensions
import psycopg2.extras
import pyarrow as pa
import pyarrow.csv as pa_csv

from kalshi_pipeline.sources.raw import (
    DELTA_SCHEMA,
    SNAPSHOT_SCHEMA,
    TABLES,
    RawSession,
    SessionInfo,
    SessionNotComplete,
    encode_price_map,
    snapshot_table,
)
from kalshi_pipeline.sources.redaction import describe_url, redact

T = TypeVar("T")

CONNECT_TIMEOUT_ENV = "KALSHI_COLLECTOR_CONNECT_TIMEOUT_S"
STATEMENT_TIMEOUT_ENV = "KALSHI_COLLECTOR_STATEMENT_TIMEOUT_S"


class SourceUnavailable(RuntimeError):
    """The collector's database could not be read; the message says where and why."""


class SourceTimeout(SourceUnavailable):
    """A connect or statement timeout expired; the message names it and its value."""


class SourceMisconfigured(SourceUnavailable):
    """libpq cannot parse the URL: retrying cannot help until it is fixed."""


@dataclass(frozen=True)
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

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> ConnectionSettings:
        """Defaults, with the two timeouts from ``KALSHI_COLLECTOR_*_TIMEOUT_S`` if set."""
        changes = {}
        for name, field in ((CONNECT_TIMEOUT_ENV, "connect_timeout_s"),
                            (STATEMENT_TIMEOUT_ENV, "statement_timeout_s")):  # fmt: skip
            if text := environ.get(name, "").strip():
                try:
                    changes[field] = float(text)
                except ValueError:
                    raise ValueError(f"{name}={text!r} is not a number of seconds") from None
        return cls(**changes)

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


_SESSION_COLUMNS = (
    "session_id, status, started_at, ended_at, market_tickers, environment, websocket_url, "
    "messages_received, snapshots_count, deltas_count, last_message_at, error_message, "
    "connection_metadata"
)
_SESSIONS_QUERY = f"SELECT {_SESSION_COLUMNS} FROM rl_orderbook_sessions ORDER BY session_id"
_SESSION_QUERY = f"SELECT {_SESSION_COLUMNS} FROM rl_orderbook_sessions WHERE session_id = %s"
_SNAPSHOT_QUERY = (
    "SELECT id, session_id, market_ticker, timestamp_ms, sequence_number, "
    "yes_bids::text, no_bids::text, yes_asks::text, no_asks::text "
    "FROM rl_orderbook_snapshots WHERE session_id = %s ORDER BY id"
)
_DELTA_QUERY = (
    "SELECT id, session_id, market_ticker, timestamp_ms, sequence_number, side, action, "
    "price, old_size, new_size FROM rl_orderbook_deltas WHERE session_id = %s ORDER BY id"
)


def collector_ddl() -> str:
    """The collector's DDL for its three tables."""
    return resources.files("kalshi_pipeline.sources").joinpath("collector_schema.sql").read_text()


class PostgresSessionSource:
    """Sessions from the collector's database at ``url`` (a libpq URL or DSN).

    ``settings`` bounds every wait (default: :meth:`ConnectionSettings.from_env`). Any
    database error comes out as :class:`SourceUnavailable` or a subclass, naming what was
    being read, with the credentials redacted.
    """

    def __init__(
        self,
        url: str,
        *,
        batch_rows: int = 100_000,
        settings: ConnectionSettings | None = None,
    ) -> None:
        self._url = url
        self.batch_rows = batch_rows
        self.settings = settings or ConnectionSettings.from_env()

    def __repr__(self) -> str:
        return "PostgresSessionSource(<url hidden>)"

    def list_sessions(self) -> list[SessionInfo]:
        """Every session, active ones included (check ``is_complete``), by id."""
        doing = "listing sessions"
        with self._connection(doing) as conn:
            rows = self._read(doing, _fetch_all, conn, _SESSIONS_QUERY, ())
        return [_session_info(row) for row in rows]

    def load_session(self, session_id: int, *, allow_incomplete: bool = False) -> RawSession:
        """The raw session; a session still recording raises :class:`SessionNotComplete`."""
        with self.open_session(session_id, allow_incomplete=allow_incomplete) as session:
            tables = [
                pa.Table.from_batches(list(session.batches(table)), schema).combine_chunks()
                for table, schema in zip(TABLES, (SNAPSHOT_SCHEMA, DELTA_SCHEMA), strict=True)
            ]
        return RawSession(session.info, *tables)

    @contextmanager
    def open_session(
        self, session_id: int, *, allow_incomplete: bool = False
    ) -> Iterator[CollectorSession]:
        """The session to read a batch of ``batch_rows`` rows at a time (a
        :class:`~kalshi_pipeline.sources.raw.SessionBatches`), for sessions too big to
        load: one connection, in one repeatable-read transaction, so that every read of
        it sees the same rows. A session still recording raises
        :class:`SessionNotComplete`."""
        doing = f"loading session {session_id}"
        with self._connection(doing) as conn:
            conn.set_session(
                isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True
            )
            rows = self._read(doing, _fetch_all, conn, _SESSION_QUERY, (session_id,))
            if not rows:
                raise KeyError(f"session {session_id} is not in rl_orderbook_sessions")
            info = _session_info(rows[0])
            if not info.is_complete and not allow_incomplete:
                raise SessionNotComplete(
                    f"session {session_id} is still {info.status} (no end time): not ingested"
                )
            yield CollectorSession(self, conn, info)

    @contextmanager
    def _connection(self, doing: str) -> Iterator[psycopg2.extensions.connection]:
        conn = connect(self._url, self.settings, doing=doing)
        try:
            yield conn
        finally:
            conn.close()

    def _read(self, doing: str, read: Callable[..., T], *args) -> T:
        try:
            return read(*args)
        except psycopg2.Error as exc:
            error = source_error(exc, self._url, self.settings, doing)
        # Raised outside the except block: see source_error.
        raise error

    def _batches(self, conn, table: str, session_id: int, columns) -> Iterator[pa.RecordBatch]:
        """The rows of one of the session's tables, ``batch_rows`` per batch, by id.

        A named cursor is a server-side cursor: Postgres keeps the result set and hands
        over batch_rows rows per round trip. The statement timeout bounds each round trip
        (DECLARE, then every FETCH), not the whole read.
        """
        query, to_batch = _TABLE_READS[table]
        try:
            with conn.cursor(name=f"kalshi_pipeline_{session_id}_{uuid.uuid4().hex}") as cur:
                cur.itersize = self.batch_rows
                cur.execute(query, (session_id,))
                while rows := cur.fetchmany(self.batch_rows):
                    batch = to_batch(rows)
                    yield batch.select(list(columns)) if columns else batch
            return
        except psycopg2.Error as exc:
            error = source_error(
                exc, self._url, self.settings, f"loading session {session_id}: {table}"
            )
        raise error  # outside the except block: see source_error


class CollectorSession:
    """One session of the collector's database read a batch at a time, while
    :meth:`PostgresSessionSource.open_session` holds its connection."""

    def __init__(self, source: PostgresSessionSource, conn, info: SessionInfo) -> None:
        self.info = info
        self._source, self._conn = source, conn

    def batches(self, table: str, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The rows of ``table`` (``"snapshots"`` or ``"deltas"``) in storage order."""
        return self._source._batches(self._conn, table, self.info.session_id, columns)


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
            f"{STATEMENT_TIMEOUT_ENV}) expired while {doing}"
        )
    if "timeout expired" in reason:  # libpq's words for connect_timeout
        return SourceTimeout(
            f"{where}: connect timeout ({settings.connect_timeout_s:g} s, "
            f"{CONNECT_TIMEOUT_ENV}) expired while {doing}"
        )
    if isinstance(exc, psycopg2.ProgrammingError) and reason.startswith("invalid dsn"):
        return SourceMisconfigured(f"{where}: the URL is malformed, while {doing}: {reason}")
    if isinstance(exc, psycopg2.OperationalError | psycopg2.InterfaceError):
        return SourceUnavailable(f"{where}: connection failed or lost while {doing}: {reason}")
    return SourceUnavailable(f"{where}: error while {doing}: {reason}")


def _fetch_all(conn, query: str, params: tuple) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def _snapshot_batch(rows: list[tuple]) -> pa.RecordBatch:
    return snapshot_table(rows).combine_chunks().to_batches()[0]


def _delta_batch(rows: list[tuple]) -> pa.RecordBatch:
    columns = zip(*rows, strict=True)
    return pa.RecordBatch.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, DELTA_SCHEMA, strict=True)],
        schema=DELTA_SCHEMA,
    )


_TABLE_READS = {
    "snapshots": (_SNAPSHOT_QUERY, _snapshot_batch),
    "deltas": (_DELTA_QUERY, _delta_batch),
}


def _session_info(row: tuple) -> SessionInfo:
    (sid, status, started, ended, tickers, env, url, msgs, snaps, deltas, last, err, meta) = row
    return SessionInfo(
        session_id=int(sid),
        status=status,
        started_at=started,
        ended_at=ended,
        market_tickers=tuple(tickers or ()),
        environment=env or "local",
        websocket_url=url or "",
        messages_received=int(msgs or 0),
        snapshots_count=int(snaps or 0),
        deltas_count=int(deltas or 0),
        last_message_at=last,
        error_message=err,
        connection_metadata=meta or {},
    )


def write_collector_session(conn, session: RawSession) -> None:
    """Insert one raw session into the collector's tables as the collector would.

    Used by ``kalshi-pipeline generate --postgres`` and by tests. The session keeps its
    id (the BIGSERIAL is advanced past it); maps are written as JSONB. Commits.
    """
    info = session.info
    with conn.cursor() as cur:
        cur.execute(
            "INSERT INTO rl_orderbook_sessions (session_id, market_tickers, started_at, "
            "ended_at, status, websocket_url, environment, connection_metadata, "
            "messages_received, snapshots_count, deltas_count, last_message_at, error_message)"
            " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
            (
                info.session_id,
                list(info.market_tickers),
                info.started_at,
                info.ended_at,
                info.status,
                info.websocket_url,
                info.environment,
                psycopg2.extras.Json(dict(info.connection_metadata)),
                info.messages_received,
                info.snapshots_count,
                info.deltas_count,
                info.last_message_at,
                info.error_message,
            ),
        )
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('rl_orderbook_sessions', 'session_id'), "
            "GREATEST((SELECT MAX(session_id) FROM rl_orderbook_sessions), 1))"
        )
        snaps = session.snapshots.to_pylist()
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO rl_orderbook_snapshots (session_id, market_ticker, timestamp_ms, "
            "sequence_number, yes_bids, no_bids, yes_asks, no_asks) VALUES %s",
            [
                (
                    s["session_id"],
                    s["market_ticker"],
                    s["timestamp_ms"],
                    s["sequence_number"],
                    encode_price_map(s["yes_bids"]),
                    encode_price_map(s["no_bids"]),
                    encode_price_map(s["yes_asks"]),
                    encode_price_map(s["no_asks"]),
                )
                for s in snaps
            ],
            template="(%s,%s,%s,%s,%s::jsonb,%s::jsonb,%s::jsonb,%s::jsonb)",
        )
        # COPY keeps the storage order (ids follow the table's row order) and is fast.
        delta_columns = DELTA_SCHEMA.names[1:]
        buffer = io.BytesIO()
        pa_csv.write_csv(
            session.deltas.select(delta_columns),
            buffer,
            pa_csv.WriteOptions(include_header=False),
        )
        buffer.seek(0)
        cur.copy_expert(
            f"COPY rl_orderbook_deltas ({', '.join(delta_columns)}) FROM STDIN WITH (FORMAT csv)",
            buffer,
        )
    conn.commit()
