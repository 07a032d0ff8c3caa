"""Paper trading's own PostgreSQL tables: each poll's records and cursor, in one transaction.

:class:`PaperStore` keeps what :mod:`.follow` makes of a session in the pipeline's own
database (never the collector's; ``schema.sql`` beside this module): the session
(``paper_sessions``: its source, env config, models, status, the cleaning's counts and
the cursor, the last collector row id read of each table), each write's cursor
(``paper_polls``), and the records (:mod:`.records`) in ``paper_markets``,
``paper_decisions``, ``paper_outcomes`` and ``paper_fills``.

:meth:`PaperStore.write` is the commit contract: every record of a poll and the cursor
after it go in ONE transaction, so the stored records are always exactly those of the
rows up to the stored cursor, and a follower killed at any point resumes from there
(:mod:`.follow`). Primary keys make a doubled record impossible. When the database is
unreachable (the connection lost, the server restarting), a write is rolled back whole
and tried again on a new connection, waiting 0.5 s, then twice as long each time up to
30 s; a write whose COMMIT was sent but not acknowledged is looked up before it is tried
again (the session's poll count says whether it landed), so it lands exactly once.
A commit does not wait for the disk (``synchronous_commit`` off on the store's own
connection): a write takes well under a millisecond instead of the disk's flush (about
4 ms here) on the way to the next decision. A crash of the database server itself may
lose its last fraction of a second of acknowledged writes, records and cursor together;
the store then refuses its next write (it counts its own) and the follower, started
again, replays those rows from the stored cursor: nothing is lost or doubled.
Records read back (:meth:`PaperStore.load`) equal those written, bit for bit: rewards
as DOUBLE PRECISION, observations as BYTEA. Messages name the database by host, port and
name only (:func:`~kalshi_pipeline.sources.redaction.describe_url`).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from importlib import resources
from typing import NamedTuple

import psycopg2
import psycopg2.extensions
import psycopg2.extras

from kalshi_pipeline.paper.records import Records
from kalshi_pipeline.paper.store_rows import SUMMARY_QUERY, read_session, record_rows
from kalshi_pipeline.sources.collector_connection import ConnectionSettings
from kalshi_pipeline.sources.collector_tail import Cursor
from kalshi_pipeline.sources.redaction import describe_url, redact

logger = logging.getLogger(__name__)

FIRST_RETRY_S, MAX_RETRY_S = 0.5, 30.0
_UNREACHABLE = (psycopg2.OperationalError, psycopg2.InterfaceError)


class PaperStatus(StrEnum):
    """A paper session's status: still being followed, or followed to its close."""

    FOLLOWING = "following"
    CLOSED = "closed"


class PaperStoreError(RuntimeError):
    """The paper database refused something (not a lost connection); the message says
    which database, which session and why, without credentials."""


@dataclass(frozen=True)
class StreamCounts:
    """What the live path counted so far: cleaning's repairs and what it could not do
    without looking ahead (:class:`~kalshi_pipeline.market.streaming.SessionStream`)."""

    repairs: Mapping[str, int] = field(default_factory=dict)
    live_only: Mapping[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, stream) -> StreamCounts:
        """The counts of a :class:`~kalshi_pipeline.market.streaming.SessionStream`."""
        return cls(
            repairs={str(kind): int(n) for kind, n in stream.report.repairs.items() if n},
            live_only={str(kind): int(n) for kind, n in stream.live_only.items() if n},
        )


class StoredSession(NamedTuple):
    """A session as the store holds it: its records, the cursor they reach, its status."""

    records: Records
    cursor: Cursor
    status: PaperStatus


@dataclass(frozen=True)
class SessionSummary:
    """One row of :meth:`PaperStore.sessions`: a session's status and totals."""

    session_id: int
    source: str
    status: PaperStatus
    started_at: datetime
    closed_at: datetime | None
    markets: int
    decisions: int
    fills: int
    reward: float  # the outcomes' rewards summed, in the env's units
    value_cents: int  # each market's last portfolio value, summed
    fees_cents: int


