"""Assembling simulated markets into one session in the collector's raw schema.

:func:`assemble_session` merges the markets' :class:`~kalshi_pipeline.sources.
simulated_market.MarketEvents` into one session-wide sequence, as the collector numbers
what it receives, and writes them as the snapshots and deltas tables and the session's
:class:`~kalshi_pipeline.sources.raw.SessionInfo`, with the trade tape when the markets
have trades (:mod:`~kalshi_pipeline.sources.simulated_trades`; markets without, the
two-class population's, give a session without a tape). It draws no random numbers: a
session is a function of its markets.

One counter numbers everything the session received: by time, a trade before the book
changes of its millisecond (Kalshi sends the trade, then the deltas it causes), then by
market and each market's own order.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa

from kalshi_pipeline.sources.raw import (
    DELTA_SCHEMA,
    LEVELS,
    SNAPSHOT_SCHEMA,
    RawSession,
    SessionInfo,
    SessionStatus,
)
from kalshi_pipeline.sources.simulated_market import MarketEvents, MarketTrades
from kalshi_pipeline.sources.simulated_trades import trades_table


@dataclass(frozen=True, kw_only=True)
class _SessionEvents:
    """Every market's events side by side (market by market), with their session-wide
    sequence numbers; the books are the snapshot events' rows, in the same order."""

    tickers: np.ndarray  # object[M]
    market_of_event: np.ndarray  # int[E]
    offset_ms: np.ndarray  # int64[E]
    sequence: np.ndarray  # int64[E], 1..E
    is_snapshot: np.ndarray  # bool[E]
    level: np.ndarray  # int64[E]
    new_size: np.ndarray  # int64[E]
    old_size: np.ndarray  # int64[E]
    books: np.ndarray  # int64[S, 198]
    # The markets' trades side by side (K of them); None when no market records a tape.
    trade_market: np.ndarray | None  # int[K]
    trade_offset_ms: np.ndarray  # int64[K]
    trade_sequence: np.ndarray  # int64[K]


def assemble_session(
    session_id: int,
    started_at: datetime,
    duration_ms: int,
    tickers: list[str],
    markets: list[MarketEvents],
) -> RawSession:
    """The closed session of ``markets`` (one per ticker, in order) starting at
    ``started_at``."""
    events = _merge(tickers, markets)
    start_ms = int(started_at.timestamp() * 1000)
    snapshots = _snapshots_table(session_id, start_ms, events)
    deltas = _deltas_table(session_id, start_ms, events)
    trades = _trades(session_id, start_ms, events, [m.trades for m in markets])
    received = snapshots.num_rows + deltas.num_rows + (trades.num_rows if trades else 0)
    ended_at = started_at + timedelta(milliseconds=duration_ms)
    info = SessionInfo(
        session_id=session_id,
        status=SessionStatus.CLOSED,
        started_at=started_at,
        ended_at=ended_at,
        market_tickers=tuple(tickers),
        environment="local",
        websocket_url="sim://kalshi-pipeline",
        messages_received=received,
        snapshots_count=snapshots.num_rows,
        deltas_count=deltas.num_rows,
        last_message_at=ended_at,
        connection_metadata={"simulated": True},
    )
    return RawSession(info, snapshots, deltas, trades)


def _merge(tickers: list[str], markets: list[MarketEvents]) -> _SessionEvents:
    counts = np.array([len(m.offset_ms) for m in markets])
    market_of_event = np.repeat(np.arange(len(markets)), counts)
    local_order = np.concatenate([np.arange(c) for c in counts])
    offset = np.concatenate([m.offset_ms for m in markets])
    traded = [i for i, m in enumerate(markets) if m.trades is not None]
    trade_market = np.repeat(traded, [len(markets[i].trades.count) for i in traded])
    trade_offset = np.concatenate(
        [markets[i].offset_ms[markets[i].trades.event] for i in traded] or [[]]
    ).astype(np.int64)
    # Session-wide order: by time, a trade before the book changes of its millisecond,
    # then market, then each market's own order (trades in theirs).
    order = np.lexsort(
        (
            np.concatenate([local_order, np.arange(len(trade_offset))]),
            np.concatenate([market_of_event, trade_market]),
            np.concatenate([np.ones(len(offset), np.int8), np.zeros(len(trade_offset), np.int8)]),
            np.concatenate([offset, trade_offset]),
        )
    )
    sequence = np.empty(len(order), dtype=np.int64)
    sequence[order] = np.arange(1, len(order) + 1)
    return _SessionEvents(
        tickers=np.array(tickers, dtype=object),
        market_of_event=market_of_event,
        offset_ms=offset,
        sequence=sequence[: len(offset)],
        is_snapshot=np.concatenate([m.is_snapshot for m in markets]),
        level=np.concatenate([m.level for m in markets]).astype(np.int64),
        new_size=np.concatenate([m.new_size for m in markets]),
        old_size=np.concatenate([m.old_size for m in markets]),
        books=np.concatenate([m.snapshot_books for m in markets]),
        trade_market=trade_market if traded else None,
        trade_offset_ms=trade_offset,
        trade_sequence=sequence[len(offset) :],
    )


