"""The trade tape: each bad trade counted under its own repair and dropped, the rest kept.

A session's trades (``RawSession.trades``, :data:`~kalshi_pipeline.sources.trades.TRADE_SCHEMA`)
are checked once for the whole session (:func:`usable_trades`), so a session cleaned a
group of markets at a time drops exactly the trades the whole session does. Each trade
is checked in this order and counted under the first rule it breaks, naming the session,
its market, its trade id and its row id (and sequence number, where it has one):

=====================================  ===================================================
trade                                  repair (the trade is dropped)
=====================================  ===================================================
no ticker, or a market with no usable  ``trade_unknown_market``
book row in the session
no trade id                            ``trade_missing_id``
no receive time                        ``trade_missing_timestamp``
receive time outside the recorded      ``trade_timestamp_out_of_window`` (a step cannot
window (:func:`~.timestamps.           be told: a time in seconds would land on the
recorded_window`)                      first step)
``yes_price`` NULL or outside 1..99    ``trade_price_out_of_range``
``no_price`` NULL, or                  ``trade_prices_disagree``
``yes_price + no_price != 100``
``count`` NULL, <= 0 or above          ``trade_count_out_of_range``
``MAX_SIZE``
``taker_side`` not ``yes`` or ``no``   ``trade_unknown_taker_side``
a trade id seen before                 ``duplicate_trade_id``: the first received (by
                                       receive time, then sequence number, then row id)
                                       is kept, the others counted
=====================================  ===================================================

A trade whose price was not on the recorded book just before its step is kept and
flagged ``trade_off_book`` when the book is rebuilt (:mod:`kalshi_pipeline.market.trade_flow`).
Where the collector numbers trades from the book's counter, a trade's number was received
whether the trade is kept or not: the number of every trade of a known market received
inside the window fills its place in the session-wide sequence (:func:`trade_numbers`),
so it is no gap.
A market rejected by cleaning takes its trades with it (its rejection names it). None of
these repairs is a defect: a bad trade says nothing about the book.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import pyarrow as pa

from kalshi_pipeline.market.cleaning.columns import (
    EventColumns,
    among,
    filled,
    group_starts,
    market_codes,
    nulls,
    positions,
)
from kalshi_pipeline.market.cleaning.events import MAX_SIZE
from kalshi_pipeline.market.cleaning.outline import SessionOutline
from kalshi_pipeline.market.cleaning.report import IngestReport, RepairKind
from kalshi_pipeline.market.cleaning.trade_columns import NO_SEQUENCE
from kalshi_pipeline.sources.raw import LEVELS
from kalshi_pipeline.sources.trades import TAKER_SIDES


class SessionTrades(NamedTuple):
    """A session's tape after its checks: the trades kept, and the numbers received."""

    kept: pa.Table  # the usable trades, in receive order
    # Every trade of a known market received inside the window that carries a sequence
    # number, bad or repeated ones too: its number was received, so it is no gap.
    numbered: pa.Table


def usable_trades(
    table: pa.Table | None, outline: SessionOutline, report: IngestReport
) -> SessionTrades | None:
    """The trades of a session's tape that pass every check of the module's table, in
    receive order (receive time, sequence number, row id), and the numbers the tape
    received; None for a session without a tape. Each dropped trade is counted in
    ``report`` under the first rule it breaks."""
    if table is None:
        return None
    table = table.combine_chunks()
    valid = np.ones(table.num_rows, dtype=bool)
    placed = valid.copy()  # a known market and a receive time in the window
    for kind, bad, message in _row_checks(table, outline):
        if not bad.any():  # (most trades break no rule: nothing to count or drop)
            continue
        _count(report, kind, table, np.flatnonzero(valid & bad), message)
        valid &= ~bad
        if kind in _PLACING:
            placed &= ~bad
    numbered = _rows(table, placed & ~nulls(table.column("sequence_number")))
    return SessionTrades(_first_of_each_id(_rows(table, valid), report), numbered)


def _rows(table: pa.Table, keep: np.ndarray) -> pa.Table:
    """The rows of ``table`` where ``keep`` (the table itself when that is every row)."""
    return table if keep.all() else table.filter(pa.array(keep))


# The checks a trade must pass for its sequence number to be placed in its market's.
_PLACING = (
    RepairKind.TRADE_UNKNOWN_MARKET,
    RepairKind.TRADE_MISSING_TIMESTAMP,
    RepairKind.TRADE_TIMESTAMP_OUT_OF_WINDOW,
)


def _first_of_each_id(table: pa.Table, report: IngestReport) -> pa.Table:
    """``table`` in receive order with each trade id's first received kept, the repeats
    counted as ``duplicate_trade_id``."""
    if table.num_rows < 2:  # one trade is in order and repeats none
        return table
    order = np.lexsort(
        (
            filled(table.column("id"), NO_SEQUENCE).to_numpy(),
            filled(table.column("sequence_number"), NO_SEQUENCE).to_numpy(),
            table.column("timestamp_ms").to_numpy(),
        )
    )
    table = table.take(pa.array(order))
    ids = table.column("trade_id").to_numpy(zero_copy_only=False).astype(str)
    repeated = np.ones(len(ids), dtype=bool)
    repeated[np.unique(ids, return_index=True)[1]] = False
    _count(
        report,
        RepairKind.DUPLICATE_TRADE_ID,
        table,
        np.flatnonzero(repeated),
        "trade id seen before (a trade sent or stored twice): the first received kept",
    )
    return _rows(table, ~repeated)


