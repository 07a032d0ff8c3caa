"""Reading the collector's Postgres tables into raw sessions, a batch of rows at a time.

:class:`PostgresSessionSource` reads ``rl_orderbook_sessions``, ``rl_orderbook_snapshots``
and ``rl_orderbook_deltas`` exactly as the collector writes them (``docs/data-model.md``),
and the trade tape ``rl_orderbook_trades`` where the database has that table: a database
without it gives every session ``trades=None`` and reads as before; a session with no row
in it has an empty tape. A trades table that lacks an optional column (a collector that
stores only the integer prices, or only the decimal strings) reads that column as NULL
(:func:`~kalshi_pipeline.sources.trades.collector_trade_table` then takes the other format).
Rows stream through server-side (named) cursors in batches of ``batch_rows`` and are
turned into Arrow record batches as they arrive, so a session with millions of deltas is
held once, as Arrow columns, never also as a list of Python rows. JSONB price maps are
fetched as text and decoded by :func:`~kalshi_pipeline.sources.raw.snapshot_table`, so a
malformed map marks its row instead of failing the whole session.

Every wait is bounded and every database error comes out as
:class:`~kalshi_pipeline.sources.collector_connection.SourceUnavailable` (or a subclass)
with the credentials redacted: see :mod:`~kalshi_pipeline.sources.collector_connection`
(the connection, its timeouts and errors). Writing sessions into the collector's tables
(for ``generate --postgres`` and tests) is :mod:`~kalshi_pipeline.sources.collector_writer`;
following a session still being recorded, a read of its new rows at a time, is
:mod:`~kalshi_pipeline.sources.collector_tail`, which converts rows with this module's
functions.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC
from typing import TypeVar

import psycopg2
import psycopg2.extensions
import pyarrow as pa

from kalshi_pipeline.sources.collector_connection import (
    ConnectionSettings,
    connect,
    source_error,
)
from kalshi_pipeline.sources.fingerprint import SessionFingerprint, TableExtent
from kalshi_pipeline.sources.raw import (
    DELTA_SCHEMA,
    SNAPSHOT_SCHEMA,
    TABLES,
    RawSession,
    SessionInfo,
    check_complete,
    delta_table,
    snapshot_table,
)
from kalshi_pipeline.sources.raw_values import INT64_MAX, integer
from kalshi_pipeline.sources.redaction import describe_url, redact
from kalshi_pipeline.sources.trades import (
    COLLECTOR_TRADE_COLUMNS,
    COLLECTOR_TRADES_TABLE,
    TRADE_SCHEMA,
    collector_trade_table,
)

__all__ = ["CollectorSession", "PostgresSessionSource"]

T = TypeVar("T")


# The select lists of the session row and of the book tables, in the order
# session_info, snapshot_batch and delta_batch take them (also read by collector_tail).
SESSION_COLUMNS = (
    "session_id, status, started_at, ended_at, market_tickers, environment, websocket_url, "
    "messages_received, snapshots_count, deltas_count, last_message_at, error_message, "
    "connection_metadata"
)
SNAPSHOT_COLUMNS = (
    "id, session_id, market_ticker, timestamp_ms, sequence_number, "
    "yes_bids::text, no_bids::text, yes_asks::text, no_asks::text"
)
DELTA_COLUMNS = (
    "id, session_id, market_ticker, timestamp_ms, sequence_number, side, action, "
    "price, old_size, new_size"
)
_SESSIONS_QUERY = f"SELECT {SESSION_COLUMNS} FROM rl_orderbook_sessions ORDER BY session_id"
_SESSION_QUERY = f"SELECT {SESSION_COLUMNS} FROM rl_orderbook_sessions WHERE session_id = %s"
_SNAPSHOT_QUERY = (
    f"SELECT {SNAPSHOT_COLUMNS} FROM rl_orderbook_snapshots WHERE session_id = %s ORDER BY id"
)
# Each session's status, end, and per table its row count and last id: one query, each
# count and max read from the (session_id, id) index of that session's rows. The trades'
# pair is NULL, NULL where the database has no trades table. Every column is named with
# its table: a table that lacks ``session_id`` is the database's error, never a filter on
# the outer session's own id that counts every row of the table.
_FINGERPRINT_QUERY = (
    "SELECT s.session_id, s.status, s.ended_at, sn.n, sn.last, d.n, d.last, {trades} "
    "FROM rl_orderbook_sessions s "
    "CROSS JOIN LATERAL (SELECT count(*), max(rl_orderbook_snapshots.id) "
    "FROM rl_orderbook_snapshots WHERE rl_orderbook_snapshots.session_id = s.session_id) "
    "AS sn(n, last) "
    "CROSS JOIN LATERAL (SELECT count(*), max(rl_orderbook_deltas.id) "
    "FROM rl_orderbook_deltas WHERE rl_orderbook_deltas.session_id = s.session_id) "
    "AS d(n, last) {trades_join}"
    "WHERE s.session_id = ANY(%s) ORDER BY s.session_id"
)
_TRADES_JOIN = (
    f"CROSS JOIN LATERAL (SELECT count(*), max({COLLECTOR_TRADES_TABLE}.id) "
    f"FROM {COLLECTOR_TRADES_TABLE} WHERE {COLLECTOR_TRADES_TABLE}.session_id = s.session_id) "
    "AS t(n, last) "
)
# The columns of the trades table as this connection resolves its name (none: no table).
_TRADE_COLUMNS_QUERY = (
    "SELECT attname FROM pg_attribute WHERE attrelid = to_regclass(%s) "
    "AND attnum > 0 AND NOT attisdropped"
)
# What identifies a trade row: never read as NULL, a missing one is the database's error.
_TRADE_KEY_COLUMNS = ("id", "session_id")
# The schema each table name resolves to on this connection (search_path, options, the
# role's settings): which tables are read, whatever chose them.
_SCHEMAS_QUERY = (
    "SELECT n.nspname FROM unnest(%s::text[]) WITH ORDINALITY AS t(name, i) "
    "LEFT JOIN pg_class c ON c.oid = to_regclass(t.name) "
    "LEFT JOIN pg_namespace n ON n.oid = c.relnamespace ORDER BY t.i"
)
COLLECTOR_TABLES = ("rl_orderbook_sessions", "rl_orderbook_snapshots", "rl_orderbook_deltas")
DEFAULT_SCHEMA = "public"
_DELTA_QUERY = f"SELECT {DELTA_COLUMNS} FROM rl_orderbook_deltas WHERE session_id = %s ORDER BY id"


class PostgresSessionSource:
    """Sessions from the collector's database at ``url`` (a libpq URL or DSN).

    ``settings`` bounds every wait (default: :meth:`ConnectionSettings.from_env`). Any
    database error comes out as
    :class:`~kalshi_pipeline.sources.collector_connection.SourceUnavailable` or a subclass,
    naming what was being read, with the credentials redacted.
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
            rows = self._read(doing, fetch_all, conn, _SESSIONS_QUERY, ())
        return [session_info(row) for row in rows]

    def fingerprints(self, session_ids: Iterable[int]) -> dict[int, SessionFingerprint]:
        """The fingerprint of each listed session among ``session_ids``, by id, from one
        query (:mod:`~kalshi_pipeline.sources.fingerprint`)."""
        ids = sorted({int(i) for i in session_ids})
        if not ids:
            return {}
        doing = "reading the sessions' row counts and last ids"
        with self._connection(doing) as conn:
            has_trades = bool(self._read(doing, trade_columns, conn))
            query = _FINGERPRINT_QUERY.format(
                trades="t.n, t.last" if has_trades else "NULL, NULL",
                trades_join=_TRADES_JOIN if has_trades else "",
            )
            rows = self._read(doing, fetch_all, conn, query, (ids,))
        return {row[0]: _fingerprint(row) for row in rows}

    def identity(self) -> str:
        """Which collector tables this URL reads, without credentials: ``host:port/database``,
        followed by ``schema <name>`` when the tables resolve to a schema other than
        ``public`` (the URL's ``options``, its search_path, the role's settings: whatever
        chose them), or ``tables <schema.table, ...>`` when they resolve to several or are
        missing. ``public`` is not written, so an identity recorded before the schema was
        part of it still matches."""
        doing = "finding the schema of the collector's tables"
        with self._connection(doing) as conn:
            rows = self._read(doing, fetch_all, conn, _SCHEMAS_QUERY, (list(COLLECTOR_TABLES),))
        schemas = [row[0] for row in rows]
        where = describe_url(self._url)
        if set(schemas) == {DEFAULT_SCHEMA}:
            return where
        if len(set(schemas)) == 1:
            return redact(f"{where} schema {schemas[0]}", self._url)
        tables = ", ".join(
            f"{schema}.{table}" if schema else f"(missing) {table}"
            for schema, table in zip(schemas, COLLECTOR_TABLES, strict=True)
        )
        return redact(f"{where} tables {tables}", self._url)

    def load_session(self, session_id: int, *, allow_incomplete: bool = False) -> RawSession:
        """The raw session; one not complete raises :class:`SessionNotComplete`."""
        with self.open_session(session_id, allow_incomplete=allow_incomplete) as session:
            tables = [
                pa.Table.from_batches(list(session.batches(table)), schema).combine_chunks()
                for table, schema in zip(TABLES, (SNAPSHOT_SCHEMA, DELTA_SCHEMA), strict=True)
            ]
        return RawSession(session.info, *tables, trades=session.trades)

    @contextmanager
    def open_session(
        self, session_id: int, *, allow_incomplete: bool = False
    ) -> Iterator[CollectorSession]:
        """The session to read a batch of ``batch_rows`` rows at a time (a
        :class:`~kalshi_pipeline.sources.raw.SessionBatches`), for sessions too big to
        load: one connection, in one repeatable-read transaction, so that every read of
        it sees the same rows. Its trade tape is read whole on opening (``trades``). A
        session still recording raises :class:`SessionNotComplete`."""
        doing = f"loading session {session_id}"
        with self._connection(doing) as conn:
            conn.set_session(
                isolation_level=psycopg2.extensions.ISOLATION_LEVEL_REPEATABLE_READ, readonly=True
            )
            rows = self._read(doing, fetch_all, conn, _SESSION_QUERY, (session_id,))
            if not rows:
                raise KeyError(f"session {session_id} is not in rl_orderbook_sessions")
            info = session_info(rows[0])
            check_complete(info, allow_incomplete)
            trades = self._trades(conn, session_id)
            yield CollectorSession(self, conn, info, trades)

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
        """The rows of one of the session's tables (``snapshots``, ``deltas``), by id."""
        query, to_batch = _TABLE_READS[table]
        for batch in self._stream(conn, query, to_batch, session_id, table):
            yield batch.select(list(columns)) if columns else batch

    def _trades(self, conn, session_id: int) -> pa.Table | None:
        """The session's whole trade tape, by id; None if the database has no trades table."""
        doing = f"loading session {session_id}: trades"
        present = self._read(doing, trade_columns, conn)
        if not present:
            return None
        query = (
            f"SELECT {trade_select_list(present)} FROM {COLLECTOR_TRADES_TABLE} "
            "WHERE session_id = %s ORDER BY id"
        )
        batches = list(self._stream(conn, query, trade_batch, session_id, "trades"))
        return pa.Table.from_batches(batches, TRADE_SCHEMA).combine_chunks()

    def _stream(self, conn, query, to_batch, session_id: int, table: str):
        """The rows ``query`` gives for the session, ``batch_rows`` per batch.

        A named cursor is a server-side cursor: Postgres keeps the result set and hands
        over batch_rows rows per round trip. The statement timeout bounds each round trip
        (DECLARE, then every FETCH), not the whole read.
        """
        try:
            with conn.cursor(name=f"kalshi_pipeline_{session_id}_{uuid.uuid4().hex}") as cur:
                cur.itersize = self.batch_rows
                cur.execute(query, (session_id,))
                while rows := cur.fetchmany(self.batch_rows):
                    yield to_batch(rows)
            return
        except psycopg2.Error as exc:
            error = source_error(
                exc, self._url, self.settings, f"loading session {session_id}: {table}"
            )
        raise error  # outside the except block: see source_error


