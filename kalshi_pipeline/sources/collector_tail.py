"""Following a session the collector is still recording: the rows it committed since the
last read, for a reader that acts on them as they arrive (paper trading).

:class:`CollectorTail` reads, for one session, every row of ``rl_orderbook_snapshots``,
``rl_orderbook_deltas`` and ``rl_orderbook_trades`` whose ``id`` is above a
:class:`Cursor` (the last id read of each table), together with the session's
``rl_orderbook_sessions`` row, and returns them as :class:`NewRows` in exactly the types a
whole session is loaded in (:class:`~kalshi_pipeline.sources.postgres.PostgresSessionSource`
converts its rows with the same functions), each table by ``id``.

The contract with the writer, which this reading relies on:

* **Ids follow commits.** The collector writes from one connection, one transaction after
  another, so every row of a transaction gets a higher id, in each table, than every row
  of the transactions committed before it. A reader that has seen a commit has seen every
  earlier one, so "the rows with id above the cursor" never skips a row that commits
  later with a lower id: the id cursor is safe. (Several writers at once would break
  this: their ids are drawn before they commit, in no order of commits.)
* **A millisecond is one commit.** The collector commits the rows it received in one
  millisecond (by ``timestamp_ms``: book snapshots, deltas and trades alike) together, so
  a millisecond is complete when its commit is seen. A row with no usable receive time
  is committed with the row before it.
* **One snapshot per read.** A read is one statement (:mod:`.tail_query`), which
  PostgreSQL runs on one snapshot: the session row and the rows come from the same
  snapshot of the database, so a committed transaction is seen whole or not at all, and
  a session row that says ``closed`` (or carries an ``ended_at``) comes with every row of
  the session. No read ever splits a millisecond; ``limit`` (rows per table) cuts a read
  at a millisecond's boundary, reading one millisecond whole even when it holds more rows
  than ``limit``.

Reads are cheap enough to poll every few milliseconds: one round trip each, on a
connection that stays open between reads, each table read through its
``(session_id, id)`` index, and nothing counted. A lost connection raises
:class:`~kalshi_pipeline.sources.collector_connection.SourceUnavailable` (as does every
database error, with the credentials redacted); the next read connects again and goes on
from whatever cursor it is given, so a caller retries with backoff and the same cursor
and nothing is lost or read twice. One :class:`CollectorTail` serves one thread.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Self, TypeVar

import psycopg2
import psycopg2.extensions
import pyarrow as pa

from kalshi_pipeline.sources.collector_connection import (
    ConnectionSettings,
    connect,
    source_error,
)
from kalshi_pipeline.sources.postgres import (
    SESSION_COLUMNS,
    delta_batch,
    fetch_all,
    session_info,
    snapshot_batch,
    trade_batch,
    trade_columns,
    trade_select_list,
)
from kalshi_pipeline.sources.raw import DELTA_SCHEMA, SNAPSHOT_SCHEMA, SessionInfo, SessionStatus
from kalshi_pipeline.sources.tail_query import EXECUTE, prepare_statement, split_rows
from kalshi_pipeline.sources.trades import COLLECTOR_TRADE_COLUMNS, TRADE_SCHEMA

__all__ = ["CollectorTail", "Cursor", "NewRows", "SessionNotFound"]

T = TypeVar("T")

_LIVE_QUERY = (
    f"SELECT {SESSION_COLUMNS} FROM rl_orderbook_sessions WHERE status = %s "
    "ORDER BY started_at DESC, session_id DESC LIMIT 1"
)
_SESSION_QUERY = f"SELECT {SESSION_COLUMNS} FROM rl_orderbook_sessions WHERE session_id = %s"
# Where each table's select list holds timestamp_ms (the book tables: fifth column).
_TIMESTAMP_AT = {
    "snapshots": 3,
    "deltas": 3,
    "trades": COLLECTOR_TRADE_COLUMNS.index("timestamp_ms"),
}


@dataclass(frozen=True)
class Cursor:
    """Where a reader is in a session: the last row id it read of each table (0: none)."""

    snapshots: int = 0
    deltas: int = 0
    trades: int = 0

    def to_json(self) -> dict[str, int]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**{name: int(value) for name, value in data.items()})

    def describe(self) -> str:
        """``snapshot id 12, delta id 480, trade id 3``: for errors."""
        return f"snapshot id {self.snapshots}, delta id {self.deltas}, trade id {self.trades}"


@dataclass(frozen=True)
class NewRows:
    """What one read found: the session row and the rows after the cursor, each table in
    the schema a loaded :class:`~kalshi_pipeline.sources.raw.RawSession` has (``trades``:
    None when the database has no trades table), by id; ``cursor`` is where the next read
    starts. All of it is one snapshot of the database."""

    info: SessionInfo
    snapshots: pa.Table
    deltas: pa.Table
    trades: pa.Table | None
    cursor: Cursor

    def __len__(self) -> int:
        trades = 0 if self.trades is None else self.trades.num_rows
        return self.snapshots.num_rows + self.deltas.num_rows + trades


class SessionNotFound(KeyError):
    """The session id is not in ``rl_orderbook_sessions``; the message names it."""

    def __str__(self) -> str:
        return str(self.args[0])


class CollectorTail:
    """New rows of the collector's sessions at ``url`` (a libpq URL or DSN), read from one
    connection kept open between reads (see the module docstring).

    ``settings`` bounds every wait (default: :meth:`ConnectionSettings.from_env`). Close it
    with :meth:`close`, or use it as a context manager.
    """

    def __init__(self, url: str, *, settings: ConnectionSettings | None = None) -> None:
        self._url = url
        self.settings = settings or ConnectionSettings.from_env()
        self._conn: psycopg2.extensions.connection | None = None
        self._trade_select = ""  # this connection's trades select list ("": no table)
        self._prepared = False  # whether this connection has the read prepared

    def __repr__(self) -> str:
        return "CollectorTail(<url hidden>)"

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the connection, if open (the next read opens another)."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.close()

    def live_session(self) -> SessionInfo | None:
        """The session being recorded: the newest (by ``started_at``, then id) whose status
        is ``active``; None when there is none. A collector that crashed leaves its session
        active: a newer one started since is the live one."""
        rows = self._in_snapshot(
            "finding the live session", fetch_all, _LIVE_QUERY, (SessionStatus.ACTIVE.value,)
        )
        return session_info(rows[0]) if rows else None

    def session(self, session_id: int) -> SessionInfo:
        """The session's ``rl_orderbook_sessions`` row; :class:`SessionNotFound` if absent."""
        doing = f"reading session {session_id}"
        rows = self._in_snapshot(doing, fetch_all, _SESSION_QUERY, (session_id,))
        return _the_session(rows, session_id)

    def read(self, session_id: int, cursor: Cursor = Cursor(), limit: int | None = None) -> NewRows:
        """The session row and every row after ``cursor``, from one snapshot (see the module
        docstring); at most about ``limit`` rows per table, ending at a millisecond's
        boundary, when given. :class:`SessionNotFound` if the session is absent."""
        if limit is not None and limit < 1:
            raise ValueError(f"limit must be at least 1 row, got {limit}")
        doing = f"reading session {session_id} after {cursor.describe()}"
        fetch = None if limit is None else limit + 1  # one more: was the table cut?
        found = self._in_snapshot(doing, self._rows_after, session_id, cursor, fetch)
        info = _the_session(found.pop("session"), session_id)
        if limit is not None and any(len(rows) > limit for rows in found.values()):
            found = _whole_milliseconds(found, limit)
            if not any(found.values()):  # one millisecond holds more than limit rows
                return self.read(session_id, cursor, 2 * limit)
        return _new_rows(info, found, cursor)

    def _rows_after(
        self, conn, session_id: int, cursor: Cursor, fetch: int | None
    ) -> dict[str, list[tuple]]:
        if not self._prepared:
            present = trade_columns(conn)
            self._trade_select = trade_select_list(present) if present else ""
            with conn.cursor() as cur:
                cur.execute(prepare_statement(self._trade_select))
            self._prepared = True
        params = {"session": session_id, "limit": fetch, **cursor.to_json()}
        return split_rows(fetch_all(conn, EXECUTE, params), self._trade_select)

    def _in_snapshot(self, doing: str, read: Callable[..., T], *args: Any) -> T:
        """``read(conn, *args)``: one statement, on one snapshot of the database (the
        connection commits each statement: nothing is held between reads).

        Any database error drops the connection (the next call opens another) and comes
        out as SourceUnavailable naming ``doing``.
        """
        try:
            conn = self._connection(doing)
            return read(conn, *args)
        except psycopg2.Error as exc:
            self.close()
            error = source_error(exc, self._url, self.settings, doing)
        except BaseException:
            self.close()  # stopped mid-statement: its state is unknown
            raise
        raise error  # outside the except block: see source_error

    def _connection(self, doing: str) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            self._conn = connect(self._url, self.settings, doing=doing)
            self._conn.autocommit = True  # a read is one statement: no transaction around
            with self._conn.cursor() as cur:
                # A poll reads a few rows: starting parallel workers would take longer
                # than the read (milliseconds, when the planner expects many rows).
                cur.execute(
                    "SET max_parallel_workers_per_gather = 0; "
                    "SET default_transaction_read_only = on"
                )
            self._prepared = False
        return self._conn