class PaperStore:
    """The paper tables at ``url`` (a libpq URL or DSN), written from one connection kept
    open between writes. ``say`` hears about retries (default: the log); ``sleep`` waits
    between them. One store serves one thread."""

    def __init__(
        self,
        url: str,
        *,
        say: Callable[[str], None] | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self._url = url
        self._say = say or logger.warning
        self._sleep = sleep
        self._conn: psycopg2.extensions.connection | None = None
        self._settings = ConnectionSettings(application_name="kalshi-pipeline paper")
        self._written: dict[int, int] = {}  # each session's polls after this store's last write

    def __repr__(self) -> str:
        return f"PaperStore({describe_url(self._url)})"

    @property
    def where(self) -> str:
        """The database, as messages name it: ``paper database host:port/name``."""
        return f"paper database {describe_url(self._url)}"

    def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None and not conn.closed:
            conn.close()

    def create(self) -> None:
        """Create the tables if missing (no retry: a wrong URL is said at once)."""
        ddl = resources.files("kalshi_pipeline.paper").joinpath("schema.sql").read_text()
        self._once("creating the paper tables", lambda cur: cur.execute(ddl))

    def begin(self, session_id: int, source: str, env_config: Mapping) -> None:
        """The session's row, status following, unless it has one; a row of another
        source (another collector's session of the same id) is refused."""

        def insert(cur) -> None:
            cur.execute(
                "INSERT INTO paper_sessions (session_id, source, env_config) VALUES (%s,%s,%s)"
                " ON CONFLICT (session_id) DO NOTHING",
                (session_id, source, json.dumps(dict(env_config))),
            )
            cur.execute("SELECT source FROM paper_sessions WHERE session_id = %s", (session_id,))
            stored = cur.fetchone()[0]
            if stored != source:
                raise PaperStoreError(
                    f"{self.where}: session {session_id} was followed from {stored}, "
                    f"not from {source}"
                )

        self._retrying(f"starting session {session_id}", insert)

    def write(
        self,
        session_id: int,
        records: Records,
        cursor: Cursor,
        decided_at: float,
        *,
        status: PaperStatus | str | None = None,
        stream_counts: StreamCounts | None = None,
    ) -> None:
        """One poll: ``records``, the ``cursor`` after them (and the status and counts,
        when given), in one transaction. ``decided_at`` (seconds since the epoch) is when
        the poll's decisions were made. Retries while the database is unreachable."""
        when = datetime.fromtimestamp(decided_at, UTC)
        status = None if status is None else PaperStatus(status)

        def write(cur) -> None:
            polls = _locked_polls(cur, session_id, self.where)
            self._check_continues(session_id, polls)
            self._pending = (session_id, polls)
            _insert_records(cur, session_id, records, when)
            _advance(cur, session_id, polls + 1, cursor, status, stream_counts)

        self._retrying(f"writing session {session_id} up to {cursor.describe()}", write)
        self._written[session_id] = self._pending_polls + 1

    def _check_continues(self, session_id: int, polls: int) -> None:
        """Refuse a write that would not follow this store's last one: the database lost
        acknowledged writes (a server crash: commits do not wait for the disk) or another
        follower writes the session. Started again, the follower replays what is missing."""
        self._pending_polls = polls
        expected = self._written.get(session_id)
        if expected is not None and polls != expected:
            raise PaperStoreError(
                f"{self.where}: session {session_id} has {polls} writes, and this follower "
                f"made {expected}: writes were lost (a database server crash) or another "
                "follower writes it; start the follower again to replay from the stored cursor"
            )

    def load(self, session_id: int) -> StoredSession | None:
        """The session's records, cursor and status; None when it is not stored."""
        stored = self._retrying(f"reading session {session_id}", read_session, session_id)
        if stored is None:
            return None
        records, cursor, status = stored
        return StoredSession(records, cursor, PaperStatus(status))

    def polls(self, session_id: int) -> list[Cursor]:
        """The cursor of each write of the session, in order."""

        def read(cur) -> list[Cursor]:
            cur.execute(
                "SELECT snapshots_id, deltas_id, trades_id FROM paper_polls "
                "WHERE session_id = %s ORDER BY poll",
                (session_id,),
            )
            return [Cursor(*row) for row in cur.fetchall()]

        return self._retrying(f"reading the polls of session {session_id}", read)

    def sessions(self, session_id: int | None = None) -> list[SessionSummary]:
        """Every stored session (or only ``session_id``), newest first, with its totals."""

        def read(cur) -> list[SessionSummary]:
            cur.execute(SUMMARY_QUERY, {"every": session_id is None, "session_id": session_id})
            return [
                SessionSummary(*row[:2], PaperStatus(row[2]), *row[3:]) for row in cur.fetchall()
            ]

        return self._retrying("listing the paper sessions", read)

    # -- transactions --------------------------------------------------------------------
    def _once(self, doing: str, work: Callable, *args):
        """``work(cursor, *args)`` in one transaction, committed; rolled back on any
        error. A lost connection raises as :class:`PaperStoreError` too."""
        try:
            return self._transaction(doing, work, *args)
        except _UNREACHABLE as exc:
            self.close()
            error = self._error(exc, doing, "unreachable: ")
        raise error

    def _retrying(self, doing: str, work: Callable, *args):
        """:meth:`_once`, tried again while the database is unreachable (see the module
        docstring), a write that may have landed looked up first."""
        delay = FIRST_RETRY_S
        self._pending: tuple[int, int] | None = None
        while True:
            try:
                if self._pending is not None and self._landed(*self._pending):
                    return None
                self._pending = None
                return self._transaction(doing, work, *args)
            except _UNREACHABLE as exc:
                self.close()
                reason = self._error(exc, doing, "")
            self._say(f"paper database unreachable, retrying in {delay:g} s ({reason})")
            self._sleep(delay)
            delay = min(2 * delay, MAX_RETRY_S)

    def _landed(self, session_id: int, polls: int) -> bool:
        """Whether the write that found ``polls`` polls committed (its COMMIT was sent
        when the connection was lost)."""

        def count(cur) -> int:
            cur.execute("SELECT polls FROM paper_sessions WHERE session_id = %s", (session_id,))
            return cur.fetchone()[0]

        return (
            self._transaction(f"looking up write {polls + 1} of session {session_id}", count)
            > polls
        )

    def _transaction(self, doing: str, work: Callable, *args):
        conn = self._connection()
        try:
            with conn.cursor() as cur:
                result = work(cur, *args)
            conn.commit()
            return result
        except psycopg2.Error as exc:
            _rollback(conn)
            if isinstance(exc, _UNREACHABLE):
                raise
            error = self._error(exc, doing, "")
        except BaseException:
            _rollback(conn)
            raise
        raise error

    def _connection(self) -> psycopg2.extensions.connection:
        if self._conn is None or self._conn.closed:
            try:
                self._conn = psycopg2.connect(
                    self._url, **self._settings.libpq_parameters(self._url)
                )
                with self._conn.cursor() as cur:  # see the module docstring
                    cur.execute("SET synchronous_commit = off")
                self._conn.commit()
            except psycopg2.ProgrammingError as exc:  # a URL libpq cannot parse
                error = self._error(exc, "connecting", "")
                raise error from None
        return self._conn

    def _error(self, exc: psycopg2.Error, doing: str, prefix: str) -> PaperStoreError:
        reason = redact(" ".join(str(exc).split()), self._url) or type(exc).__name__
        while_ = f" while {doing}" if doing else ""
        return PaperStoreError(f"{self.where}{while_}: {prefix}{reason}")


def _rollback(conn) -> None:
    """End a failed transaction; a connection already lost has nothing to roll back."""
    try:
        if not conn.closed:
            conn.rollback()
    except psycopg2.Error:
        conn.close()


def _locked_polls(cur, session_id: int, where: str) -> int:
    cur.execute("SELECT polls FROM paper_sessions WHERE session_id = %s FOR UPDATE", (session_id,))
    row = cur.fetchone()
    if row is None:
        raise PaperStoreError(f"{where}: session {session_id} was never started (begin it)")
    return row[0]


def _insert_records(cur, session_id: int, records: Records, when: datetime) -> None:
    rows = record_rows(session_id, records, when)
    for table, (columns, values, conflict) in rows.items():
        if values:
            psycopg2.extras.execute_values(
                cur, f"INSERT INTO {table} ({columns}) VALUES %s {conflict}", values,
                page_size=1000,
            )  # fmt: skip
    if records.markets:
        cur.execute(
            "UPDATE paper_sessions SET models = (SELECT jsonb_agg(m ORDER BY m) FROM "
            "(SELECT DISTINCT jsonb_build_object('model', model, 'model_path', model_path) "
            "AS m FROM paper_markets WHERE session_id = %s) AS used) WHERE session_id = %s",
            (session_id, session_id),
        )


def _advance(
    cur,
    session_id: int,
    poll: int,
    cursor: Cursor,
    status: PaperStatus | None,
    counts: StreamCounts | None,
) -> None:
    ids = astuple(cursor)
    cur.execute(
        "INSERT INTO paper_polls (session_id, poll, snapshots_id, deltas_id, trades_id) "
        "VALUES (%s, %s, %s, %s, %s)",
        (session_id, poll, *ids),
    )
    sets = ["polls = %s", "snapshots_id = %s", "deltas_id = %s", "trades_id = %s"]
    values: list = [poll, *ids]
    if counts is not None:
        sets += ["repairs = %s", "live_only = %s"]
        values += [json.dumps(dict(counts.repairs)), json.dumps(dict(counts.live_only))]
    if status is not None:
        sets += ["status = %s", "closed_at = CASE WHEN %s THEN NOW() END"]
        values += [status.value, status == PaperStatus.CLOSED]
    cur.execute(
        f"UPDATE paper_sessions SET {', '.join(sets)} WHERE session_id = %s",
        (*values, session_id),
    )


__all__ = [
    "PaperStatus",
    "PaperStore",
    "PaperStoreError",
    "SessionSummary",
    "StoredSession",
    "StreamCounts",
]
