"""The trade flow: each market's clean trades attached to its time steps and read against
its book.

Kalshi sends a trade, then the book deltas it causes, so a trade comes *before* the deltas
of its millisecond. The rules:

* **Its step.** A trade belongs to the time step (:mod:`.steps`) of its millisecond; a
  trade in a millisecond without a book change of its market belongs to the next one (the
  market's last step if none follows; the first step if it came before any). Steps are
  compared on their times raised to never go back (:func:`.steps.non_decreasing_times`),
  so a receive time that stepped back cannot send a trade to an earlier step.
* **Its order.** Within a step, trades keep receive order, then sequence number (where
  the collector numbers trades from the book's counter, that number orders the trades of
  one millisecond), then row id.
* **On the book or not.** A trade took from the level its taker hit: a taker buying NO
  hits the YES bid at ``yes_price``; a taker buying YES lifts the YES ask, the NO bid at
  ``100 - yes_price``. That level must have rested size on the book as it was just
  before the trade's step (after the market's previous step). A trade whose level was
  empty then (or in its market's first step, before which no book is known) is kept,
  flagged ``off_book`` and counted as the repair ``trade_off_book``: the tape and the
  recorded book disagree (a missed delta, a trade against a hidden or just-placed order).

:func:`place_trades` finds each trade's step and the book to read it against before the
replay; the replay (:mod:`.books`) reads the level's size there; :func:`trade_flow` makes
the :class:`TradeFlow` the books and the views carry.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_pipeline.market.cleaning.columns import market_names
from kalshi_pipeline.market.cleaning.events import NO, YES, CleanEvents
from kalshi_pipeline.market.cleaning.report import IngestReport, RepairKind
from kalshi_pipeline.market.steps import non_decreasing_times, step_rows
from kalshi_pipeline.sources.raw import LEVELS


@dataclass(frozen=True, kw_only=True, eq=False)
class TradeFlow:
    """The trades of some markets at their time steps, sorted by (market, step, order).

    Market ``i`` owns trades ``market_offsets[i]:market_offsets[i + 1]``; ``step`` indexes
    that market's time steps (the rows of its view). ``taker_yes``: the taker bought YES;
    ``off_book``: the level it took from held nothing just before its step.
    """

    market_offsets: np.ndarray  # int64[M + 1]
    step: np.ndarray  # int32
    yes_price: np.ndarray  # int16
    count: np.ndarray  # int64
    taker_yes: np.ndarray  # bool
    off_book: np.ndarray  # bool

    def of_market(self, index: int) -> dict[str, np.ndarray]:
        """The per-trade arrays of market ``index``, by name."""
        rows = slice(int(self.market_offsets[index]), int(self.market_offsets[index + 1]))
        return {
            "step": self.step[rows],
            "yes_price": self.yes_price[rows],
            "count": self.count[rows],
            "taker_yes": self.taker_yes[rows],
            "off_book": self.off_book[rows],
        }


@dataclass(frozen=True, kw_only=True, eq=False)
class TradePlacement:
    """Where each trade of some events goes: ``step`` within its market, and the event
    row ``read_after`` which its level (``level``, as in the events) is read (-1: no book
    before its step)."""

    step: np.ndarray  # int32
    read_after: np.ndarray  # int64
    level: np.ndarray  # int64


def place_trades(events: CleanEvents) -> TradePlacement | None:
    """Each trade's step and the book it is read against (None without a tape)."""
    trades = events.trades
    if trades is None:
        return None
    if not len(trades):
        none = np.zeros(0, np.int64)
        return TradePlacement(step=none.astype(np.int32), read_after=none, level=none)
    markets = len(events.tickers)
    offsets = np.searchsorted(events.market, np.arange(markets + 1))
    ends = step_rows(events.timestamp_ms, events.time_repaired, offsets)
    step_times = non_decreasing_times(events.timestamp_ms, events.market)[ends]
    step_market = events.market[ends].astype(np.int64)
    step_offsets = np.searchsorted(step_market, np.arange(markets + 1))
    market = trades.market.astype(np.int64)
    # One key per (market, time), ordered market first, so one search finds every step.
    low = min(int(step_times.min()), int(trades.timestamp_ms.min()))
    stride = max(int(step_times.max()), int(trades.timestamp_ms.max())) - low + 1
    found = np.searchsorted(
        step_market * stride + (step_times - low), market * stride + (trades.timestamp_ms - low)
    )
    found = np.minimum(found, step_offsets[market + 1] - 1)  # none later: the last step
    step = found - step_offsets[market]
    price = trades.yes_price.astype(np.int64)
    level = np.where(trades.taker_yes, NO * LEVELS + (100 - price) - 1, YES * LEVELS + price - 1)
    return TradePlacement(
        step=step.astype(np.int32),
        read_after=np.where(step > 0, ends[np.maximum(found - 1, 0)], -1).astype(np.int64),
        level=level.astype(np.int64),
    )


def trade_flow(
    events: CleanEvents, placement: TradePlacement, resting: np.ndarray, report: IngestReport
) -> TradeFlow:
    """The trades of ``events`` with their steps, flagged where the ``resting`` size of
    their level before their step was zero (each counted as ``trade_off_book``)."""
    trades = events.trades
    off_book = resting <= 0
    rows = off_book.nonzero()[0]
    report.repair(
        RepairKind.TRADE_OFF_BOOK,
        market_names(events.tickers, trades.market[rows]),
        trades.named_sequences(rows),
        "trade at a level with no resting size just before its step (a NO taker hits the "
        "YES bid at yes_price, a YES taker the NO bid at 100 - yes_price): kept and flagged",
        row_ids=trades.row_id[rows],
        trade_ids=trades.trade_id[rows],
    )
    return TradeFlow(
        market_offsets=np.searchsorted(trades.market, np.arange(len(events.tickers) + 1)).astype(
            np.int64
        ),
        step=placement.step,
        yes_price=trades.yes_price,
        count=trades.count,
        taker_yes=trades.taker_yes,
        off_book=off_book,
    )
