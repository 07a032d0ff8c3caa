"""Whole-column steps every part of cleaning shares: row ids, market codes, runs of equal
keys and taking rows of the event columns.

Cleaning passes a session's events between its stages as :class:`EventColumns`, one
numpy column per field; these helpers read columns from Arrow tables and find runs in
them.
"""

from __future__ import annotations

from bisect import bisect_left
from dataclasses import dataclass, fields

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


@dataclass(frozen=True, kw_only=True, eq=False)
class EventColumns:
    """The events of some markets as they go through cleaning, one column per field.

    ``market`` indexes the tickers being cleaned; ``level`` and ``size`` are a delta's bid
    level (``side * 99 + price - 1``, -1 for a snapshot) and new size;
    ``snapshot_index`` is a snapshot's row in its books (-1 for a delta); ``row_id`` the
    collector's row id (storage order); ``valid`` false for deltas dropped as repairs,
    which still count as received for the sequence checks; ``segment`` the restart
    segment, once known (:func:`~.restarts.segments`).
    """

    market: np.ndarray
    seq: np.ndarray
    ts: np.ndarray
    is_snapshot: np.ndarray
    level: np.ndarray
    size: np.ndarray
    snapshot_index: np.ndarray
    row_id: np.ndarray
    valid: np.ndarray
    segment: np.ndarray | None = None

    def take(self, rows: np.ndarray) -> EventColumns:
        """The events at ``rows``, every column alike."""
        taken = {name: column[rows] for name, column in self._columns().items()}
        return EventColumns(**taken)

    @classmethod
    def concatenate(cls, first: EventColumns, second: EventColumns) -> EventColumns:
        """``first``'s events, then ``second``'s (neither has a segment yet)."""
        second_columns = second._columns()
        joined = {
            name: np.concatenate([column, second_columns[name]])
            for name, column in first._columns().items()
        }
        return cls(**joined)

    def with_segment(self, segment: np.ndarray) -> EventColumns:
        return EventColumns(**(self._columns() | {"segment": segment}))

    def _columns(self) -> dict[str, np.ndarray]:
        """Every column this has (``segment`` once known), by name."""
        columns = {name: getattr(self, name) for name in _EVENT_FIELDS}
        return columns if self.segment is None else columns | {"segment": self.segment}


# The columns every EventColumns has (``segment`` comes later), read without
# ``dataclasses.fields`` on every call.
_EVENT_FIELDS = tuple(f.name for f in fields(EventColumns) if f.name != "segment")


def int_column(table: pa.Table, column: str) -> np.ndarray:
    """An integer column (no nulls) of ``table`` as int64."""
    return table.column(column).to_numpy().astype(np.int64, copy=False)


def filled(column: pa.Array | pa.ChunkedArray, value) -> pa.Array | pa.ChunkedArray:
    """``column`` with its nulls read as ``value`` (the column itself when it has none:
    a call into Arrow costs more than a commit's few rows)."""
    return column.fill_null(value) if column.null_count else column


def nulls(column: pa.Array | pa.ChunkedArray) -> np.ndarray:
    """Where ``column`` is null (read without a call into Arrow when all or none are)."""
    if column.null_count in (0, len(column)):
        return np.full(len(column), bool(column.null_count), dtype=bool)
    return column.is_null().to_numpy(zero_copy_only=False)


def row_ids(table: pa.Table) -> np.ndarray:
    """The collector's row ids (storage order); a row without one counts as stored last."""
    return filled(table.column("id"), _STORED_LAST).to_numpy().astype(np.int64)


_STORED_LAST = np.iinfo(np.int64).max  # the row id of a row without one


# Up to this many rows, tickers are looked up one by one: cheaper than encoding them.
_FEW_ROWS = 32


def market_codes(column: pa.Array | pa.ChunkedArray, code: dict[str, int]) -> np.ndarray:
    """Ticker strings -> market codes, through Arrow's dictionary encoding (a few rows:
    each looked up)."""
    if len(column) <= _FEW_ROWS and not column.null_count:
        return np.array([code[t] for t in column.to_pylist()], np.int32)
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    mapping = np.array([code[t] for t in encoded.dictionary.to_pylist()] or [0], np.int32)
    return mapping[encoded.indices.to_numpy(zero_copy_only=False)]


def among(column: pa.Array | pa.ChunkedArray, tickers: list[str]) -> np.ndarray:
    """Where ``column``'s ticker is one of ``tickers`` (sorted); a null one is none of
    them. A few rows are each searched for in the list (cheaper than handing a session's
    tickers to Arrow)."""
    if len(column) > _FEW_ROWS:
        found = pc.is_in(column, value_set=pa.array(tickers, pa.string()))
        return filled(found, False).to_numpy(zero_copy_only=False)
    return np.array([_holds(tickers, t) for t in column.to_pylist()], dtype=bool)


def positions(column: pa.Array | pa.ChunkedArray, values: tuple[str, ...]) -> np.ndarray:
    """Each row's position in ``values`` (exact spelling), -1 for any other or none (a few
    rows: each looked up, cheaper than a call into Arrow)."""
    if len(column) > _FEW_ROWS:
        found = pc.index_in(column, value_set=pa.array(values, pa.string()))
        return filled(found, -1).to_numpy().astype(np.int64)
    at = {value: i for i, value in enumerate(values)}
    return np.array([at.get(value, -1) for value in column.to_pylist()], np.int64)


def market_names(tickers: list[str], codes: np.ndarray) -> np.ndarray:
    """The tickers of the market ``codes`` (positions in ``tickers``), for a report: the
    session's tickers are not copied into an array when there is no code to name."""
    return np.array(tickers, dtype=object)[codes] if len(codes) else np.zeros(0, object)


def _holds(tickers: list[str], ticker: str | None) -> bool:
    at = bisect_left(tickers, ticker) if ticker is not None else len(tickers)
    return at < len(tickers) and tickers[at] == ticker


def group_starts(*keys: np.ndarray) -> np.ndarray:
    """True where a run of equal keys starts (the arrays are sorted by those keys)."""
    start = np.zeros(len(keys[0]), dtype=bool)
    if len(start):
        start[0] = True
        for key in keys:
            start[1:] |= key[1:] != key[:-1]
    return start
