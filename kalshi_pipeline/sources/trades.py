"""The public trade tape: Kalshi's ``trade`` channel as the collector stores it.

Kalshi publishes every trade of a market it is subscribed to: ``trade_id``,
``market_ticker``, ``yes_price``, ``no_price`` (cents), ``count`` (contracts),
``taker_side`` (``"yes"``: the taker bought YES, lifting a YES ask, which is a NO bid at
``100 - yes_price``; ``"no"``: the taker bought NO, hitting the YES bid at ``yes_price``)
and ``ts`` (the exchange's time, seconds). Newer messages carry the price as
``yes_price_dollars``/``no_price_dollars`` and the count as ``count_fp``, decimal strings.

``RawSession.trades`` mirrors the collector's ``rl_orderbook_trades`` table
(:data:`TRADE_SCHEMA`), one row per trade, in storage order (by ``id``), with both message
formats already read into integer cents and contracts:

=================  =========  =========================================================
column             type       meaning
=================  =========  =========================================================
id                 int64      the collector's row id (storage order)
session_id         int64
trade_id           string     Kalshi's trade id (unique per trade)
market_ticker      string
yes_price          int32      cents, 1..99 when valid (NULL: not readable)
no_price           int32      cents; ``yes_price + no_price == 100`` when valid
count              int64      contracts, > 0 when valid
taker_side         string     ``"yes"`` or ``"no"`` (:data:`TAKER_SIDES`)
exchange_ts_ms     int64      the exchange's time, ms since the epoch (NULL if absent)
timestamp_ms       int64      the collector's receive time, ms since the epoch
sequence_number    int64      the session-wide sequence number, where the collector
                              gives trades one from the same counter as the book
                              (NULL where it does not)
=================  =========  =========================================================

As with the book tables, the raw table keeps what was stored; cleaning
(:mod:`kalshi_pipeline.market.cleaning`) counts and drops the trades that cannot be used.

A session without a trade tape (a collector that does not record the channel) has
``trades=None``; a session whose tape recorded no trade has an empty table. The two are
different facts and stay apart.
"""

from __future__ import annotations

import pyarrow as pa

TRADE_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("session_id", pa.int64()),
        ("trade_id", pa.string()),
        ("market_ticker", pa.string()),
        ("yes_price", pa.int32()),
        ("no_price", pa.int32()),
        ("count", pa.int64()),
        ("taker_side", pa.string()),
        ("exchange_ts_ms", pa.int64()),
        ("timestamp_ms", pa.int64()),
        ("sequence_number", pa.int64()),
    ]
)
# The taker sides Kalshi writes, spelled exactly so.
TAKER_SIDES = ("yes", "no")
# The collector's table of the trade channel (kalshi_pipeline/sources/collector_schema.sql).
COLLECTOR_TRADES_TABLE = "rl_orderbook_trades"


def empty_trades() -> pa.Table:
    """A trade tape that recorded no trade."""
    return TRADE_SCHEMA.empty_table()
