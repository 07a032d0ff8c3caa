"""CleanEvents: the cleaned, ordered book events of a session's accepted markets.

What cleaning hands to reconstruction (:mod:`kalshi_pipeline.market.books`): one column
per field, sorted by (market, segment, sequence number), snapshots expanded to full
198-level bid books. It splits into groups of whole markets and saves to and loads from
an ``.npz`` file, so a session too big to hold can be built a group at a time.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, replace

import numpy as np

from kalshi_pipeline.market.cleaning.report import IngestReport
from kalshi_pipeline.market.cleaning.trade_columns import CleanTrades
from kalshi_pipeline.sources.raw import LEVELS

BOOK_WIDTH = 2 * LEVELS  # both bid books, prices 1..99: level = side * LEVELS + price - 1
YES, NO = 0, 1
# Sizes above this are not real orders. Bounding them keeps every sum over a book (198
# levels) and every price * size far inside int64.
MAX_SIZE = 2**40


@dataclass(frozen=True, kw_only=True)
class CleanEvents:
    """Ordered events of the accepted markets of one session.

    Events are sorted by (market, segment, sequence number); ``market`` indexes
    ``tickers``. ``level`` is the delta's bid level (``side * 99 + price - 1``) and
    ``new_size`` its size; for snapshots ``level`` is -1 and the book is row
    ``snapshot_index`` of ``snapshot_books`` (int64[S, 198]). ``timestamp_ms`` holds the
    receive times, replaced where they were outside the recorded window;
    ``time_repaired`` marks those (a replaced time is not a receive time, so such an
    event never shares a step with its neighbours). ``trades`` are the usable trades of
    these markets (:class:`~.trade_columns.CleanTrades`, ``market`` indexing ``tickers``
    too), or None for a session without a trade tape.
    """

    session_id: int
    tickers: list[str]
    market: np.ndarray
    sequence_number: np.ndarray
    timestamp_ms: np.ndarray
    is_snapshot: np.ndarray
    level: np.ndarray
    new_size: np.ndarray
    snapshot_index: np.ndarray
    snapshot_books: np.ndarray
    time_repaired: np.ndarray
    report: IngestReport
    trades: CleanTrades | None = None

    def __len__(self) -> int:
        return len(self.sequence_number)

    def market_groups(self, max_events: int) -> Iterator[CleanEvents]:
        """The events in consecutive groups of whole markets, each of at most
        ``max_events`` events unless one market alone has more (it is then a group of its
        own). Groups share ``snapshot_books`` and ``report`` with these events."""
        offsets = np.searchsorted(self.market, np.arange(len(self.tickers) + 1))
        trade_offsets = self._trade_offsets()
        first = 0
        while first < len(self.tickers):
            # The last market that still ends within max_events of the group's start.
            last = int(np.searchsorted(offsets, offsets[first] + max_events, side="right")) - 1
            last = min(max(last, first + 1), len(self.tickers))
            rows = slice(int(offsets[first]), int(offsets[last]))
            yield replace(
                self,
                tickers=self.tickers[first:last],
                market=self.market[rows] - first,
                **{name: getattr(self, name)[rows] for name in PER_EVENT},
                trades=self._trades_of(trade_offsets, first, last),
            )
            first = last

    def _trade_offsets(self) -> np.ndarray | None:
        if self.trades is None:
            return None
        return np.searchsorted(self.trades.market, np.arange(len(self.tickers) + 1))

    def _trades_of(self, offsets, first: int, last: int) -> CleanTrades | None:
        """The trades of markets ``first:last``, renumbered from ``first``."""
        if self.trades is None:
            return None
        rows = slice(int(offsets[first]), int(offsets[last]))
        return self.trades.take(rows, self.trades.market[rows] - first)

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the events and their trades, not their report, to an ``.npz`` file
        (:meth:`load`)."""
        arrays = {name: getattr(self, name) for name in ("market", "snapshot_books", *PER_EVENT)}
        if self.trades is not None:
            arrays |= {_TRADE_PREFIX + name: a for name, a in self.trades.arrays().items()}
        np.savez(path, tickers=np.array(self.tickers, dtype=str), **arrays)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], session_id: int, report: IngestReport
    ) -> CleanEvents:
        """Events written by :meth:`save`, carrying ``report``."""
        with np.load(path) as data:
            arrays = {name: data[name] for name in ("market", "snapshot_books", *PER_EVENT)}
            tickers = data["tickers"].tolist()
            trades = {
                name.removeprefix(_TRADE_PREFIX): data[name]
                for name in data.files
                if name.startswith(_TRADE_PREFIX)
            }
        return cls(
            session_id=session_id,
            tickers=tickers,
            report=report,
            trades=CleanTrades(**trades) if trades else None,
            **arrays,
        )


# The per-event arrays of CleanEvents besides ``market`` (``snapshot_books`` is per snapshot).
PER_EVENT = (
    "sequence_number", "timestamp_ms", "is_snapshot", "level", "new_size", "snapshot_index",
    "time_repaired",
)  # fmt: skip
# The trades' arrays in a saved file: their names with this prefix (no event array has it).
_TRADE_PREFIX = "trade_"


def empty_events(
    session_id: int, report: IngestReport, trades: CleanTrades | None = None
) -> CleanEvents:
    """No events: what a session (or a group) without a usable market cleans to
    (``trades``: none, from a tape, or None without one)."""
    return CleanEvents(
        session_id=session_id,
        tickers=[],
        market=np.zeros(0, np.int32),
        sequence_number=np.zeros(0, np.int64),
        timestamp_ms=np.zeros(0, np.int64),
        is_snapshot=np.zeros(0, bool),
        level=np.zeros(0, np.int16),
        new_size=np.zeros(0, np.int64),
        snapshot_index=np.zeros(0, np.int64),
        snapshot_books=np.zeros((0, BOOK_WIDTH), np.int64),
        time_repaired=np.zeros(0, bool),
        report=report,
        trades=trades,
    )
