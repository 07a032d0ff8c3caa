"""Writing a session into the collector's tables as the collector records one live: its
rows arrive over the session's own time (sped up), one receive millisecond per commit.

:func:`write_live_session` plays a :class:`~kalshi_pipeline.sources.raw.RawSession` into
the tables of ``collector_schema.sql`` the way the collector writes them while recording,
so that a reader following the session (:mod:`~kalshi_pipeline.sources.collector_tail`)
can be tried against a recording that is still going on:

1. the session row, status ``active`` with no end, no last message and zero counters,
   committed at once;
2. the rows of all three tables grouped by receive millisecond (``timestamp_ms``), each
   millisecond in one transaction, committed ``(ms - first_ms) / speed`` seconds after
   the first one (at once when the writing is behind), its snapshots first, then its
   deltas, then its trades, each table in its own order, so the ids follow the commits;
3. the session row closed: status ``closed`` (``error`` stays ``error``), its
   ``ended_at``, ``last_message_at``, counters and error message, committed.

A row with no usable receive time (NULL, before ``started_at``, after ``ended_at``, or
earlier than the row before it in its table: the bad rows of fault tests) is written in
the millisecond of the row before it, so every row is written, each table in its order,
and a session written live reads back equal to the same session written at once
(:func:`~kalshi_pipeline.sources.collector_writer.write_collector_session`). The INSERT
and COPY statements are that module's: one statement per table with rows in the
millisecond, then the commit. A writer stopped midway leaves the session ``active``, as a
collector that crashed does.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kalshi_pipeline.sources.collector_writer import (
    copy_deltas,
    insert_session_row,
    insert_snapshot_rows,
    insert_trade_rows,
    snapshot_rows,
    trade_rows,
)
from kalshi_pipeline.sources.raw import RawSession, SessionInfo, SessionStatus

__all__ = ["MillisecondBatches", "millisecond_batches", "write_live_session"]

_NO_TIME = np.iinfo(np.int64).min  # a row without a usable receive time
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_CLOSE_SESSION = (
    "UPDATE rl_orderbook_sessions SET status = %s, ended_at = %s, last_message_at = %s, "
    "messages_received = %s, snapshots_count = %s, deltas_count = %s, error_message = %s "
    "WHERE session_id = %s"
)


@dataclass(frozen=True)
class MillisecondBatches:
    """A session's rows grouped by receive millisecond: ``milliseconds`` in increasing
    order, and per table (``snapshots``, ``deltas``, ``trades``) the offsets
    ``starts[table][i]:starts[table][i + 1]`` of millisecond ``i``'s rows in that table."""

    milliseconds: np.ndarray
    starts: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.milliseconds)

    def __iter__(self) -> Iterator[tuple[int, dict[str, slice]]]:
        """Each millisecond with the slice of each table's rows received in it."""
        for i, ms in enumerate(self.milliseconds.tolist()):
            yield ms, {t: slice(int(s[i]), int(s[i + 1])) for t, s in self.starts.items()}


def millisecond_batches(session: RawSession) -> MillisecondBatches:
    """The session's rows by receive millisecond, each row where the module docstring says."""
    tables = {"snapshots": session.snapshots, "deltas": session.deltas}
    tables["trades"] = session.trades if session.trades is not None else session.deltas[:0]
    earliest = _epoch_ms(session.info.started_at)
    latest = _epoch_ms(session.info.ended_at) if session.info.ended_at else None
    ms = {name: _row_ms(table["timestamp_ms"], earliest, latest) for name, table in tables.items()}
    known = [m[m != _NO_TIME] for m in ms.values()]
    first = min((int(m[0]) for m in known if len(m)), default=earliest)
    ms = {name: np.where(m == _NO_TIME, first, m) for name, m in ms.items()}
    milliseconds = np.unique(np.concatenate(list(ms.values())))
    # Each table's row millisecond never decreases: its offsets are a binary search away.
    starts = {
        name: np.searchsorted(m, np.append(milliseconds, np.iinfo(np.int64).max), side="left")
        for name, m in ms.items()
    }
    return MillisecondBatches(milliseconds, starts)


def write_live_session(
    conn,
    session: RawSession,
    speed: float,
    *,
    on_commit: Callable[[int, float], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Write ``session`` into the collector's tables over its own time divided by
    ``speed``, one receive millisecond per commit (see the module docstring).

    ``on_commit(ms, wall_time)`` is called after each millisecond's commit, with the
    wall-clock time (``time.time()``) just after it. ``sleep`` and ``clock`` (seconds) pace
    the writing. The session keeps its id; ``conn`` must not be in autocommit mode.
    """
    if not (speed > 0 and math.isfinite(speed)):
        raise ValueError(f"session {session.session_id}: speed must be above 0, got {speed}")
    batches = millisecond_batches(session)
    snapshots, trades = snapshot_rows(session.snapshots), trade_rows(session)  # checks first
    with conn.cursor() as cur:
        insert_session_row(cur, _opened(session.info))
    conn.commit()
    started = clock()
    for ms, rows in batches:
        wait = started + (ms - int(batches.milliseconds[0])) / 1000 / speed - clock()
        if wait > 0:
            sleep(wait)
        with conn.cursor() as cur:
            insert_snapshot_rows(cur, snapshots[rows["snapshots"]])
            copy_deltas(cur, _rows_of(session.deltas, rows["deltas"]))
            insert_trade_rows(cur, trades[rows["trades"]])
        conn.commit()
        if on_commit is not None:
            on_commit(ms, time.time())
    _close(conn, session.info)


def _opened(info: SessionInfo) -> SessionInfo:
    """The session row as the collector writes it on starting: recording, nothing yet."""
    return dataclasses.replace(
        info,
        status=SessionStatus.ACTIVE,
        ended_at=None,
        last_message_at=None,
        messages_received=0,
        snapshots_count=0,
        deltas_count=0,
        error_message=None,
    )


def _close(conn, info: SessionInfo) -> None:
    status = SessionStatus.ERROR if info.status == SessionStatus.ERROR else SessionStatus.CLOSED
    with conn.cursor() as cur:
        cur.execute(
            _CLOSE_SESSION,
            (
                status.value,
                info.ended_at,
                info.last_message_at,
                info.messages_received,
                info.snapshots_count,
                info.deltas_count,
                info.error_message,
                info.session_id,
            ),
        )
    conn.commit()


def _row_ms(timestamps: pa.ChunkedArray, earliest: int, latest: int | None) -> np.ndarray:
    """Each row's millisecond: its receive time when usable, else the row before it's
    (:data:`_NO_TIME` before the first usable one); never decreasing."""
    ms = np.asarray(pc.fill_null(timestamps, _NO_TIME).to_numpy(), dtype=np.int64)
    usable = ms >= earliest
    if latest is not None:
        usable &= ms <= latest
    return np.maximum.accumulate(np.where(usable, ms, _NO_TIME)) if len(ms) else ms


def _rows_of(table: pa.Table, rows: slice) -> pa.Table:
    return table.slice(rows.start, rows.stop - rows.start)


def _epoch_ms(moment: datetime) -> int:
    return (moment - _EPOCH) // timedelta(milliseconds=1)
