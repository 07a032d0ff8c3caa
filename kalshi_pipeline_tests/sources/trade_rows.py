"""Hand-made trade tapes for the trade-tape tests: a session's book rows plus its trades.

    session = with_trades(
        book_session(),
        trade("MKT-A", "t-1", yes_price=41, count=3, taker_side="yes", seq=4),
    )

Trades are stored in the order given (ids 1, 2, ...). The receive time defaults to one
millisecond per sequence number after 2026-01-05 (as the book rows of
:mod:`kalshi_pipeline_tests.factories`), the exchange time to the whole second before it.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline.sources.trades import TRADE_SCHEMA, trade_table
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot


def trade(
    ticker: str,
    trade_id: str,
    yes_price: int | None,
    count: int | None,
    taker_side: str | None,
    *,
    seq: int | None = None,
    ts: int | None = None,
    no_price: int | None = None,
    exchange_ts_ms: int | None = None,
) -> dict[str, Any]:
    """One trade; ``no_price`` defaults to ``100 - yes_price``."""
    received = T0_MS + (seq or 0) if ts is None else ts
    if no_price is None and yes_price is not None:
        no_price = 100 - yes_price
    return {
        "trade_id": trade_id,
        "market_ticker": ticker,
        "yes_price": yes_price,
        "no_price": no_price,
        "count": count,
        "taker_side": taker_side,
        "exchange_ts_ms": received - received % 1000 if exchange_ts_ms is None else exchange_ts_ms,
        "timestamp_ms": received,
        "sequence_number": seq,
    }


def with_trades(session: RawSession, *trades: dict[str, Any]) -> RawSession:
    """``session`` with the tape ``trades`` (ids 1, 2, ... in the order given)."""
    rows = [
        tuple(
            {"id": i + 1, "session_id": session.session_id, **t}[name]
            for name in TRADE_SCHEMA.names
        )
        for i, t in enumerate(trades)
    ]
    return dataclasses.replace(session, trades=trade_table(rows))


def book_session(session_id: int = 1) -> RawSession:
    """Two markets with a few book changes each, and no tape."""
    return make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10, 39: 5}, no_bids={55: 7}),
        snapshot("MKT-B", seq=2, yes_bids={20: 4}, no_bids={75: 9}),
        delta("MKT-A", seq=5, side="no", price=55, new_size=4, old_size=7),
        delta("MKT-B", seq=6, side="yes", price=20, new_size=1, old_size=4),
        delta("MKT-A", seq=8, side="yes", price=40, new_size=7, old_size=10),
        session_id=session_id,
    )


def taped_session(session_id: int = 1) -> RawSession:
    """:func:`book_session` with a tape of both taker sides, with and without sequence
    numbers, one trade in a millisecond of its own."""
    return with_trades(
        book_session(session_id),
        trade("MKT-A", "a1b2-0001", yes_price=45, count=3, taker_side="yes", seq=4),
        trade("MKT-B", "a1b2-0002", yes_price=20, count=3, taker_side="no", seq=None, ts=T0_MS + 6),
        trade("MKT-A", "a1b2-0003", yes_price=40, count=3, taker_side="no", seq=7),
        trade("MKT-A", "a1b2-0004", yes_price=41, count=1000, taker_side="yes", ts=T0_MS + 2_500),
    )
