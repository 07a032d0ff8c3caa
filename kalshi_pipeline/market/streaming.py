"""The live path: a session's views grown as its rows arrive, by the batch code itself.

:class:`SessionStream` takes a session's new rows (snapshots, deltas, trades: the raw
tables of :mod:`kalshi_pipeline.sources.raw`) a commit at a time and hands back, for every
market whose book changed, its new time steps as view columns (:class:`StepChunk`): the
same values the batch views (:mod:`kalshi_pipeline.market.views`) hold for those steps,
bit for bit, because they are computed by the same functions:

* **cleaning** is :func:`~.cleaning.pipeline.clean_markets` on the new rows of the
  markets they touch, each market's rows led by a snapshot of its book as the last step
  left it (so a delta has its book, a time its market's previous valid time);
* **books** are :func:`~.books.books_from_events` on those events, steps
  :func:`~.steps.step_rows`, trades placed by :mod:`~.trade_flow`;
* **features** are :func:`~.features.compute_features` on a window of the market's
  latest steps with its :class:`~.features.MarketOrigin`; the window keeps 30 steps and
  the 5 minutes before the newest, all any feature reads back (the windows and the view
  columns: :mod:`.live_steps`). Markets seen for the first time in one commit (a
  session's opening snapshots) have theirs computed together, as the batch path does.

A millisecond is complete when its commit is read: the collector commits each receive
millisecond's rows together (docs/paper-trading.md). What the batch path decides by
looking ahead cannot be done live (:mod:`.live_order` settles the rows before cleaning),
and is counted in :attr:`SessionStream.live_only` instead: rows numbered at or below their
market's last (stored late: the batch path sorts them into place) unless cleaning takes
them for a restart, a restart judged without the segment's earlier numbers, rows of a
segment before a restart, rows of a millisecond already taken as a step (a commit split:
they make a step of their own), a repaired time equal to a step already taken, a trade of
a step already taken, and trades after a market's last book change (the batch path gives
them its last step). Deltas before a market's first snapshot wait for it, and trades
before its first book row. Sequence outliers are judged against the median of the first
rows read (from the third on; outliers taken before are counted), and the session-wide
sequence tally (gaps, numbers shared) is not kept.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace
from itertools import compress

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kalshi_pipeline.market.books import TOP_LEVELS, SessionBooks, books_from_events, final_books
from kalshi_pipeline.market.cleaning.columns import among
from kalshi_pipeline.market.cleaning.outline import SessionOutline, drop_outliers, usable_rows
from kalshi_pipeline.market.cleaning.pipeline import clean_markets
from kalshi_pipeline.market.cleaning.report import IngestReport, RepairKind
from kalshi_pipeline.market.cleaning.trades import SessionTrades, usable_trades
from kalshi_pipeline.market.features import MarketOrigin, compute_features
from kalshi_pipeline.market.live_order import (
    EarlyDeltas,
    LiveMarket,
    NoTally,
    carried_books,
    of_markets,
    placeable,
    refused_restarts,
    without_low_numbers,
)
from kalshi_pipeline.market.live_outline import LiveOutline
from kalshi_pipeline.market.live_steps import (
    concat,
    empty_like,
    fresh_features,
    step_ends,
    take_rows,
    trade_arrays,
    view_columns,
)
from kalshi_pipeline.sources.raw import SNAPSHOT_SCHEMA, SessionInfo
from kalshi_pipeline.sources.trades import empty_trades

_HISTORY_STEPS = 31  # momentum_long reads 30 steps back
_HISTORY_MS = 300_000  # activity_5min reads 5 minutes back


@dataclass(frozen=True, kw_only=True, eq=False)
class StepChunk:
    """A market's new time steps: ``first_step`` is the index of the first in its view;
    ``columns`` the view's per-step arrays by :class:`MarketSessionView` field name;
    ``trades`` its trade arrays (``trade_steps`` are view step indices)."""

    ticker: str
    first_step: int
    columns: dict[str, np.ndarray]
    trades: dict[str, np.ndarray]

    def __len__(self) -> int:
        return len(self.columns["timestamps_ms"])


class SessionStream:
    """One session's views, grown a commit at a time (see the module docstring)."""

    def __init__(self, info: SessionInfo, top_levels: int = TOP_LEVELS) -> None:
        self.info = info
        self.top_levels = top_levels
        self.report = IngestReport(info.session_id)  # every repair so far
        self.live_only: Counter = Counter()
        self.rejected: dict[str, str] = {}
        self._markets: dict[str, LiveMarket] = {}
        self._waiting: dict[str, list[pa.Table]] = {}  # trades of markets with no step yet
        self._trade_ids: set[str] = set()
        self._unseen: list[pa.Table] = []  # trades of markets with no book row yet
        self._early = EarlyDeltas()
        self._outline = LiveOutline(info, self.live_only)
        self.tape: bool | None = None  # whether the session records a trade tape

    def add(
        self, snapshots: pa.Table, deltas: pa.Table, trades: pa.Table | None = None
    ) -> list[StepChunk]:
        """Clean and cut the new rows; the new steps of each market they changed."""
        report = IngestReport(self.info.session_id)
        snapshots = usable_rows(snapshots, "snapshot", report)
        deltas = usable_rows(deltas, "delta", report)
        opening = set(snapshots.column("market_ticker").to_pylist())
        rows_of = opening | set(deltas.column("market_ticker").to_pylist())
        grown = self._outline.add(snapshots, deltas, rows_of)
        outline = self._outline.now()
        if gone := rows_of & self.rejected.keys():  # a rejected market's rows go with it
            snapshots, deltas = (t.filter(~of_markets(t, gone)) for t in (snapshots, deltas))
        snapshots, deltas, restarting = self._in_order(snapshots, deltas, outline, report)
        waiting = {
            t for t in rows_of - opening if t not in self._markets and t not in self.rejected
        }
        deltas = self._early.sort(deltas, waiting, opening)
        if self.tape is None:
            self.tape = trades is not None
        if (trades is not None and trades.num_rows) or (grown and self._unseen):
            self._hold_trades(trades, outline, report)
        self._absorb(report)
        touched = sorted(rows_of - waiting - set(self.rejected))
        return self._steps(snapshots, deltas, touched, outline, restarting) if touched else []

    def finish(self) -> None:
        """The session closed: trades left without a later book change are counted, and
        trades of markets that never had a book row, as the batch cleaning counts them."""
        report = IngestReport(self.info.session_id)
        if self._unseen:
            usable_trades(pa.concat_tables(self._unseen), self._outline.now(), report)
            self._unseen = []
        if (left := self._early.left()) is not None:  # markets that never had a snapshot
            outline = self._outline.now()
            empty = SNAPSHOT_SCHEMA.empty_table()
            clean_markets(empty, left[1], left[0], outline, report, NoTally())
            for ticker, issue in report.rejected.items():
                self.rejected.setdefault(ticker, issue.message)
        self._absorb(report)
        for ticker, market in self._markets.items():
            if ticker in self.rejected:  # its trades went with it, as in the batch path
                continue
            left = sum(table.num_rows for table in market.pending_trades)
            if left:
                rows = self._not_of_steps_taken(ticker, pa.concat_tables(market.pending_trades))
                self.live_only["trade_after_last_step"] += rows.num_rows
            market.pending_trades = []

    # -- cleaning ----------------------------------------------------------------------
    def _in_order(self, snapshots, deltas, outline, report) -> tuple[pa.Table, pa.Table, dict]:
        """The rows the live path can place, and the markets a restart may renumber
        (:func:`~.live_order.placeable`)."""
        center, reach = outline.center, outline.reach
        codes, names = self._outline.codes, self._outline.names
        snapshots = drop_outliers(snapshots, center, reach, codes, names, report)
        deltas = drop_outliers(deltas, center, reach, codes, names, report)
        return placeable(snapshots, deltas, self._markets, self.live_only)

    def _hold_trades(self, trades: pa.Table | None, outline: SessionOutline, report) -> None:
        """Check the new trades as the batch path does and hold the kept ones until
        their market's book changes; a trade id seen before is a repeat. A trade of a
        market with no book row yet waits for its first (the batch outline knows every
        market of the session), and is checked with it."""
        parts = [*self._unseen, *([trades] if trades is not None else [])]
        trades = parts[0] if len(parts) == 1 else pa.concat_tables(parts)
        ticker = trades.column("market_ticker")
        seen = among(ticker, outline.tickers) | ~ticker.is_valid().to_numpy(zero_copy_only=False)
        self._unseen = [] if seen.all() else [trades.filter(pa.array(~seen))]
        trades = trades if seen.all() else trades.filter(pa.array(seen))
        kept = usable_trades(trades, outline, report).kept
        tickers = kept.column("market_ticker").to_pylist()
        ids = kept.column("trade_id").to_pylist()
        # A rejected market's trades go with it, as in the batch path; a repeat is counted.
        ours = [t not in self.rejected for t in tickers]
        keep = [mine and i not in self._trade_ids for mine, i in zip(ours, ids, strict=True)]
        if repeats := ours.count(True) - keep.count(True):
            report.repairs[RepairKind.DUPLICATE_TRADE_ID] += repeats
        if not all(keep):
            kept = kept.filter(pa.array(keep))
            tickers, ids = list(compress(tickers, keep)), list(compress(ids, keep))
        self._trade_ids.update(ids)
        markets = dict.fromkeys(tickers)
        for ticker in markets:
            one = len(markets) == 1
            rows = kept if one else kept.filter(pc.equal(kept["market_ticker"], ticker))
            target = self._markets[ticker].pending_trades if ticker in self._markets else None
            (target if target is not None else self._waiting.setdefault(ticker, [])).append(rows)

    def _steps(self, snapshots, deltas, touched, outline, restarting) -> list[StepChunk]:
        carried = [t for t in touched if t in self._markets]
        trades, held = self._trades_for(touched, snapshots, deltas)
        events, report = self._cleaned(snapshots, deltas, carried, touched, outline, trades)
        markets, live_only = self._markets, self.live_only
        if refused := refused_restarts(events, report.rejected, restarting, markets, live_only):
            snapshots, deltas = without_low_numbers(
                (snapshots, deltas), refused, markets, live_only
            )
            events, report = self._cleaned(snapshots, deltas, carried, touched, outline, trades)
        for ticker in report.rejected:
            self.rejected.setdefault(ticker, report.rejected[ticker].message)
        # A carried snapshot is a step of its own, never merged with the new events.
        offsets = np.searchsorted(events.market, np.arange(len(events.tickers) + 1))
        has_carried = np.array([t in self._markets for t in events.tickers], dtype=bool)
        events.time_repaired[offsets[:-1][has_carried]] = True
        books = books_from_events(events, top_levels=self.top_levels, report=report)
        after = final_books(events)
        fresh = fresh_features(books, ~has_carried)
        chunks = []
        for index, ticker in enumerate(events.tickers):
            if ticker in self.rejected:
                continue
            carries = bool(has_carried[index])
            chunk = self._market_steps(books, index, carries, after[index], fresh.get(index))
            if chunk is not None:
                chunks.append(chunk)
        for ticker, rows in held.items():  # trades of markets the cleaning left out
            self._pending(ticker).extend(rows)
        self._absorb(report)
        return chunks

    def _cleaned(self, snapshots, deltas, carried, touched, outline, trades):
        """The cleaned events of the rows, each carried market's led by its snapshot,
        and the report of their cleaning."""
        report = IngestReport(self.info.session_id)
        known = carried_books(carried, self._markets)
        tally = NoTally()
        events = clean_markets(snapshots, deltas, touched, outline, report, tally, trades, known)
        return events, report

    def _not_of_steps_taken(self, ticker: str, trades: pa.Table) -> pa.Table:
        """``trades`` of ``ticker`` without those received at or before its latest step
        time (counted): the batch path places them on a step already taken (steps are
        compared on times that never go back, :mod:`.trade_flow`)."""
        if (market := self._markets.get(ticker)) is None:
            return trades
        taken = pc.less_equal(trades.column("timestamp_ms"), market.top_ms)
        self.live_only["trade_of_a_step_taken"] += pc.sum(taken).as_py() or 0
        return trades.filter(pc.invert(taken))

    def _pending(self, ticker: str) -> list[pa.Table]:
        if ticker in self._markets:
            return self._markets[ticker].pending_trades
        return self._waiting.setdefault(ticker, [])

    def _trades_for(self, touched, snapshots, deltas) -> tuple[SessionTrades | None, dict]:
        """The held trades the new events can place: those received up to each market's
        newest event (a later one waits for the next book change)."""
        if not self.tape:
            return None, {}
        waiting = [ticker for ticker in touched if self._pending(ticker)]
        if not waiting:
            return SessionTrades(empty_trades(), empty_trades()), {}
        newest: dict[str, int] = {}
        for table in (snapshots, deltas):
            tickers = table.column("market_ticker").to_pylist()
            times = table.column("timestamp_ms").to_pylist()
            for ticker, ms in zip(tickers, times, strict=True):
                newest[ticker] = max(newest.get(ticker, ms), ms)
        placed, held = [], {}
        for ticker in waiting:
            pending = self._pending(ticker)
            rows = self._not_of_steps_taken(ticker, pa.concat_tables(pending))
            pending.clear()
            now = pc.less_equal(rows.column("timestamp_ms"), newest[ticker])
            placed.append(rows.filter(now))
            later = rows.filter(pc.invert(now))
            if later.num_rows:
                held[ticker] = [later]
        kept = pa.concat_tables(placed) if placed else empty_trades()
        # No numbers for the session-wide gap tally, which the live path does not keep (a
        # trade need not carry one: the collector numbers trades only where it can).
        return SessionTrades(kept, empty_trades()), held

    # -- steps -------------------------------------------------------------------------
    def _market_steps(self, books, index, carried, book, features=None) -> StepChunk | None:
        """Market ``index``'s new steps (``features``: theirs, when already computed)."""
        rows = slice(int(books.market_offsets[index]), int(books.market_offsets[index + 1]))
        ends = step_ends(books, rows)
        ticker = books.tickers[index]
        market = self._markets.get(ticker)
        if carried:
            ends = ends[1:]
        new = take_rows(books, ends, tickers=[ticker])
        trades = self._placed_trades(books, index, carried, market)
        if market is None:
            first = int(new.timestamp_ms[0])
            market = LiveMarket(
                book=book, last_seq=0, last_ms=first, steps=0, history=empty_like(new),
                segment_first=int(books.sequence_number[rows.start]),
                origin=MarketOrigin(first_ms=first, latest_ms=first),
                pending_trades=self._waiting.pop(ticker, []),
            )  # fmt: skip
            self._markets[ticker] = market
        first_step, last_ms = market.steps, market.last_ms
        features = self._features(market, new, features)
        market.book, market.steps = book, market.steps + len(ends)
        market.last_seq = int(new.sequence_number[-1]) if len(ends) else market.last_seq
        market.last_ms = int(books.timestamp_ms[rows.stop - 1])
        if not len(ends):
            return None
        if carried and new.time_repaired[0] and new.timestamp_ms[0] == last_ms:
            # Cleaning gave it its last step's time: the maker replay took that step as
            # the last of its millisecond (the batch one sees this step after it).
            self.live_only["repaired_time_of_a_step_taken"] += 1
        if len(trades["trade_steps"]):
            trades["trade_steps"] = trades["trade_steps"] + first_step
        return StepChunk(
            ticker=ticker, first_step=first_step, trades=trades,
            columns=view_columns(new, features),
        )  # fmt: skip

    def _placed_trades(self, books, index, carried, market) -> dict[str, np.ndarray]:
        if books.trades is None:
            return trade_arrays(None)
        trades = books.trades.of_market(index)
        if carried:  # a trade of the carried step belonged to a step already taken
            late = trades["step"] == 0
            self.live_only["trade_of_a_step_taken"] += int(late.sum())
            trades = {name: values[~late] for name, values in trades.items()}
            trades["step"] = trades["step"] - 1
        return trade_arrays(trades)

    def _features(self, market: LiveMarket, new: SessionBooks, features=None) -> np.ndarray:
        """The features of ``new`` (the market's next steps) on its window (unless given),
        and the window the next steps need kept."""
        window = concat(market.history, new)
        if features is None:
            features = compute_features(window, origin=market.origin, from_row=len(market.history))
        times = np.maximum.accumulate(np.maximum(window.timestamp_ms, market.origin.latest_ms))
        # Keep what the next steps read back: 30 steps, and every step of the 5 minutes
        # before the newest (a step can only be newer).
        keep = max(0, len(window) - _HISTORY_STEPS)
        keep = min(keep, int(np.searchsorted(times, times[-1] - _HISTORY_MS, side="right")) - 1)
        keep = max(keep, 0)
        market.history = take_rows(window, slice(keep, None))  # a fresh window: views
        market.top_ms = int(times[-1])
        market.origin = replace(
            market.origin, latest_ms=int(times[keep - 1]) if keep else market.origin.latest_ms
        )
        return features

    def _absorb(self, report: IngestReport) -> None:
        self.report.repairs.update(report.repairs)
        self.report.examples.extend(report.examples[: max(0, 100 - len(self.report.examples))])
        for ticker, issue in report.rejected.items():
            self.report.rejected.setdefault(ticker, issue)