class CollectorSession:
    """One session of the collector's database read a batch at a time, while
    :meth:`PostgresSessionSource.open_session` holds its connection; ``trades`` is its
    whole trade tape (None where the database has no trades table)."""

    def __init__(
        self, source: PostgresSessionSource, conn, info: SessionInfo, trades: pa.Table | None
    ) -> None:
        self.info, self.trades = info, trades
        self._source, self._conn = source, conn

    def batches(self, table: str, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The rows of ``table`` (``"snapshots"`` or ``"deltas"``) in storage order."""
        return self._source._batches(self._conn, table, self.info.session_id, columns)


def fetch_all(conn, query: str, params: tuple) -> list[tuple]:
    with conn.cursor() as cur:
        cur.execute(query, params)
        return cur.fetchall()


def snapshot_batch(rows: list[tuple]) -> pa.RecordBatch:
    return snapshot_table(rows).combine_chunks().to_batches()[0]


def delta_batch(rows: list[tuple]) -> pa.RecordBatch:
    return delta_table(rows).combine_chunks().to_batches()[0]


def trade_batch(rows: list[tuple]) -> pa.RecordBatch:
    return collector_trade_table(rows).combine_chunks().to_batches()[0]


def trade_columns(conn) -> list[str]:
    """The trades table's columns (none if this connection finds no such table)."""
    return [row[0] for row in fetch_all(conn, _TRADE_COLUMNS_QUERY, (COLLECTOR_TRADES_TABLE,))]


def trade_select_list(present: Iterable[str]) -> str:
    """The select list that reads :data:`COLLECTOR_TRADE_COLUMNS` from a trades table
    holding the columns ``present``: an optional column it lacks reads as NULL."""
    present = set(present)
    return ", ".join(
        name if name in present or name in _TRADE_KEY_COLUMNS else "NULL"
        for name in COLLECTOR_TRADE_COLUMNS
    )


_TABLE_READS = {
    "snapshots": (_SNAPSHOT_QUERY, snapshot_batch),
    "deltas": (_DELTA_QUERY, delta_batch),
}


def _fingerprint(row: tuple) -> SessionFingerprint:
    (session_id, status, ended_at, snapshots, last_snapshot, deltas, last_delta, trades,
     last_trade) = row  # fmt: skip
    return SessionFingerprint(
        session_id=int(session_id),
        status=str(status),  # as SessionFingerprint.of writes a SessionInfo's
        ended_at=ended_at.astimezone(UTC).isoformat() if ended_at else None,
        snapshots=TableExtent(rows=int(snapshots), last_id=last_snapshot),
        deltas=TableExtent(rows=int(deltas), last_id=last_delta),
        trades=None if trades is None else TableExtent(rows=int(trades), last_id=last_trade),
    )


def session_info(row: tuple) -> SessionInfo:
    (sid, status, started, ended, tickers, env, url, msgs, snaps, deltas, last, err, meta) = row
    return SessionInfo(
        session_id=int(sid),
        status=status,
        started_at=started,
        ended_at=ended,
        market_tickers=tuple(tickers or ()),
        environment=env or "local",
        websocket_url=url or "",
        # The collector's counters, shown only: one that is not a whole number is 0.
        messages_received=_counter(msgs),
        snapshots_count=_counter(snaps),
        deltas_count=_counter(deltas),
        last_message_at=last,
        error_message=err,
        connection_metadata=meta or {},
    )


def _counter(value: object) -> int:
    return integer(value, INT64_MAX) or 0
