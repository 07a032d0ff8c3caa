"""The first pass over a session: which rows are usable, its markets and its outliers.

A row with no ticker, sequence number or time has no place in any book
(:func:`usable_rows`); a sequence number far from the session's median is an outlier,
dropped before it can make the whole sequence look gapped (:func:`drop_outliers`).
:func:`outline_session` reads only the narrow columns, a batch at a time, for what
cleaning any group of the session's markets needs of the whole session
(:class:`SessionOutline`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kalshi_pipeline.market.cleaning.columns import int_column, market_codes
from kalshi_pipeline.market.cleaning.report import IngestReport, RepairKind, log
from kalshi_pipeline.market.cleaning.timestamps import inverted_window, recorded_window
from kalshi_pipeline.market.spill import GrowingArray, median
from kalshi_pipeline.sources.raw import TABLES, SessionBatches

# A sequence number further than this from the session's median (or 100 per row, if that
# is more) is an outlier: recorded sessions span at most a few times their row count.
MIN_OUTLIER_DISTANCE = 1_000_000
OUTLIER_DISTANCE_PER_ROW = 100

# The columns the first pass over a session reads (:func:`outline_session`).
OUTLINE_COLUMNS = ("id", "market_ticker", "timestamp_ms", "sequence_number")


@dataclass(frozen=True, kw_only=True, eq=False)
class SessionOutline:
    """What cleaning a group of a session's markets needs to know of the whole session.

    ``tickers``: every market with a usable row (sorted), ``rows`` their usable rows;
    ``center`` and ``reach``: a sequence number further than ``reach`` from ``center``
    (the median of every usable row's number) is an outlier; ``window``: the recorded
    window (:func:`recorded_window`).
    """

    session_id: int
    window: tuple[int, int]
    tickers: list[str]
    rows: np.ndarray
    center: float
    reach: float

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SessionOutline):
            return NotImplemented
        return self.to_json() == other.to_json()

    def to_json(self) -> dict:
        return {
            "session_id": self.session_id,
            "window": list(self.window),
            "tickers": list(self.tickers),
            "rows": self.rows.tolist(),
            "center": self.center,
            "reach": self.reach,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        start, end = data["window"]
        return cls(
            session_id=data["session_id"],
            window=(start, end),
            tickers=list(data["tickers"]),
            rows=np.array(data["rows"], dtype=np.int64),
            center=data["center"],
            reach=data["reach"],
        )

    def groups(self, max_rows: int) -> list[list[str]]:
        """Consecutive groups of whole markets of at most ``max_rows`` rows each (a
        bigger market is a group of its own)."""
        groups, group, size = [], [], 0
        for ticker, rows in zip(self.tickers, self.rows.tolist(), strict=True):
            if group and size + rows > max_rows:
                groups.append(group)
                group, size = [], 0
            group.append(ticker)
            size += rows
        return groups + [group] if group else groups


def outline_session(
    session: SessionBatches, report: IngestReport, spill: Path | None = None
) -> SessionOutline:
    """The first pass over a session: its :class:`SessionOutline`, from the narrow
    ``OUTLINE_COLUMNS`` read a batch at a time. The sequence numbers (for their median)
    are kept in memory, or in a file in ``spill``. Rows with no ticker, sequence number
    or time are counted here, and dropped: no later pass reads them."""
    numbers = GrowingArray(np.int64, spill / "outline-numbers" if spill else None)
    rows: Counter = Counter()
    for table, what in zip(TABLES, ("snapshot", "delta"), strict=True):
        for batch in session.batches(table, OUTLINE_COLUMNS):
            usable = usable_rows(pa.Table.from_batches([batch]), what, report)
            numbers.append(int_column(usable, "sequence_number"))
            counts = pc.value_counts(usable.column("market_ticker").combine_chunks())
            values, found = counts.field("values"), counts.field("counts")
            rows.update(dict(zip(values.to_pylist(), found.to_pylist(), strict=True)))
    tickers = sorted(rows)
    if not tickers:
        report.empty = not report.repairs
        log.warning("session %d has no usable rows: no snapshots and no deltas", report.session_id)
    report.inverted_window = inverted_window(session.info)
    if report.inverted_window is not None:
        log.error("session %d: %s", report.session_id, report.inverted_window)
    all_numbers = numbers.array()
    return SessionOutline(
        session_id=session.info.session_id,
        window=recorded_window(session.info),
        tickers=tickers,
        rows=np.array([rows[t] for t in tickers], dtype=np.int64),
        center=median(all_numbers) if len(all_numbers) else 0.0,
        reach=_outlier_distance(len(all_numbers)),
    )


_KEY_FIELDS = (
    ("market_ticker", RepairKind.MISSING_MARKET_TICKER),
    ("sequence_number", RepairKind.MISSING_SEQUENCE_NUMBER),
    ("timestamp_ms", RepairKind.MISSING_TIMESTAMP),
)


def usable_rows(table: pa.Table, what: str = "", report: IngestReport | None = None) -> pa.Table:
    """Drop rows with no ticker, sequence number or timestamp (a database without the
    collector's NOT NULL constraints): such a row has no place in any book. They are
    counted in ``report``, if given (the first pass over a session counts them)."""
    if not any(table.column(column).null_count for column, _ in _KEY_FIELDS):
        return table
    missing = np.zeros(table.num_rows, dtype=bool)
    for column, kind in _KEY_FIELDS:
        null = table.column(column).is_null().to_numpy(zero_copy_only=False) & ~missing
        rows = np.flatnonzero(null)
        if len(rows) and report is not None:
            report.repair(
                kind,
                table.column("market_ticker").take(rows).to_pylist(),
                table.column("sequence_number").take(rows).to_pylist(),
                f"{what} row with no {column.replace('_', ' ')} dropped",
                row_ids=table.column("id").take(rows).to_pylist(),
            )
        missing |= null
    return table.filter(pa.array(~missing)) if missing.any() else table


def _outlier_distance(rows: int) -> float:
    return float(max(OUTLIER_DISTANCE_PER_ROW * rows, MIN_OUTLIER_DISTANCE))


def drop_outliers(table, center: float, reach: float, code, names, report) -> pa.Table:
    """Drop rows whose sequence number is far outside the session's (one bad row must not
    make the whole sequence look gapped or out of order)."""
    seq = int_column(table, "sequence_number")
    # In float: the distance of an int64 extreme from the median would overflow int64.
    outlier = np.abs(seq.astype(np.float64) - center) > reach
    if not outlier.any():
        return table
    rows = np.flatnonzero(outlier)
    market = market_codes(table.column("market_ticker").take(rows), code)
    report.repair(
        RepairKind.SEQUENCE_OUTLIER,
        names[market],
        seq[rows],
        f"sequence number far outside the session's (median {center:.0f}): row dropped",
        row_ids=table.column("id").take(rows).to_pylist(),
    )
    return table.filter(pa.array(~outlier))