def _the_session(rows: list[tuple], session_id: int) -> SessionInfo:
    if not rows:
        raise SessionNotFound(f"session {session_id} is not in rl_orderbook_sessions")
    return session_info(rows[0])


def _whole_milliseconds(found: dict[str, list[tuple]], limit: int) -> dict[str, list[tuple]]:
    """The rows read with ``limit + 1`` per table, cut so that no millisecond is split.

    A table that gave more than ``limit`` rows was cut inside its last millisecond, or
    may have been: its first row not kept (the extra one) is at millisecond ``M`` (or
    later), so every table keeps its rows before ``M`` only. Those are all of that
    table's rows before ``M``: a table not cut was read whole, and a cut one holds its
    rows by receive time. A row's millisecond is the latest receive time at or before it
    in its table (a row with none, or an earlier one, belongs to the row before it).
    """
    running = {table: _running_ms(rows, _TIMESTAMP_AT[table]) for table, rows in found.items()}
    cut_at = min(running[table][limit] for table, rows in found.items() if len(rows) > limit)
    return {
        table: rows[: sum(1 for ms in running[table][:limit] if ms < cut_at)]
        for table, rows in found.items()
    }


def _running_ms(rows: Sequence[tuple], at: int) -> list[float]:
    """Each row's millisecond: the largest receive time up to it (-inf before any)."""
    latest, out = float("-inf"), []
    for row in rows:
        if isinstance(row[at], int):
            latest = max(latest, row[at])
        out.append(latest)
    return out


def _new_rows(info: SessionInfo, found: dict[str, list[tuple]], cursor: Cursor) -> NewRows:
    trades = found.get("trades")
    last_ids = {table: rows[-1][0] for table, rows in found.items() if rows}
    return NewRows(
        info=info,
        snapshots=_table(found["snapshots"], snapshot_batch, SNAPSHOT_SCHEMA),
        deltas=_table(found["deltas"], delta_batch, DELTA_SCHEMA),
        trades=None if trades is None else _table(trades, trade_batch, TRADE_SCHEMA),
        cursor=dataclasses.replace(cursor, **last_ids),
    )


def _table(rows: list[tuple], to_batch: Callable, schema: pa.Schema) -> pa.Table:
    return pa.Table.from_batches([to_batch(rows)] if rows else [], schema)