def _trades(
    session_id: int, start_ms: int, events: _SessionEvents, tapes: list[MarketTrades | None]
) -> pa.Table | None:
    """The session's trade tape (``tapes``: each market's trades, None where it records
    none); None when no market records one (two-class)."""
    if events.trade_market is None:
        return None
    tapes = [t for t in tapes if t is not None]
    return trades_table(
        session_id,
        start_ms,
        events.tickers[events.trade_market],
        events.trade_offset_ms,
        events.trade_sequence,
        np.concatenate([t.yes_price for t in tapes]),
        np.concatenate([t.count for t in tapes]),
        np.concatenate([t.taker_yes for t in tapes]),
    )


def _snapshots_table(session_id: int, start_ms: int, events: _SessionEvents) -> pa.Table:
    snap_idx = np.flatnonzero(events.is_snapshot)
    snap_order = snap_idx[np.argsort(events.sequence[snap_idx])]
    book_of_event = np.cumsum(events.is_snapshot) - 1
    return pa.table(
        {
            "id": np.arange(1, len(snap_order) + 1, dtype=np.int64),
            "session_id": np.full(len(snap_order), session_id, dtype=np.int64),
            "market_ticker": events.tickers[events.market_of_event[snap_order]].tolist(),
            "timestamp_ms": start_ms + events.offset_ms[snap_order],
            "sequence_number": events.sequence[snap_order],
            **_price_maps(events.books[book_of_event[snap_order]]),
            "map_error": pa.nulls(len(snap_order), pa.string()),
        },
        schema=SNAPSHOT_SCHEMA,
    )


def _deltas_table(session_id: int, start_ms: int, events: _SessionEvents) -> pa.Table:
    delta_idx = np.flatnonzero(~events.is_snapshot)
    delta_order = delta_idx[np.argsort(events.sequence[delta_idx])]
    d_level = events.level[delta_order]
    d_new, d_old = events.new_size[delta_order], events.old_size[delta_order]
    action = np.where(d_old == 0, "add", np.where(d_new == 0, "remove", "update"))
    return pa.table(
        {
            "id": np.arange(1, len(delta_order) + 1, dtype=np.int64),
            "session_id": np.full(len(delta_order), session_id, dtype=np.int64),
            "market_ticker": pa.array(events.tickers[events.market_of_event[delta_order]].tolist()),
            "timestamp_ms": start_ms + events.offset_ms[delta_order],
            "sequence_number": events.sequence[delta_order],
            "side": np.where(d_level < LEVELS, "yes", "no"),
            "action": action,
            "price": (d_level % LEVELS + 1).astype(np.int32),
            "old_size": d_old,
            "new_size": d_new,
        },
        schema=DELTA_SCHEMA,
    )


def _price_maps(books: np.ndarray) -> dict[str, pa.Array]:
    """The four map columns for snapshot books int64[S, 198]; asks derived as 100 - p."""
    yes, no = books[:, :LEVELS], books[:, LEVELS:]
    return {
        "yes_bids": _map_array(yes),
        "no_bids": _map_array(no),
        # A YES ask at 100 - p is a NO bid at p: column j of the reversed NO book is the
        # NO bid at 99 - j, i.e. the YES ask at j + 1 (and the same for NO asks).
        "yes_asks": _map_array(no[:, ::-1]),
        "no_asks": _map_array(yes[:, ::-1]),
    }


def _map_array(sizes: np.ndarray) -> pa.MapArray:
    """A map<price, size> per row of ``sizes`` (column j = price j + 1), zeros left out."""
    rows, cols = np.nonzero(sizes)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(sizes)))])
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.array(cols + 1, pa.int32()),
        pa.array(sizes[rows, cols], pa.int64()),
    )
