"""The session-wide sequence checks: gaps in the session's sequence and numbers markets share.

Kalshi numbers a subscription's messages in one sequence across all its markets, so a gap
in it (``sequence_gap``) is a message missed, and the same number in two markets, or on a
trade and a book message of one market (``sequence_shared``), is two subscriptions, a
replayed message or a collector's counter gone wrong. No single market can
tell either, so :class:`SequenceTally` is fed every market's numbers, a group of markets
at a time, and counts them once it has all (:meth:`SequenceTally.count`).
"""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from kalshi_pipeline.market.cleaning.columns import group_starts
from kalshi_pipeline.market.cleaning.outline import SessionOutline
from kalshi_pipeline.market.cleaning.report import MAX_EXAMPLES_PER_KIND, IngestReport, RepairKind
from kalshi_pipeline.market.spill import CHUNK, GrowingArray


class SequenceTally:
    """The session-wide sequence checks, fed a group of markets at a time: gaps in the
    session's sequence (per segment) and numbers two markets share.

    It keeps one key per distinct (market, segment, number) of every group: the segment
    and the number's offset from the lowest a kept number can have, in one int64
    (:data:`SEGMENT_SHIFT`), and the market; 12 bytes per event, in memory or, given a
    ``spill`` directory, in files there. :meth:`count` sorts a copy of the keys in place
    and scans it a chunk at a time, so with files no part of it need be in memory at once.
    """

    def __init__(self, outline: SessionOutline, spill: Path | None = None) -> None:
        self._code = {ticker: i for i, ticker in enumerate(outline.tickers)}
        self._names = np.array(outline.tickers, dtype=object)
        # Numbers within ``reach`` of ``center`` are kept; a margin covers float rounding.
        self._base = math.floor(outline.center - outline.reach) - _BASE_MARGIN
        self._spill = spill
        self._keys = GrowingArray(np.int64, spill / "tally-keys" if spill else None)
        self._markets = GrowingArray(np.int32, spill / "tally-markets" if spill else None)

    def add(self, tickers: list[str], market, segment, seq) -> None:
        """Events sorted by (market, segment, number); ``market`` indexes ``tickers``."""
        first = np.flatnonzero(group_starts(market, segment, seq))
        offset = seq[first] - self._base
        if len(first) and (offset.min() < 0 or offset.max() >= 1 << SEGMENT_SHIFT):
            raise ValueError(f"sequence numbers span more than 2^{SEGMENT_SHIFT}: cannot tally")
        if len(first) and segment[first].max() >= 1 << (63 - SEGMENT_SHIFT):
            raise ValueError(f"more than 2^{63 - SEGMENT_SHIFT} segments: cannot tally")
        self._keys.append((segment[first].astype(np.int64) << SEGMENT_SHIFT) | offset)
        codes = np.array([self._code[t] for t in tickers], dtype=np.int32)
        self._markets.append(codes[market[first]])

    def count(self, report: IngestReport) -> None:
        """Count gaps (``sequence_gap``, the span and the missing numbers) and shared
        numbers (``sequence_shared``) into ``report``."""
        keys = self._keys.array(copy=self._spill / "tally-sorted" if self._spill else None)
        keys.sort()
        scan = _SequenceScan()
        for start in range(0, len(keys), CHUNK):
            scan.add(np.asarray(keys[start : start + CHUNK]))
        distinct = len(keys) - scan.shared
        del keys
        if distinct >= 2:
            report.sequence_span = distinct + scan.missing
            report.missing_sequence_numbers = scan.missing
        report.repair(
            RepairKind.SEQUENCE_GAP,
            [None] * len(scan.gap_examples),
            [self._number(key) for key in scan.gap_examples],
            "gap in the session-wide sequence before this number (messages missed); data kept",
            count=scan.gaps,
        )
        if scan.shared:
            tickers, numbers = self._shared_examples(scan.shared_examples)
            report.repair(
                RepairKind.SEQUENCE_SHARED,
                tickers,
                numbers,
                "sequence number carried twice (by two markets, or by a trade and a book message); "
                "each keeps its own events",
                count=scan.shared,
            )

    def _number(self, key: int) -> int:
        return (int(key) & _OFFSET_MASK) + self._base

    def _shared_examples(self, shared: list[int]) -> tuple[list[str], list[int]]:
        """For the first shared keys: every market carrying each, but the first (by
        market) that does, as the markets that also carry that number."""
        wanted = np.array(shared, dtype=np.int64)
        keys, markets = self._keys.array(), self._markets.array()
        found = {key: [] for key in shared}
        for start in range(0, len(keys), CHUNK):
            chunk = np.asarray(keys[start : start + CHUNK])
            for row in np.flatnonzero(np.isin(chunk, wanted)):
                found[int(chunk[row])].append(int(markets[start + row]))
        tickers, numbers = [], []
        for key in shared:
            for market in sorted(found[key])[1:]:
                tickers.append(self._names[market])
                numbers.append(self._number(key))
        return tickers, numbers


# A tally key: the segment in the high bits, the number's offset in the low SEGMENT_SHIFT.
SEGMENT_SHIFT = 48
_OFFSET_MASK = (1 << SEGMENT_SHIFT) - 1
_BASE_MARGIN = 1 << 12


class _SequenceScan:
    """Sorted tally keys, a chunk at a time: gaps, missing numbers and repeats (shared
    numbers), with the first :data:`MAX_EXAMPLES_PER_KIND` of each."""

    def __init__(self) -> None:
        self.gaps = self.missing = self.shared = 0
        self.gap_examples: list[int] = []
        self.shared_examples: list[int] = []
        self._last: np.ndarray = np.zeros(0, np.int64)

    def add(self, chunk: np.ndarray) -> None:
        keys = np.concatenate([self._last, chunk])
        if len(keys) < 2:
            self._last = keys[-1:]
            return
        step = np.diff(keys)
        same_segment = (keys[1:] >> SEGMENT_SHIFT) == (keys[:-1] >> SEGMENT_SHIFT)
        gap = np.flatnonzero(same_segment & (step > 1))
        repeat = np.flatnonzero(step == 0)
        self.gaps += len(gap)
        self.missing += int((step[gap] - 1).sum())
        self.shared += len(repeat)
        room = MAX_EXAMPLES_PER_KIND - len(self.gap_examples)
        self.gap_examples += keys[gap[:room] + 1].tolist()
        for key in keys[repeat[:MAX_EXAMPLES_PER_KIND]].tolist():
            examples = self.shared_examples
            if len(examples) < MAX_EXAMPLES_PER_KIND and key not in examples:
                examples.append(key)
        self._last = keys[-1:]
