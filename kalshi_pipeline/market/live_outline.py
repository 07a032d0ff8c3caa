"""The session outline of the live path, grown a commit at a time (:mod:`.streaming`).

Cleaning judges a session's rows against its outline
(:class:`~.cleaning.outline.SessionOutline`): the session's markets, and the centre and
reach of its sequence numbers, beyond which a row is an outlier. The batch path knows the
whole session; live, the outline's markets are those with a book row so far, its centre
is the median of the first rows' numbers (up to :data:`CENTER_ROWS`), and its reach
grows with the rows read, as the batch reach grows with a session's. Outliers are judged
once three rows are read (a median of one or two rows is any one of them); rows taken
before that and found far from the centre then are counted in ``live_only``.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pyarrow as pa

from kalshi_pipeline.market.cleaning.outline import (
    MIN_OUTLIER_DISTANCE,
    OUTLIER_DISTANCE_PER_ROW,
    SessionOutline,
)
from kalshi_pipeline.market.cleaning.timestamps import recorded_window
from kalshi_pipeline.sources.raw import SessionInfo

CENTER_ROWS = 4_096  # the first rows whose numbers' median is the centre
_JUDGED_FROM = 3
_UNJUDGED = float(2**62)  # the reach before outliers are judged (one int64 can hold)


class LiveOutline:
    """The outline of a session followed live (see the module docstring): ``codes`` and
    ``names`` are its markets' positions and names, as cleaning's reports take them."""

    def __init__(self, info: SessionInfo, live_only: Counter) -> None:
        self.info = info
        self.live_only = live_only
        self.tickers: list[str] = []  # every market with a book row, sorted
        self.codes: dict[str, int] = {}
        self.names = np.array([], dtype=object)
        self._ticker_set: set[str] = set()
        self._numbers = np.zeros(0, np.int64)  # the first rows' numbers, sorted
        self._center = 0.0
        self._rows = 0

    def add(self, snapshots: pa.Table, deltas: pa.Table, tickers: set[str]) -> bool:
        """Take the new (usable) rows, of the markets ``tickers``; whether they brought a
        market to the outline."""
        numbers = np.concatenate(
            [table.column("sequence_number").to_numpy() for table in (snapshots, deltas)]
        ).astype(np.int64)
        self._rows += len(numbers)
        if len(self._numbers) < CENTER_ROWS and len(numbers):
            before = self._numbers
            self._numbers = np.sort(np.concatenate([before, numbers[: CENTER_ROWS - len(before)]]))
            self._center = _median(self._numbers)
            if len(before) < _JUDGED_FROM <= len(self._numbers):  # rows taken unjudged
                far = np.abs(before.astype(np.float64) - self._center) > self._reach()
                self.live_only["outlier_taken_before_judged"] += int(far.sum())
        grown = not tickers <= self._ticker_set
        if grown:
            self._ticker_set |= tickers
            self.tickers = sorted(self._ticker_set)
            self.codes = {ticker: i for i, ticker in enumerate(self.tickers)}
            self.names = np.array(self.tickers, dtype=object)
        return grown

    def now(self) -> SessionOutline:
        """The outline as the rows so far make it."""
        return SessionOutline(
            session_id=self.info.session_id,
            window=recorded_window(self.info),
            tickers=self.tickers,
            rows=np.zeros(len(self.tickers), np.int64),
            center=self._center,
            reach=self._reach() if len(self._numbers) >= _JUDGED_FROM else _UNJUDGED,
        )

    def _reach(self) -> float:
        return float(max(OUTLIER_DISTANCE_PER_ROW * self._rows, MIN_OUTLIER_DISTANCE))


def _median(ordered: np.ndarray) -> float:
    """``np.median`` of numbers in order, bit for bit: the middle one, or the mean of the
    two middle ones."""
    middle = len(ordered) // 2
    return float(ordered[middle] if len(ordered) % 2 else ordered[middle - 1 : middle + 1].mean())