def trade_numbers(
    numbered: pa.Table, tickers: list[str], ev: EventColumns, outline: SessionOutline
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(market, segment, number) of the ``numbered`` trades (:attr:`SessionTrades.numbered`)
    of the markets ``tickers`` (sorted), sorted for :meth:`~.sequence.SequenceTally.add`
    beside their markets' events ``ev`` (sorted by market, segment, number, with their
    segments).

    A trade's segment is its market's at its receive time: a restart begins a segment
    for everything its market receives from then on (:mod:`.restarts`). A number further
    from the session's median than the outlier rule allows says nothing and is left out.
    """
    if numbered.num_rows:
        numbered = numbered.filter(pa.array(among(numbered.column("market_ticker"), tickers)))
    if not numbered.num_rows:  # (most commits of the live path bring no trade)
        return np.zeros(0, np.int32), np.zeros(0, np.int32), np.zeros(0, np.int64)
    code = {ticker: i for i, ticker in enumerate(tickers)}
    seq = numbered.column("sequence_number").to_numpy()
    near = np.abs(seq.astype(np.float64) - outline.center) <= outline.reach
    rows = np.flatnonzero(near)
    market = market_codes(numbered.column("market_ticker"), code)[rows]
    ts, seq = numbered.column("timestamp_ms").to_numpy()[rows], seq[rows]
    segment = np.zeros(len(rows), dtype=np.int32)
    if len(rows) and ev.segment is not None and ev.segment.any():
        starts = np.flatnonzero(group_starts(ev.market, ev.segment))
        later = starts[ev.segment[starts] > 0]
        # Each restart at its receive time (the earliest of its segment's events), keyed
        # (market, time): one search counts the restarts of a trade's market before it.
        begun = np.minimum.reduceat(ev.ts, starts)[ev.segment[starts] > 0]
        low, stride = outline.window[0], outline.window[1] - outline.window[0] + 1
        keys = ev.market[later].astype(np.int64) * stride + (begun - low)
        wide = market.astype(np.int64) * stride
        segment = np.searchsorted(keys, wide + (ts - low), "right") - np.searchsorted(keys, wide)
    order = np.lexsort((seq, segment, market))
    return market[order], segment[order].astype(np.int32), seq[order]


def _row_checks(table: pa.Table, outline: SessionOutline):
    """(repair, rows breaking it, message) for each check of the module's table, in order."""

    def column(name: str, fill) -> np.ndarray:
        return filled(table.column(name), fill).to_numpy(zero_copy_only=False)

    known = among(table.column("market_ticker"), outline.tickers)
    ts = column("timestamp_ms", 0)
    yes, no = column("yes_price", 0).astype(np.int64), column("no_price", 0).astype(np.int64)
    count = column("count", 0)
    side = positions(table.column("taker_side"), TAKER_SIDES) >= 0
    start, end = outline.window
    return (
        (
            RepairKind.TRADE_UNKNOWN_MARKET,
            ~known,
            "trade of a market with no book in the session dropped",
        ),
        (
            RepairKind.TRADE_MISSING_ID,
            nulls(table.column("trade_id")),
            "trade with no trade id dropped",
        ),
        (
            RepairKind.TRADE_MISSING_TIMESTAMP,
            nulls(table.column("timestamp_ms")),
            "trade with no receive time dropped",
        ),
        (
            RepairKind.TRADE_TIMESTAMP_OUT_OF_WINDOW,
            ~nulls(table.column("timestamp_ms")) & ((ts < start) | (ts > end)),
            f"trade received outside the session's recorded window ({start}..{end} ms) dropped",
        ),
        (
            RepairKind.TRADE_PRICE_OUT_OF_RANGE,
            (yes < 1) | (yes > LEVELS),
            "trade with a YES price outside 1..99 (or none) dropped",
        ),
        (
            RepairKind.TRADE_PRICES_DISAGREE,
            nulls(table.column("no_price")) | (yes + no != 100),
            "trade whose YES and NO prices do not add up to 100 (or no NO price) dropped",
        ),
        (
            RepairKind.TRADE_COUNT_OUT_OF_RANGE,
            (count < 1) | (count > MAX_SIZE),
            f"trade with a count outside 1..{MAX_SIZE} (or none) dropped",
        ),
        (
            RepairKind.TRADE_UNKNOWN_TAKER_SIDE,
            ~side,
            "trade with a taker side other than yes/no dropped",
        ),
    )


def _count(report: IngestReport, kind: RepairKind, table: pa.Table, rows, message: str) -> None:
    """Count the trades at ``rows`` as ``kind``, naming each by market, trade id, sequence
    number and row id."""
    if not len(rows):
        return
    taken = pa.array(rows)
    report.repair(
        kind,
        table.column("market_ticker").take(taken).to_pylist(),
        table.column("sequence_number").take(taken).to_pylist(),
        message,
        row_ids=table.column("id").take(taken).to_pylist(),
        trade_ids=table.column("trade_id").take(taken).to_pylist(),
    )
