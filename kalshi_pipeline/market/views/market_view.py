"""MarketSessionView: one market within one session, one training episode.

A view's steps are the market's *time steps* (:mod:`.time_steps`); per step it carries the
top of both bid books with the derived asks, the prices and sizes of the top ``K`` levels
of each side (what an order can walk), and the feature matrix; and it carries the
statistics of the whole view (:mod:`.statistics`). Where the session recorded a trade
tape, it carries its market's trades too, at their steps (:mod:`kalshi_pipeline.market.trade_flow`);
they never enter the features. Every step, table and file names a view by its key
(:func:`view_key`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from typing import Self

import numpy as np

from kalshi_pipeline.market.books import TOP_LEVELS
from kalshi_pipeline.market.features import (
    FEATURE_LAYOUT,
    FEATURE_LAYOUT_VERSION,
    FEATURE_NAMES,
)


@dataclass(frozen=True, kw_only=True)
class ViewConfig:
    """How views are cut and described (defaults in one place)."""

    top_levels: int = TOP_LEVELS
    burst_gap_ms: int = 1_000
    burst_min_events: int = 5
    quiet_gap_ms: int = 60_000
    # Markets are reconstructed and cut in groups of at most this many events
    # (:class:`~.session_views.SessionViews`); the views do not depend on it, peak memory
    # does.
    chunk_events: int = 65_536
    # A session read a batch at a time (:meth:`~.session_views.SessionViews.streamed`) is
    # cleaned in groups of markets of at most this many rows
    # (:mod:`kalshi_pipeline.market.grouped_cleaning`).
    clean_events: int = 1_048_576

    def to_json(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(**{f.name: data[f.name] for f in fields(cls)})


# Per-step arrays of a view, with their dtypes; 2-D ones have K (or 36) columns.
STEP_ARRAYS = {
    "timestamps_ms": np.int64,
    "sequence_numbers": np.int64,
    "best_yes_bid": np.int16,
    "best_yes_ask": np.int16,
    "best_no_bid": np.int16,
    "best_no_ask": np.int16,
    "yes_bid_prices": np.int16,
    "yes_bid_sizes": np.int64,
    "no_bid_prices": np.int16,
    "no_bid_sizes": np.int64,
    "features": np.float32,
}
# Per-trade arrays of a view, with their dtypes, sorted by (step, order): the market's
# trades at their steps (kalshi_pipeline.market.trade_flow).
TRADE_ARRAYS = {
    "trade_steps": np.int32,
    "trade_yes_prices": np.int16,
    "trade_counts": np.int64,
    "trade_taker_yes": np.bool_,
    "trade_off_book": np.bool_,
}
STATISTICS = (
    "avg_spread",
    "volatility_score",
    "market_coverage",
    "data_quality_score",
    "activity_bursts",
    "quiet_periods",
)


@dataclass(frozen=True, eq=False, kw_only=True)
class MarketSessionView:
    """One market within one session: ``len(view)`` steps of book, features and stats.

    Prices are cents, 0 where that side is empty. ``yes_bid_prices``/``yes_bid_sizes``
    hold the top K YES bid levels best first (the YES asks are ``100 - no_bid_prices``
    with ``no_bid_sizes``). ``features`` is float32[T, 36] in the layout named by
    ``feature_layout``/``feature_layout_version`` (the table in
    :mod:`kalshi_pipeline.market.features`).

    ``trade_tape`` says whether the session recorded a trade tape at all: without one
    the trade arrays are empty and say nothing (not "no trade happened"). With one, the
    :data:`TRADE_ARRAYS` hold one entry per clean trade of the market, sorted by (step,
    order): ``trade_steps`` the step it belongs to, ``trade_yes_prices`` its YES price
    in cents, ``trade_counts`` its contracts, ``trade_taker_yes`` whether the taker bought
    YES (lifting the YES ask; else it sold YES, hitting the YES bid) and
    ``trade_off_book`` whether the level it took from held nothing just before its step.
    """

    session_id: int
    market_ticker: str
    timestamps_ms: np.ndarray
    sequence_numbers: np.ndarray
    best_yes_bid: np.ndarray
    best_yes_ask: np.ndarray
    best_no_bid: np.ndarray
    best_no_ask: np.ndarray
    yes_bid_prices: np.ndarray
    yes_bid_sizes: np.ndarray
    no_bid_prices: np.ndarray
    no_bid_sizes: np.ndarray
    features: np.ndarray
    avg_spread: float
    volatility_score: float
    market_coverage: float
    data_quality_score: float
    activity_bursts: int
    quiet_periods: int
    feature_layout: str = FEATURE_LAYOUT
    feature_layout_version: int = FEATURE_LAYOUT_VERSION
    trade_tape: bool = False
    trade_steps: np.ndarray = field(default_factory=lambda: _no_trades("trade_steps"))
    trade_yes_prices: np.ndarray = field(default_factory=lambda: _no_trades("trade_yes_prices"))
    trade_counts: np.ndarray = field(default_factory=lambda: _no_trades("trade_counts"))
    trade_taker_yes: np.ndarray = field(default_factory=lambda: _no_trades("trade_taker_yes"))
    trade_off_book: np.ndarray = field(default_factory=lambda: _no_trades("trade_off_book"))

    def __len__(self) -> int:
        return len(self.timestamps_ms)

    @property
    def start_ms(self) -> int:
        return int(self.timestamps_ms[0])

    @property
    def end_ms(self) -> int:
        return int(self.timestamps_ms[-1])

    @property
    def key(self) -> str:
        """``<session>/<ticker>``: unique across sessions (:func:`view_key`)."""
        return view_key(self.session_id, self.market_ticker)

    def statistics(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in STATISTICS}

    @property
    def taker_volume(self) -> np.ndarray:
        """int64[T, 2]: the contracts YES takers (column 0) and NO takers (column 1)
        bought at each step (zeros without a tape)."""
        volume = np.zeros((len(self), 2), np.int64)
        side = np.where(self.trade_taker_yes, 0, 1)
        np.add.at(volume, (self.trade_steps, side), self.trade_counts)
        return volume

    def describe(self) -> dict:
        """The small summary downstream steps read instead of the step data; a view of a
        session with a trade tape adds ``trade_tape`` and its number of ``trades``."""
        described = {
            "session_id": self.session_id,
            "market_ticker": self.market_ticker,
            "length": len(self),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "feature_layout": self.feature_layout,
            "feature_layout_version": self.feature_layout_version,
            **self.statistics(),
        }
        if self.trade_tape:
            described |= {"trade_tape": True, "trades": len(self.trade_steps)}
        return described

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MarketSessionView):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name))
            if f.name in STEP_ARRAYS or f.name in TRADE_ARRAYS
            else getattr(self, f.name) == getattr(other, f.name)
            for f in fields(self)
        )


def _no_trades(name: str) -> np.ndarray:
    return np.zeros(0, TRADE_ARRAYS[name])


def view_key(session_id: int, market_ticker: str) -> str:
    """The key of the view of ``market_ticker`` in session ``session_id``: the one way
    every step, table and file names a view."""
    return f"{int(session_id)}/{market_ticker}"


def session_of_key(key: str) -> int:
    """The session of a view key (:func:`view_key`)."""
    return int(key.split("/", 1)[0])


def non_finite(view: MarketSessionView) -> tuple[int | None, str] | None:
    """``(sequence number, reason)`` if a feature or statistic of ``view`` is NaN or
    infinite, else None. Cleaning bounds every input so this should never happen; a view
    that slips through would poison training (NaN logits), so it is rejected by name."""
    bad_rows, bad_columns = np.nonzero(~np.isfinite(view.features))
    if len(bad_rows):
        step, column = int(bad_rows[0]), int(bad_columns[0])
        return (
            int(view.sequence_numbers[step]),
            f"feature {FEATURE_NAMES[column]} is {view.features[step, column]} at step {step} "
            f"({len(bad_rows)} non-finite values): view rejected",
        )
    for name, value in view.statistics().items():
        if not math.isfinite(value):
            return None, f"statistic {name} is {value}: view rejected"
    return None
