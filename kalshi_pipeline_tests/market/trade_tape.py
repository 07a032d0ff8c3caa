"""Hand-made trade tapes for the market layer's tests.

    raw = with_tape(make_session(...), trade("MKT-A", "t1", 40, 5, "no", ts=T0_MS + 3))

A trade's ``no_price`` defaults to ``100 - yes_price``; rows are stored in the order
given (ids 1, 2, ...). Any field may be None (NULL) or out of range on purpose.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import pyarrow as pa

from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline.sources.trades import TRADE_SCHEMA

_DEFAULT = object()


def trade(
    ticker: str | None,
    trade_id: str | None,
    yes_price: int | None,
    count: int | None,
    taker_side: str | None,
    *,
    ts: int | None,
    no_price: Any = _DEFAULT,
    seq: int | None = None,
) -> dict[str, Any]:
    """One trade row (without its row id and session, which :func:`with_tape` gives)."""
    if no_price is _DEFAULT:
        no_price = None if yes_price is None else 100 - yes_price
    return {
        "trade_id": trade_id,
        "market_ticker": ticker,
        "yes_price": yes_price,
        "no_price": no_price,
        "count": count,
        "taker_side": taker_side,
        "exchange_ts_ms": None if ts is None else ts - ts % 1000,
        "timestamp_ms": ts,
        "sequence_number": seq,
    }


def tape(*trades: dict[str, Any], session_id: int = 1) -> pa.Table:
    rows = [{"id": i + 1, "session_id": session_id, **row} for i, row in enumerate(trades)]
    return pa.Table.from_pylist(rows, schema=TRADE_SCHEMA)


def with_tape(raw: RawSession, *trades: dict[str, Any]) -> RawSession:
    """``raw`` with a trade tape of ``trades`` (none given: a tape that recorded none)."""
    return dataclasses.replace(raw, trades=tape(*trades, session_id=raw.session_id))
