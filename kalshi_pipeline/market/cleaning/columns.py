"""Whole-column steps every part of cleaning shares: row ids, market codes, runs of equal
keys and taking rows of the event columns.

Cleaning passes a session's events between its stages as a dict of equal-length numpy
columns by name (``market``, ``seq``, ``ts``, ``is_snapshot``, ``level``, ``size``,
``snapshot_index``, ``row_id``, ``valid``, later ``segment``); these helpers read them
from Arrow tables and select their rows.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc


def take_rows(ev: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    """The event columns at ``rows`` (indices or a mask), every column alike."""
    return {name: values[rows] for name, values in ev.items()}


def int_column(table: pa.Table, column: str) -> np.ndarray:
    """An integer column (no nulls) of ``table`` as int64."""
    return table.column(column).to_numpy().astype(np.int64, copy=False)


def row_ids(table: pa.Table) -> np.ndarray:
    """The collector's row ids (storage order); a row without one counts as stored last."""
    return table.column("id").fill_null(np.iinfo(np.int64).max).to_numpy().astype(np.int64)


def market_codes(column: pa.Array | pa.ChunkedArray, code: dict[str, int]) -> np.ndarray:
    """Ticker strings -> market codes, through Arrow's dictionary encoding."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    mapping = np.array([code[t] for t in encoded.dictionary.to_pylist()] or [0], np.int32)
    return mapping[encoded.indices.to_numpy(zero_copy_only=False)]


def group_starts(*keys: np.ndarray) -> np.ndarray:
    """True where a run of equal keys starts (the arrays are sorted by those keys)."""
    start = np.ones(len(keys[0]), dtype=bool)
    if len(start):
        start[1:] = np.any([k[1:] != k[:-1] for k in keys], axis=0)
    return start
