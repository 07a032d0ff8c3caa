"""Vectorised order-book reconstruction: the book of every market after every event.

:func:`reconstruct_books` takes a raw session, cleans it (:mod:`.cleaning`) and returns
:class:`SessionBooks`: one row per event of every accepted market, sorted by (market,
sequence number), with the top of both bid books, the derived asks, the sizes of the top
``top_levels`` levels of each side and the total resting volume of each side.

How it is fast
--------------
Cleaning, ordering and everything around the replay are whole-column numpy operations.
The replay itself (apply each event to its market's 198-level book, read off the best
prices, top levels and volumes) is inherently sequential, and a numpy formulation of it
has to touch all 198 levels of every row: it measured slower than the plain Python
reference on realistic books, which hold a handful of levels. So the replay is one tight
loop compiled to machine code by numba (:func:`_replay`): no Python code runs per
event, the best price is maintained incrementally, and the top levels are found by
walking down from it. ``benchmarks/bench_reconstruction.py`` measures it against the
plain per-event reference in ``benchmarks/reference_books.py``.

Kalshi's book holds bids only: ``yes_ask = 100 - best_no_bid`` with the NO bid's size,
and ``no_ask = 100 - best_yes_bid``. Prices are cents; 0 means "that side is empty".
A book is *crossed* when ``best_yes_bid + best_no_bid >= 100`` (a YES bid at or above the
YES ask); such steps are kept, flagged in ``crossed`` and counted as a repair.

A session with a trade tape gets its trades attached to their markets' time steps
(:mod:`.trade_flow`): the replay also reads, for each trade, the size resting at the level
it took from just before its step, so a trade off the recorded book is flagged.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, fields

import numba
import numpy as np
import pyarrow as pa

from kalshi_pipeline.market.cleaning.columns import market_names
from kalshi_pipeline.market.cleaning.events import BOOK_WIDTH, CleanEvents
from kalshi_pipeline.market.cleaning.pipeline import clean_session
from kalshi_pipeline.market.cleaning.report import IngestReport, RepairKind
from kalshi_pipeline.market.trade_flow import TradeFlow, TradePlacement, place_trades, trade_flow
from kalshi_pipeline.sources.raw import LEVELS, RawSession

TOP_LEVELS = 5


@dataclass
class SessionBooks:
    """Per-event books of one session's accepted markets (columns of equal length N).

    Market ``tickers[i]`` owns rows ``market_offsets[i]:market_offsets[i + 1]``.
    ``trades``: the markets' trades at their time steps (:class:`~.trade_flow.TradeFlow`;
    None for a session without a trade tape); they index time steps, not rows, so they
    stay as they are when the books are cut to their time steps.
    """

    session_id: int
    tickers: list[str]
    market_offsets: np.ndarray  # int64[M + 1]
    sequence_number: np.ndarray  # int64[N]
    timestamp_ms: np.ndarray  # int64[N]
    is_snapshot: np.ndarray  # bool[N]
    best_yes_bid: np.ndarray  # int16[N] cents, 0 = no YES bid
    best_yes_bid_size: np.ndarray  # int64[N]
    best_no_bid: np.ndarray  # int16[N]
    best_no_bid_size: np.ndarray  # int64[N]
    best_yes_ask: np.ndarray  # int16[N] = 100 - best_no_bid (0 if no NO bid)
    best_yes_ask_size: np.ndarray  # int64[N] = best_no_bid_size
    best_no_ask: np.ndarray  # int16[N] = 100 - best_yes_bid (0 if no YES bid)
    best_no_ask_size: np.ndarray  # int64[N] = best_yes_bid_size
    yes_bid_depth: np.ndarray  # int64[N, K] sizes of the K best YES bid levels, best first
    no_bid_depth: np.ndarray  # int64[N, K]
    yes_bid_prices: np.ndarray  # int16[N, K] prices of those levels (0 past the last level)
    no_bid_prices: np.ndarray  # int16[N, K]
    yes_bid_volume: np.ndarray  # int64[N] total resting YES bid size
    no_bid_volume: np.ndarray  # int64[N]
    crossed: np.ndarray  # bool[N]
    time_repaired: np.ndarray  # bool[N]: the receive time was replaced by cleaning
    report: IngestReport
    trades: TradeFlow | None = None

    def __len__(self) -> int:
        return len(self.sequence_number)

    def market_rows(self, ticker: str) -> slice:
        i = self.tickers.index(ticker)
        return slice(int(self.market_offsets[i]), int(self.market_offsets[i + 1]))

    def columns(self) -> dict[str, np.ndarray]:
        """The per-event arrays by name (2-D depth arrays included)."""
        return {name: getattr(self, name) for name in ROW_COLUMNS}

    def take(self, rows: np.ndarray) -> SessionBooks:
        """The books at ``rows`` only (sorted row indices; every market keeps its place,
        ``report`` and ``trades`` are shared as they are)."""
        return SessionBooks(
            session_id=self.session_id,
            tickers=list(self.tickers),
            market_offsets=np.searchsorted(rows, self.market_offsets).astype(np.int64),
            report=self.report,
            trades=self.trades,
            **{name: getattr(self, name)[rows] for name in ROW_COLUMNS},
        )

    def to_arrow(self) -> pa.Table:
        """One row per event, with ``market_ticker`` and depth as fixed-size lists."""
        counts = np.diff(self.market_offsets)
        data = {"market_ticker": np.repeat(np.array(self.tickers, dtype=object), counts)}
        for name, values in self.columns().items():
            if values.ndim == 2:
                flat = pa.array(values.ravel())
                data[name] = pa.FixedSizeListArray.from_arrays(flat, values.shape[1])
            else:
                data[name] = values
        return pa.table(data)


ROW_COLUMNS = tuple(
    f.name
    for f in fields(SessionBooks)
    if f.name not in ("session_id", "tickers", "market_offsets", "report", "trades")
)  # the per-event arrays, in field order


def reconstruct_books(raw: RawSession, *, top_levels: int = TOP_LEVELS) -> SessionBooks:
    """Clean ``raw`` and compute the book of every accepted market after every event."""
    return books_from_events(clean_session(raw), top_levels=top_levels)


def empty_replay_columns(n: int, top_levels: int) -> dict[str, np.ndarray]:
    """Zeroed arrays for what a replay computes per event (an empty side reads 0)."""
    return {
        "best_yes_bid": np.zeros(n, np.int16),
        "best_no_bid": np.zeros(n, np.int16),
        "yes_bid_depth": np.zeros((n, top_levels), np.int64),
        "no_bid_depth": np.zeros((n, top_levels), np.int64),
        "yes_bid_prices": np.zeros((n, top_levels), np.int16),
        "no_bid_prices": np.zeros((n, top_levels), np.int16),
        "yes_bid_volume": np.zeros(n, np.int64),
        "no_bid_volume": np.zeros(n, np.int64),
    }


def books_from_events(
    events: CleanEvents, *, top_levels: int = TOP_LEVELS, report: IngestReport | None = None
) -> SessionBooks:
    """Replay cleaned events (each market starts with a snapshot) into per-event books.

    Crossed books and trades off the book are counted in ``report``, which the books
    carry; by default a copy of the events' report, which stays as cleaning left it.
    """
    placement = place_trades(events)
    out, resting = _replayed(events, top_levels, placement)
    if report is None:
        report = copy.deepcopy(events.report)
    crossed = _count_crossed(events, out, report)
    trades = None if placement is None else trade_flow(events, placement, resting, report)
    no_yes, no_no = out["best_yes_bid"] == 0, out["best_no_bid"] == 0
    market_offsets = np.searchsorted(events.market, np.arange(len(events.tickers) + 1))
    return SessionBooks(
        session_id=events.session_id,
        tickers=list(events.tickers),
        market_offsets=market_offsets.astype(np.int64),
        sequence_number=events.sequence_number,
        timestamp_ms=events.timestamp_ms,
        is_snapshot=events.is_snapshot,
        best_yes_bid=out["best_yes_bid"],
        best_yes_bid_size=out["yes_bid_depth"][:, 0].copy(),
        best_no_bid=out["best_no_bid"],
        best_no_bid_size=out["no_bid_depth"][:, 0].copy(),
        best_yes_ask=np.where(no_no, 0, 100 - out["best_no_bid"]).astype(np.int16),
        best_yes_ask_size=out["no_bid_depth"][:, 0].copy(),
        best_no_ask=np.where(no_yes, 0, 100 - out["best_yes_bid"]).astype(np.int16),
        best_no_ask_size=out["yes_bid_depth"][:, 0].copy(),
        yes_bid_depth=out["yes_bid_depth"],
        no_bid_depth=out["no_bid_depth"],
        yes_bid_prices=out["yes_bid_prices"],
        no_bid_prices=out["no_bid_prices"],
        yes_bid_volume=out["yes_bid_volume"],
        no_bid_volume=out["no_bid_volume"],
        crossed=crossed,
        time_repaired=events.time_repaired,
        report=report,
        trades=trades,
    )


def _replayed(
    events: CleanEvents, top_levels: int, placement: TradePlacement | None
) -> tuple[dict[str, np.ndarray], np.ndarray]:
    """What the compiled replay computes per event (:func:`empty_replay_columns`), and
    the size resting at each trade's level just before its step (0 where no book is
    known before it)."""
    out = empty_replay_columns(len(events), top_levels)
    read = np.zeros(0, np.int64) if placement is None else placement.read_after
    resting = np.zeros(len(read), np.int64)
    known = (read >= 0).nonzero()[0]
    order = known[np.argsort(read[known], kind="stable")]
    found = np.zeros(len(order), np.int64)
    if len(events):
        _replay(
            events.is_snapshot,
            events.level,
            events.new_size,
            events.snapshot_index,
            events.snapshot_books,
            out["best_yes_bid"],
            out["best_no_bid"],
            out["yes_bid_depth"],
            out["no_bid_depth"],
            out["yes_bid_prices"],
            out["no_bid_prices"],
            out["yes_bid_volume"],
            out["no_bid_volume"],
            read[order],
            np.zeros(0, np.int64) if placement is None else placement.level[order],
            found,
        )
    resting[order] = found
    return out, resting


def _count_crossed(events: CleanEvents, out: dict, report: IngestReport) -> np.ndarray:
    """Which books are crossed (``best_yes_bid + best_no_bid >= 100``, both sides
    quoted), each counted as a ``crossed_book`` repair."""
    crossed = (out["best_yes_bid"] > 0) & (out["best_no_bid"] > 0)
    crossed &= out["best_yes_bid"].astype(np.int32) + out["best_no_bid"] >= 100
    rows = crossed.nonzero()[0]
    report.repair(
        RepairKind.CROSSED_BOOK,
        market_names(events.tickers, events.market[rows]),
        events.sequence_number[rows],
        "book crossed after this event (YES bid >= YES ask); step kept and flagged",
    )
    return crossed


@numba.njit(cache=True, nogil=True)
def _replay(
    is_snapshot,
    level,
    new_size,
    snapshot_index,
    snapshot_books,
    best_yes,
    best_no,
    yes_depth,
    no_depth,
    yes_prices,
    no_prices,
    yes_volume,
    no_volume,
    read_after,
    read_level,
    resting,
):  # pragma: no cover - compiled; equality with the reference is tested
    """Apply each event to its market's 198-level book (a snapshot replaces it) and
    write the best bids, the top levels and the volumes after it into the outputs; after
    event ``read_after[t]`` (ascending), the size at level ``read_level[t]`` into
    ``resting[t]``."""
    book = np.zeros(BOOK_WIDTH, np.int64)
    best = np.zeros(2, np.int64)
    volume = np.zeros(2, np.int64)
    occupied = np.zeros(2, np.int64)  # levels with size > 0: stops the walk down early
    t = 0
    for i in range(len(level)):
        if is_snapshot[i]:
            book[:] = snapshot_books[snapshot_index[i]]
            _read_snapshot(book, best, volume, occupied)
        else:
            _apply_delta(book, level[i], new_size[i], best, volume, occupied)
        best_yes[i] = best[0]
        best_no[i] = best[1]
        yes_volume[i] = volume[0]
        no_volume[i] = volume[1]
        _top_levels(book, best[0], occupied[0], 0, yes_depth[i], yes_prices[i])
        _top_levels(book, best[1], occupied[1], 1, no_depth[i], no_prices[i])
        while t < len(read_after) and read_after[t] == i:
            resting[t] = book[read_level[t]]
            t += 1


@numba.njit(cache=True, nogil=True)
def _read_snapshot(book, best, volume, occupied):  # pragma: no cover - compiled
    """The best price, volume and occupied levels of each side of a fresh book."""
    for side in range(2):
        volume[side] = 0
        best[side] = 0
        occupied[side] = 0
        for price in range(1, LEVELS + 1):
            size = book[side * LEVELS + price - 1]
            volume[side] += size
            if size > 0:
                best[side] = price
                occupied[side] += 1


@numba.njit(cache=True, nogil=True)
def _apply_delta(book, at, size, best, volume, occupied):  # pragma: no cover - compiled
    """Set level ``at`` to ``size``, keeping its side's best, volume and occupied count
    up to date (the best is walked down only when the best level empties)."""
    side = at // LEVELS
    price = at % LEVELS + 1
    previous = book[at]
    volume[side] += size - previous
    occupied[side] += (size > 0) - (previous > 0)
    book[at] = size
    if size > 0 and price > best[side]:
        best[side] = price
    elif size == 0 and price == best[side]:
        while price > 0 and book[side * LEVELS + price - 1] == 0:
            price -= 1
        best[side] = price


@numba.njit(cache=True, nogil=True)
def _top_levels(book, best, occupied, side, depth, prices):  # pragma: no cover - compiled
    """The sizes and prices of the best ``len(depth)`` occupied levels of one side,
    walking down from its best price."""
    found = 0
    price = best
    wanted = min(depth.shape[0], occupied)
    while found < wanted:
        size = book[side * LEVELS + price - 1]
        if size > 0:
            depth[found] = size
            prices[found] = price
            found += 1
        price -= 1


def final_books(events: CleanEvents) -> np.ndarray:
    """int64[M, 198]: every market's whole book after its last event (its last snapshot
    with the later deltas applied), for the live path to carry into its next events."""
    out = np.zeros((len(events.tickers), BOOK_WIDTH), np.int64)
    if not len(events):
        return out
    market = events.market.astype(np.int64)
    snapshot_rows = events.is_snapshot.nonzero()[0]
    # Each market's last snapshot (events are sorted by market): its book, then the
    # deltas after it, in order (a later delta of a level overwrites an earlier one).
    last = np.full(len(events.tickers), -1, np.int64)
    last[market[snapshot_rows]] = snapshot_rows
    known = last >= 0
    out[known] = events.snapshot_books[events.snapshot_index[last[known]]]
    after = ~events.is_snapshot & (np.arange(len(events)) > last[market])
    rows = after.nonzero()[0][::-1]
    level = events.level[rows].astype(np.int64)
    _, latest = np.unique(market[rows] * BOOK_WIDTH + level, return_index=True)
    rows = rows[latest]  # the last delta of each (market, level)
    out[market[rows], events.level[rows].astype(np.int64)] = events.new_size[rows]
    return out
