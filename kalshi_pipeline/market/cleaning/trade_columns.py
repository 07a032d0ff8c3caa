"""CleanTrades: a session's usable trades as columns, travelling with its cleaned events.

The trades that pass cleaning (:func:`~.trades.usable_trades`) go with the events of their
markets (:class:`~.events.CleanEvents`): split into the same groups of markets, saved with
them, renumbered with them when only the accepted markets are kept.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from functools import cache

import numpy as np
import pyarrow as pa

from kalshi_pipeline.market.cleaning.columns import among, filled, market_codes
from kalshi_pipeline.sources.trades import empty_trades

# A trade without a sequence number sorts after those with one (and is named without).
NO_SEQUENCE = np.iinfo(np.int64).max


@dataclass(frozen=True, kw_only=True, eq=False)
class CleanTrades:
    """The usable trades of some markets, one column per field, sorted by (market,
    receive time, sequence number, row id).

    ``market`` indexes the tickers of the events they travel with
    (:class:`~.events.CleanEvents`); ``sequence_number`` is :data:`NO_SEQUENCE` where the
    collector gave none; ``taker_yes`` is true where the taker bought YES (lifting the YES
    ask, a NO bid at ``100 - yes_price``), false where it bought NO (hitting the YES bid
    at ``yes_price``).
    """

    market: np.ndarray  # int32
    trade_id: np.ndarray  # str
    timestamp_ms: np.ndarray  # int64
    sequence_number: np.ndarray  # int64
    yes_price: np.ndarray  # int16, 1..99
    count: np.ndarray  # int64, 1..MAX_SIZE
    taker_yes: np.ndarray  # bool
    row_id: np.ndarray  # int64

    def __len__(self) -> int:
        return len(self.market)

    def take(self, rows, market: np.ndarray | None = None) -> CleanTrades:
        """The trades at ``rows`` (an index array or a slice), every column alike, with
        ``market`` (renumbered codes) if given."""
        taken = {f.name: getattr(self, f.name)[rows] for f in fields(self)}
        if market is not None:
            taken["market"] = market
        return CleanTrades(**taken)

    def arrays(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def named_sequences(self, rows: np.ndarray) -> list[int | None]:
        """The sequence numbers of the trades at ``rows`` as a report names them (None
        where there is none)."""
        return [None if s == NO_SEQUENCE else int(s) for s in self.sequence_number[rows]]


def trade_columns(table: pa.Table, tickers: list[str]) -> CleanTrades:
    """The usable trades (from :func:`~.trades.usable_trades`) of the markets ``tickers``
    (sorted), as columns sorted by (market, receive time, sequence number, row id)."""
    if table.num_rows:
        table = table.filter(pa.array(among(table.column("market_ticker"), tickers)))
    return _sorted_columns(table, tickers) if table.num_rows else no_trades()


def _sorted_columns(table: pa.Table, tickers: list[str]) -> CleanTrades:
    code = {ticker: i for i, ticker in enumerate(tickers)}
    market = market_codes(table.column("market_ticker"), code)
    ts = table.column("timestamp_ms").to_numpy()
    seq = filled(table.column("sequence_number"), NO_SEQUENCE).to_numpy()
    row_id = filled(table.column("id"), NO_SEQUENCE).to_numpy()
    order = np.lexsort((row_id, seq, ts, market))
    taker = table.column("taker_side").to_numpy(zero_copy_only=False)
    return CleanTrades(
        market=market[order].astype(np.int32),
        trade_id=table.column("trade_id").to_numpy(zero_copy_only=False).astype(str)[order],
        timestamp_ms=ts[order].astype(np.int64),
        sequence_number=seq[order].astype(np.int64),
        yes_price=table.column("yes_price").to_numpy()[order].astype(np.int16),
        count=table.column("count").to_numpy()[order].astype(np.int64),
        taker_yes=(taker == "yes")[order],
        row_id=row_id[order].astype(np.int64),
    )


@cache
def no_trades() -> CleanTrades:
    """A tape with no usable trade (built once: its columns are empty, so there is nothing
    in them to change; most commits of the live path carry no trade)."""
    return _sorted_columns(empty_trades(), [])
