"""The simulated public trade tape: the markets' trades as the collector's trades table.

:func:`trades_table` writes the trades of a session's markets
(:class:`~kalshi_pipeline.sources.simulated_market.MarketTrades`) in
:data:`~kalshi_pipeline.sources.trades.TRADE_SCHEMA`, numbered by the session's one
sequence counter (:mod:`~kalshi_pipeline.sources.simulated_session` orders a trade before
the deltas of its millisecond, as Kalshi sends them). The rules of the tape:

* ``timestamp_ms`` is the trade's book change's receive time: the delta that takes its
  count from the traded level has the same millisecond.
* ``exchange_ts_ms`` is Kalshi's ``ts``, whole seconds: the receive time cut to its second.
* ``trade_id`` is a UUID, as Kalshi's, made from the session and the sequence number, so
  the same session always has the same ids and no two trades of a store share one.
* ``yes_price + no_price == 100``; ``taker_side`` is ``"yes"`` when the taker bought YES.
"""

from __future__ import annotations

import uuid

import numpy as np
import pyarrow as pa

from kalshi_pipeline.sources.trades import TRADE_SCHEMA

# The simulator's namespace for trade ids (a fixed UUID: ids are the same on every run).
_TRADE_ID_NAMESPACE = uuid.UUID("6b616c73-6869-2d73-696d-2d7472616465")


def trade_id(session_id: int, sequence_number: int) -> str:
    """The id of the trade numbered ``sequence_number`` in session ``session_id``."""
    return str(uuid.uuid5(_TRADE_ID_NAMESPACE, f"{session_id}:{sequence_number}"))


def trades_table(
    session_id: int,
    start_ms: int,
    ticker: np.ndarray,
    offset_ms: np.ndarray,
    sequence: np.ndarray,
    yes_price: np.ndarray,
    count: np.ndarray,
    taker_yes: np.ndarray,
) -> pa.Table:
    """The trades (one entry per trade in each column, any order) in sequence order."""
    order = np.argsort(sequence, kind="stable")
    sequence, received = sequence[order], start_ms + offset_ms[order]
    yes = yes_price[order].astype(np.int32)
    return pa.table(
        {
            "id": np.arange(1, len(order) + 1, dtype=np.int64),
            "session_id": np.full(len(order), session_id, dtype=np.int64),
            "trade_id": [trade_id(session_id, int(s)) for s in sequence],
            "market_ticker": pa.array(ticker[order].tolist(), pa.string()),
            "yes_price": yes,
            "no_price": (100 - yes).astype(np.int32),
            "count": count[order].astype(np.int64),
            "taker_side": np.where(taker_yes[order], "yes", "no").astype(object),
            "exchange_ts_ms": received // 1000 * 1000,
            "timestamp_ms": received,
            "sequence_number": sequence,
        },
        schema=TRADE_SCHEMA,
    )
