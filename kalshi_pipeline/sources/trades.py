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

Reading the collector's rows (:func:`collector_trade_table`) never fails a session:

* a price or a count is read from its integer column (``yes_price``, ``no_price``,
  ``count``) when that holds a value, else from its decimal string (``yes_price_dollars``,
  ``no_price_dollars``, ``count_fp``): ``"0.5600"`` is 56 cents, ``"10.00"`` 10 contracts;
* a string that is not a plain decimal number (``"abc"``, ``" 0.56"``, ``"1e-2"``,
  ``"NaN"``), a price that is not a whole cent (``"0.565"``) or a count that is not a whole
  contract (``"2.50"``) is NULL, and so is an integer column holding anything but an
  integer (:mod:`kalshi_pipeline.sources.raw_values`, which also clamps integers too large
  for their column): cleaning counts and drops those trades, the others are kept;
* ``ts`` (the exchange's whole seconds, as Kalshi sends it) becomes ``exchange_ts_ms``
  (times 1000); a ``ts`` that is not an integer is NULL.

A session without a trade tape (a collector that does not record the channel) has
``trades=None``; a session whose tape recorded no trade has an empty table. The two are
different facts and stay apart.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from decimal import Context, Decimal

import pyarrow as pa

from kalshi_pipeline.sources.raw_values import (
    INT32_MAX,
    INT64_MAX,
    MAX_DIGITS,
    clamp,
    column_array,
    integer,
)

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


_NO_TRADES = TRADE_SCHEMA.empty_table()


def empty_trades() -> pa.Table:
    """A trade tape that recorded no trade (one table, built once: tables are immutable,
    and the live path asks for one on most commits)."""
    return _NO_TRADES


# The columns of the collector's table that a trade is read from, in the order
# :func:`collector_trade_table` takes them (kalshi_pipeline/sources/collector_schema.sql).
COLLECTOR_TRADE_COLUMNS = (
    "id",
    "session_id",
    "trade_id",
    "market_ticker",
    "yes_price",
    "no_price",
    "count",
    "yes_price_dollars",
    "no_price_dollars",
    "count_fp",
    "taker_side",
    "ts",
    "timestamp_ms",
    "sequence_number",
)
CENTS_PER_DOLLAR = 100
# A plain decimal number: digits, optionally a point and more digits, optionally a minus.
# Bounded, so that a string of a million digits is refused before it is converted.
_DECIMAL_TEXT = re.compile(rf"-?[0-9]{{1,{MAX_DIGITS}}}(\.[0-9]{{1,{MAX_DIGITS}}})?")
# Exact for every string _DECIMAL_TEXT accepts (the default context rounds to 28 digits).
_EXACT = Context(prec=4 * MAX_DIGITS)


def decimal_units(text: object, scale: int, limit: int) -> int | None:
    """A decimal string times ``scale`` as a whole number (clamped to +-``limit``), or
    None: ``decimal_units("0.5600", 100, ...)`` is 56 (cents), ``decimal_units("10.00", 1,
    ...)`` is 10 (contracts). Anything that is not a plain decimal string, or does not
    come to a whole number of units (``"0.565"`` dollars, ``"2.50"`` contracts), is None."""
    if not isinstance(text, str) or not _DECIMAL_TEXT.fullmatch(text):
        return None
    value = _EXACT.multiply(Decimal(text), Decimal(scale))
    if value != value.to_integral_value():
        return None
    return clamp(int(value), limit)


def exchange_ms(ts: object) -> int | None:
    """Kalshi's ``ts`` (whole seconds since the epoch) in milliseconds; None if it is not
    an integer."""
    seconds = integer(ts, INT64_MAX)
    return None if seconds is None else clamp(seconds * 1000, INT64_MAX)


def trade_table(rows: Sequence[tuple]) -> pa.Table:
    """The trades table from rows of :data:`TRADE_SCHEMA`'s columns, in order. As
    :func:`~kalshi_pipeline.sources.raw.delta_table` does, a value that does not fit its
    column never fails the session: it is clamped or NULL
    (:func:`~kalshi_pipeline.sources.raw_values.column_array`)."""
    columns = list(zip(*rows, strict=True)) or [()] * len(TRADE_SCHEMA)
    arrays = [column_array(list(c), f.type) for c, f in zip(columns, TRADE_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=TRADE_SCHEMA)


def collector_trade_table(rows: Sequence[tuple]) -> pa.Table:
    """The trades table from rows of the collector's table, each holding
    :data:`COLLECTOR_TRADE_COLUMNS` in order, both message formats read into cents and
    contracts (the module docstring says how, and what becomes NULL)."""
    return trade_table([_trade_row(row) for row in rows])


def _trade_row(row: tuple) -> tuple:
    (row_id, session_id, trade_id, ticker, yes, no, count, yes_dollars, no_dollars, count_fp,
     taker_side, ts, timestamp_ms, sequence_number) = row  # fmt: skip
    return (
        row_id,
        session_id,
        trade_id,
        ticker,
        _price_or_count(yes, yes_dollars, CENTS_PER_DOLLAR, INT32_MAX),
        _price_or_count(no, no_dollars, CENTS_PER_DOLLAR, INT32_MAX),
        _price_or_count(count, count_fp, 1, INT64_MAX),
        taker_side,
        exchange_ms(ts),
        timestamp_ms,
        sequence_number,
    )


def _price_or_count(value: object, text: object, scale: int, limit: int) -> object:
    """The integer column's value when it holds one (checked by ``column_array``), else
    the decimal string's."""
    return value if value is not None else decimal_units(text, scale, limit)
