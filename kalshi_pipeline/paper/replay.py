"""A recorded session's rows as the collector committed them: one receive millisecond at
a time, for paper trading after the fact.

The collector commits each receive millisecond's rows together (docs/paper-trading.md),
so a stored session replays as its milliseconds in order, each with its snapshots,
deltas and trades in stored order. Rows without a receive time, or with one outside the
session's recorded window (a clock or unit fault: cleaning replaces it), go with the
millisecond of the row stored before them (their own table's), as the live writer places
them: a collector stores a row when it receives it, whatever time it wrote.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from kalshi_pipeline.market.cleaning.timestamps import recorded_window
from kalshi_pipeline.sources.raw import RawSession


def by_millisecond(raw: RawSession) -> Iterator[tuple[pa.Table, pa.Table, pa.Table | None]]:
    """(snapshots, deltas, trades) of each receive millisecond of ``raw``, in order
    (``trades`` None for a session without a trade tape)."""
    tables = [raw.snapshots, raw.deltas] + ([raw.trades] if raw.trades is not None else [])
    window = recorded_window(raw.info)
    keyed = [_sorted_by_time(table, window) for table in tables]
    times = np.unique(np.concatenate([ms for _, ms in keyed])) if keyed else []
    bounds = [np.searchsorted(ms, times, side="right") for _, ms in keyed]
    starts = [0] * len(keyed)
    for i in range(len(times)):
        parts = []
        for k, (table, _) in enumerate(keyed):
            stop = int(bounds[k][i])
            parts.append(table.slice(starts[k], stop - starts[k]))
            starts[k] = stop
        yield parts[0], parts[1], (parts[2] if raw.trades is not None else None)


def _sorted_by_time(table: pa.Table, window: tuple[int, int]) -> tuple[pa.Table, np.ndarray]:
    """``table`` stably sorted by receive time (a row without one in ``window`` takes the
    time of the row before it), and those times."""
    ms = np.asarray(table.column("timestamp_ms").to_numpy(zero_copy_only=False), np.float64)
    unusable = np.isnan(ms) | (ms < window[0]) | (ms > window[1])
    last = np.maximum.accumulate(np.where(unusable, -1, np.arange(len(ms))))
    filled = np.where(last >= 0, ms[np.maximum(last, 0)], 0).astype(np.int64)
    order = np.argsort(filled, kind="stable")
    return table.take(pa.array(order)), filled[order]
