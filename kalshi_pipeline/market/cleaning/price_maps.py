"""Snapshots: their stored price maps become full 198-level bid books.

A snapshot's bid maps (``yes_bids``, ``no_bids``; price -> size) are its market's whole
book; a map that could not be decoded (``map_error``: not JSON, nested too deeply, not
UTF-8, a key or size that is not an integer; see
:func:`kalshi_pipeline.sources.price_map_text.decode_price_map`) rejects the market at that
snapshot, naming its row id and why. Levels with a
price outside 1..99 or a size that is negative, missing or above ``MAX_SIZE`` are dropped
(and counted); stored ask maps are never used, since asks are derived from the opposite
bids (``100 - p``), and are only checked against them (``stored_asks_disagree``,
``malformed_ask_map``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from kalshi_pipeline.market.cleaning.columns import (
    EventColumns,
    filled,
    int_column,
    market_codes,
    nulls,
    row_ids,
)
from kalshi_pipeline.market.cleaning.events import BOOK_WIDTH, MAX_SIZE, NO, YES
from kalshi_pipeline.market.cleaning.report import IngestReport, RepairKind
from kalshi_pipeline.sources.raw import LEVELS


def snapshot_events(
    table: pa.Table, code, names, report: IngestReport
) -> tuple[EventColumns, np.ndarray]:
    """The snapshots as events (in table order) and their books (int64[S, 198], row
    ``snapshot_index`` of each); levels that cannot be placed are dropped and counted."""
    market = market_codes(table.column("market_ticker"), code)
    seq = int_column(table, "sequence_number")
    ts = int_column(table, "timestamp_ms")
    ids = row_ids(table)
    failed = ~nulls(table.column("map_error"))  # a map that could not be decoded is null
    if failed.any():
        _count_failed_maps(table, failed, market, seq, ids, names, report)

    books = np.zeros((len(seq), BOOK_WIDTH), dtype=np.int64)
    for side, column in ((YES, "yes_bids"), (NO, "no_bids")):
        row, price, size = _explode_map(table.column(column))
        valid = _valid_levels(row, price, size, market, seq, ids, names, report)
        books[row[valid], side * LEVELS + price[valid] - 1] = size[valid]
    _check_stored_asks(table, books, failed, market, seq, names, report)
    return _snapshot_columns(market, seq, ts, ids, first=0), books


@dataclass(frozen=True)
class KnownBooks:
    """Snapshots whose books are known, not stored as maps: the live path's markets as its
    last commit left them (:mod:`~kalshi_pipeline.market.streaming`), each numbered and
    timed as its last event, with no row id (-1). They are events of cleaning like any
    snapshot, but have nothing to decode or check: their books were made by cleaning."""

    tickers: list[str]
    sequence_number: np.ndarray  # int64
    timestamp_ms: np.ndarray  # int64
    books: np.ndarray  # int64[n, 198]


def known_book_events(known: KnownBooks, code, first: int) -> tuple[EventColumns, np.ndarray]:
    """``known`` as snapshot events, their books numbered from ``first`` on (placed
    after the ``first`` books of the stored snapshots), and those books."""
    market = np.array([code[ticker] for ticker in known.tickers], np.int32)
    ids = np.full(len(market), -1, np.int64)
    ts, seq = known.timestamp_ms, known.sequence_number
    return _snapshot_columns(market, seq, ts, ids, first=first), known.books


def _snapshot_columns(market, seq, ts, ids, first: int) -> EventColumns:
    """Event columns of snapshots whose books are rows ``first`` on of their books."""
    n = len(seq)
    return EventColumns(
        market=market,
        seq=seq,
        ts=ts,
        is_snapshot=np.ones(n, bool),
        level=np.full(n, -1, np.int16),
        size=np.zeros(n, np.int64),
        snapshot_index=np.arange(first, first + n, dtype=np.int64),
        row_id=ids,
        valid=np.ones(n, bool),
    )


def _count_failed_maps(table, failed, market, seq, ids, names, report) -> None:
    """The snapshots with a map that could not be decoded (``failed``): without its bids
    the book is unknown, and the market is rejected; a stored ask map is never used, so a
    bad one is only counted."""
    bad_bids = failed & (nulls(table.column("yes_bids")) | nulls(table.column("no_bids")))
    for row in np.flatnonzero(bad_bids):
        message = f"malformed price map: {table.column('map_error')[row].as_py()}"
        report.reject(names[market[row]], seq[row], message, row_id=ids[row])
    if len(bad_asks := np.flatnonzero(failed & ~bad_bids)):
        report.repair(
            RepairKind.MALFORMED_ASK_MAP,
            names[market[bad_asks]],
            seq[bad_asks],
            "malformed stored ask map ignored (asks are derived from the bids)",
        )


def _valid_levels(row, price, size, market, seq, ids, names, report) -> np.ndarray:
    keep = np.ones(len(row), dtype=bool)
    for kind, bad, message in (
        (
            RepairKind.PRICE_OUT_OF_RANGE,
            (price < 1) | (price > LEVELS),
            "snapshot level with price outside 1..99 dropped",
        ),
        (
            RepairKind.NEGATIVE_SIZE,
            size < 0,
            "snapshot level with a negative or missing size dropped",
        ),
        (
            RepairKind.SIZE_OUT_OF_RANGE,
            size > MAX_SIZE,
            f"snapshot level with a size above {MAX_SIZE} dropped",
        ),
    ):
        if bad.any():  # (most maps hold no bad level: nothing to count or drop)
            out = np.flatnonzero(keep & bad)
            report.repair(kind, names[market[row[out]]], seq[row[out]], message, ids[row[out]])
            keep &= ~bad
    return keep


def _check_stored_asks(table, books, failed, market, seq, names, report) -> None:
    """Count snapshots whose stored ask maps are not the ones derived from the bids (but
    not those with a map that ``failed`` to decode: counted as such).

    A stored ask at price ``p`` is the opposite side's bid at ``100 - p``: both ask maps
    are placed where those bids are in a book, and compared with the bids' book at once."""
    stored = np.zeros_like(books)
    disagree = np.zeros(len(seq), dtype=bool)
    for column, opposite in (("yes_asks", NO), ("no_asks", YES)):
        row, price, size = _explode_map(table.column(column))
        ok = (price >= 1) & (price <= LEVELS)
        stored[row[ok], (opposite + 1) * LEVELS - price[ok]] = size[ok]
        disagree[row[~ok]] = True
    disagree |= (stored != books).any(axis=1)
    disagree &= ~failed
    if len(rows := np.flatnonzero(disagree)):
        report.repair(
            RepairKind.STORED_ASKS_DISAGREE,
            names[market[rows]],
            seq[rows],
            "stored ask map ignored: asks are derived from the opposite bids (100 - p)",
        )


def _explode_map(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, price, size) for every entry of a map<int32, int64> column (a NULL size
    reads -1: missing)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    offsets = array.offsets.to_numpy()
    start, end = offsets[0], offsets[-1]
    if end <= start:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    keys = array.keys.to_numpy(zero_copy_only=False)[start:end]
    items = filled(array.items, -1).to_numpy(zero_copy_only=False)[start:end]
    row = np.arange(len(array)).repeat(offsets[1:] - offsets[:-1])
    return row, keys.astype(np.int64), items.astype(np.int64)
