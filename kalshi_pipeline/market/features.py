"""The 36 data-only features of the observation: 26 market + 10 temporal, computed once.

:func:`compute_features` turns a session's reconstructed books into a float32 matrix with
one row per row of :class:`~kalshi_pipeline.market.books.SessionBooks` (all markets at
once), using whole-column operations only. Views pass the books at their time steps
(:func:`kalshi_pipeline.market.views.time_steps`), so "event" and "step" below mean such a
row: activity counts book changes, not the deltas they arrived as. Every row depends only
on its own market's rows up to and including it: no value looks ahead, not even at the
session's end; time gaps, activity and momentum are the market's own.

Notation: prices in cents. ``yb`` best YES bid (0 if none), ``nb`` best NO bid,
``ya = 100 - nb`` the YES ask (100 if there is no NO bid: nothing to buy below $1),
``spread = ya - yb``, ``mid = (yb + ya) / 2``; ``bs``/``as`` the sizes at the best YES bid
and at the YES ask (the best NO bid); ``K`` the number of top levels kept (5);
``yes_vol``/``no_vol`` total resting size per side. Receive times that go backwards within
a market are clamped to the latest time seen (``ts``). Windows of n steps reach back at
most to the market's first event. Asks are derived from bids, so the NO-side mirrors
(NO bid = 1 - YES ask, NO ask = 1 - YES bid, NO spread = YES spread, NO mid = 1 - YES mid)
are left out.

=====  ====================  ===========================================================  ==========
index  name                  formula                                                      range
=====  ====================  ===========================================================  ==========
0      yes_bid               yb / 100                                                     [0, 0.99]
1      yes_ask               ya / 100                                                     [0.01, 1]
2      spread                spread / 100 (negative only on a crossed book)               [-1, 1]
3      relative_spread       spread / (yb + ya)                                           [-1, 1]
4      spread_regime         0 if spread <= 3c, 0.5 if <= 10c, else 1                     {0,.5,1}
5      mid                   mid / 100                                                    [0, 1]
6      microprice            (yb * as + ya * bs) / (bs + as) / 100 (mid if both empty)    [0, 1]
7      micro_edge            (microprice - mid) in cents / 20, clipped                    [-1, 1]
8      top_imbalance         (bs - as) / (bs + as), 0 if both empty                       [-1, 1]
9      depth_imbalance       same over the sizes of the top K levels of each side         [-1, 1]
10     volume_imbalance      (yes_vol - no_vol) / (yes_vol + no_vol)                      [-1, 1]
11     log_yes_bid_size      log1p(bs) / 10                                               [0, ~2]
12     log_yes_ask_size      log1p(as) / 10                                               [0, ~2]
13     log_yes_depth         log1p(sum of top-K YES bid sizes) / 12                       [0, ~2]
14     log_no_depth          log1p(sum of top-K NO bid sizes) / 12                        [0, ~2]
15     log_total_volume      log1p(yes_vol + no_vol) / 14                                 [0, ~2]
16     yes_concentration     bs / yes_vol (0 if no YES bids)                              [0, 1]
17     no_concentration      as / no_vol (0 if no NO bids)                                [0, 1]
18     yes_levels            occupied YES levels among the top K / K                      [0, 1]
19     no_levels             occupied NO levels among the top K / K                       [0, 1]
20     taker_fee             Kalshi fee of 1 contract at ya, ceil(7 P (1 - P)) cents / 2  [0, 1]
21     log_ask_depth_2c      log1p(YES ask size within 2c of ya: NO bids >= nb - 2) / 10  [0, ~2]
22     yes_level_gap         (best - second YES bid price) / 100, 0 without a second      [0, 0.98]
23     no_level_gap          the same on the NO bids                                      [0, 0.98]
24     yes_depth_center      (yb - size-weighted mean price of top-K YES bids) / 100      [0, 0.98]
25     no_depth_center       the same on the NO bids                                      [0, 0.98]
26     log_gap               log1p(ms since this market's previous event) / 15            [0, ~1.2]
27     activity_10s          log1p(this market's events in the last 10 s) / 5             [0, ~2]
28     activity_5min         log1p(this market's events in the last 5 min) / 8            [0, ~2]
29     activity_burst        log(rate over 10 s / rate over 5 min) / 4, clipped           [-1, 1]
30     log_mean_gap          log1p(mean of this market's last 20 gaps, ms) / 15           [0, ~1.2]
31     momentum_short        (mid - mid 5 steps ago) / 10, clipped                        [-1, 1]
32     momentum_long         (mid - mid 30 steps ago) / 30, clipped                       [-1, 1]
33     volatility_regime     std of mid changes over the last 20 steps / 5, clipped       [0, 2]
34     price_stability       share of the last 20 steps whose mid did not change          [0, 1]
35     market_age            log1p(seconds since this market's first event) / 10          [0, ~1.2]
=====  ====================  ===========================================================  ==========

Every feature is finite (ratios have guarded denominators; clipped where unbounded).
A market's first event counts as a step whose mid did not change, so the 20-step windows
of ``volatility_regime`` and ``price_stability`` start from it. Crossed books are kept
(and flagged by reconstruction): only there is the spread negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_pipeline.market.books import SessionBooks
from kalshi_pipeline.market.fees import taker_fee_cents
from kalshi_pipeline.market.steps import non_decreasing_times

FEATURE_LAYOUT = "kalshi-market-agnostic-36"
FEATURE_LAYOUT_VERSION = 2  # 2: rows are time steps (views merge a millisecond's events)
MARKET_FEATURES = (
    "yes_bid", "yes_ask", "spread", "relative_spread", "spread_regime", "mid", "microprice",
    "micro_edge", "top_imbalance", "depth_imbalance", "volume_imbalance", "log_yes_bid_size",
    "log_yes_ask_size", "log_yes_depth", "log_no_depth", "log_total_volume",
    "yes_concentration", "no_concentration", "yes_levels", "no_levels", "taker_fee",
    "log_ask_depth_2c", "yes_level_gap", "no_level_gap", "yes_depth_center", "no_depth_center",
)  # fmt: skip
TEMPORAL_FEATURES = (
    "log_gap", "activity_10s", "activity_5min", "activity_burst", "log_mean_gap",
    "momentum_short", "momentum_long", "volatility_regime", "price_stability", "market_age",
)  # fmt: skip
FEATURE_NAMES = MARKET_FEATURES + TEMPORAL_FEATURES
NUM_FEATURES = len(FEATURE_NAMES)
assert NUM_FEATURES == 36

_SHORT_WINDOW_MS, _LONG_WINDOW_MS = 10_000, 300_000
_GAP_STEPS, _MOMENTUM_SHORT, _MOMENTUM_LONG, _VOLATILITY_STEPS = 20, 5, 30, 20
# How far back each temporal feature reads, as columns: one operation looks back for all.
_WINDOWS_MS = np.array([[_SHORT_WINDOW_MS], [_LONG_WINDOW_MS]])
_BACK_STEPS = np.array(
    [[1], [_GAP_STEPS], [_MOMENTUM_SHORT], [_MOMENTUM_LONG], [_VOLATILITY_STEPS - 1]]
)
# The taker fee of one contract at each price (0..100 cents), halved: the feature, by ask.
_HALF_FEE = taker_fee_cents(1, np.arange(101)).astype(np.float64) / 2


def market_of_rows(books: SessionBooks) -> np.ndarray:
    """For each row, the index of its market in ``books.tickers``."""
    offsets = books.market_offsets
    return np.arange(len(books.tickers)).repeat(offsets[1:] - offsets[:-1])


def clamped_times(books: SessionBooks) -> np.ndarray:
    """Receive times made non-decreasing within each market (never looking ahead)."""
    return non_decreasing_times(books.timestamp_ms, market_of_rows(books))


def quotes(books: SessionBooks) -> tuple[np.ndarray, np.ndarray]:
    """YES bid and YES ask in cents per row (an absent ask is 100, an absent bid 0: the
    NO bid of an empty side is 0, so ``100 - best_no_bid`` is 100 there)."""
    return books.best_yes_bid.astype(np.int64), 100 - books.best_no_bid.astype(np.int64)


@dataclass(frozen=True)
class MarketOrigin:
    """What the rows of one market before a window of its rows left behind, for
    computing the features of the window's later rows (the live path,
    :mod:`kalshi_pipeline.market.streaming`): the time of the market's first event and
    the latest time before the window (times are clamped to it).

    Rows of the window are exact from the first whose 30 earlier rows, and every row of
    the 5 minutes before it, are in the window; the live path keeps its windows so."""

    first_ms: int
    latest_ms: int


def compute_features(
    books: SessionBooks,
    *,
    chunk_rows: int = 32_768,
    origin: MarketOrigin | None = None,
    from_row: int = 0,
) -> np.ndarray:
    """float32[N - from_row, 36] for every row of ``books`` from ``from_row`` on (see the
    module table); the rows before it are only read back.

    Rows are computed in chunks: the temporaries of a chunk stay small and hot in cache,
    and each chunk is written to the output in one contiguous block. A row's features
    do not depend on where its chunk starts. ``origin``: the books are a window of one
    market's rows (:class:`MarketOrigin`); the same formulas, with the market's first
    time and earlier times taken from it (the live path asks for the window's new rows
    only, ``from_row``).
    """
    n = len(books)
    out = np.empty((n - from_row, NUM_FEATURES), dtype=np.float32)
    session = _SessionColumns(books, origin)
    block = np.empty((NUM_FEATURES, min(chunk_rows, n - from_row)), dtype=np.float32)
    for start in range(from_row, n, chunk_rows):
        rows = slice(start, min(start + chunk_rows, n))
        width = rows.stop - rows.start
        _market_features(books, session, rows, block[: len(MARKET_FEATURES), :width])
        _temporal_features(session, rows, block[len(MARKET_FEATURES) :, :width])
        out[start - from_row : rows.stop - from_row] = block[:, :width].T
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """num / den, 0 where den is 0."""
    return np.divide(num, den, out=np.zeros(num.shape), where=den != 0)


def _market_features(b: SessionBooks, s: _SessionColumns, rows: slice, out: np.ndarray) -> None:
    yes_ask = s.yes_ask[rows]
    yb, ya = s.yes_bid[rows].astype(np.float64), yes_ask.astype(np.float64)
    both, spread = yb + ya, ya - yb
    mid = both / 2
    bid_size = b.best_yes_bid_size[rows].astype(np.float64)
    ask_size = b.best_no_bid_size[rows].astype(np.float64)
    yes_sizes, no_sizes = b.yes_bid_depth[rows], b.no_bid_depth[rows]
    yes_prices, no_prices = b.yes_bid_prices[rows], b.no_bid_prices[rows]
    yes_depth = yes_sizes.sum(axis=1).astype(np.float64)
    no_depth = no_sizes.sum(axis=1).astype(np.float64)
    yes_vol = b.yes_bid_volume[rows].astype(np.float64)
    no_vol = b.no_bid_volume[rows].astype(np.float64)
    k = yes_sizes.shape[1]
    top = bid_size + ask_size
    microprice = np.where(top > 0, _ratio(yb * ask_size + ya * bid_size, top), mid)
    near = (no_prices > 0) & (no_prices >= no_prices[:, :1].astype(np.int64) - 2)
    near_ask = np.where(near, no_sizes, 0).sum(axis=1).astype(np.float64)

    def level_gap(prices: np.ndarray) -> np.ndarray:
        gap = prices[:, 0].astype(np.int64) - prices[:, 1]
        return np.where(prices[:, 1] > 0, gap, 0) / 100

    def depth_center(prices: np.ndarray, sizes: np.ndarray, total: np.ndarray) -> np.ndarray:
        weighted = _ratio((prices.astype(np.int64) * sizes).sum(axis=1).astype(np.float64), total)
        return np.where(total > 0, prices[:, 0] - weighted, 0) / 100

    columns = (
        yb / 100,  # yes_bid
        ya / 100,  # yes_ask
        spread / 100,  # spread
        spread / both,  # relative_spread
        np.where(spread <= 3, 0.0, np.where(spread <= 10, 0.5, 1.0)),  # spread_regime
        mid / 100,  # mid
        microprice / 100,  # microprice
        np.clip((microprice - mid) / 20, -1, 1),  # micro_edge
        _ratio(bid_size - ask_size, top),  # top_imbalance
        _ratio(yes_depth - no_depth, yes_depth + no_depth),  # depth_imbalance
        _ratio(yes_vol - no_vol, yes_vol + no_vol),  # volume_imbalance
        np.log1p(bid_size) / 10,  # log_yes_bid_size
        np.log1p(ask_size) / 10,  # log_yes_ask_size
        np.log1p(yes_depth) / 12,  # log_yes_depth
        np.log1p(no_depth) / 12,  # log_no_depth
        np.log1p(yes_vol + no_vol) / 14,  # log_total_volume
        _ratio(bid_size, yes_vol),  # yes_concentration
        _ratio(ask_size, no_vol),  # no_concentration
        (yes_sizes > 0).sum(axis=1) / k,  # yes_levels
        (no_sizes > 0).sum(axis=1) / k,  # no_levels
        _HALF_FEE[yes_ask],  # taker_fee
        np.log1p(near_ask) / 10,  # log_ask_depth_2c
        level_gap(yes_prices),  # yes_level_gap
        level_gap(no_prices),  # no_level_gap
        depth_center(yes_prices, yes_sizes, yes_depth),  # yes_depth_center
        depth_center(no_prices, no_sizes, no_depth),  # no_depth_center
    )
    for index, column in enumerate(columns):
        out[index] = column


class _SessionColumns:
    """Session-wide arrays the temporal features look back into (computed once)."""

    def __init__(self, b: SessionBooks, origin: MarketOrigin | None = None) -> None:
        market = market_of_rows(b)
        self.start = b.market_offsets[market]  # each row's market's first row
        if origin is None:
            self.ts = non_decreasing_times(b.timestamp_ms, market)
            self.first_ts = self.ts[self.start]
        else:
            if len(b.tickers) != 1:
                raise ValueError("an origin is for the books of one market")
            # One market's times raised to its latest earlier time, the origin's included.
            self.ts = np.maximum.accumulate(np.maximum(b.timestamp_ms, origin.latest_ms))
            self.first_ts = np.full(len(b), origin.first_ms, dtype=np.int64)
        self.yes_bid, self.yes_ask = quotes(b)
        self.mid_x2 = self.yes_bid + self.yes_ask  # twice the mid: integer, so sums are exact
        n = len(b)
        change_x2 = self.mid_x2 - self.mid_x2[np.maximum(np.arange(-1, n - 1), self.start)]
        # Cumulative sums of the mid's changes, of their squares and of the steps where it
        # did not change, one row each. Integer sums are exact, so a window's sum never
        # depends on rows outside it (float sums would carry rounding from earlier markets).
        sums = np.zeros((3, n + 1), np.int64)
        sums[0, 1:], sums[1, 1:], sums[2, 1:] = change_x2, change_x2**2, change_x2 == 0
        self.window_sums = np.cumsum(sums, axis=1, out=sums)
        self.ts_min = int(self.ts.min()) if n else 0
        span = int(self.ts.max()) - self.ts_min if n else 0
        # One sorted key per (market, time): a window never reaches into another market.
        self.stride = span + _LONG_WINDOW_MS + 1
        self.time_key = market * self.stride + (self.ts - self.ts_min)


def _temporal_features(s: _SessionColumns, rows: slice, out: np.ndarray) -> None:
    index = np.arange(rows.start, rows.stop)
    start, ts, mid_x2 = s.start[rows], s.ts[rows], s.mid_x2[rows]
    # The row index so many steps earlier in the same market (or its first row), for
    # each distance a feature reads back (_BACK_STEPS).
    previous, earlier, short_back, long_back, window_low = np.maximum(index - _BACK_STEPS, start)
    # This market's events in (ts - window, ts], the current one included, for both
    # windows. Search only from the chunk's first market start: a small, cache-resident
    # slice.
    low = int(start[0])
    keys = s.time_key[low : rows.stop]
    found = np.searchsorted(keys, s.time_key[rows] - _WINDOWS_MS, side="right") + low
    recent_short, recent_long = index - found + 1
    # Sums over the market's last _VOLATILITY_STEPS rows (from the cumulative sums).
    change_sum, square_sum, unchanged = s.window_sums[:, index + 1] - s.window_sums[:, window_low]
    count = index - window_low + 1
    gap = ts - s.ts[previous]
    burst = np.log((recent_short / _SHORT_WINDOW_MS) / (recent_long / _LONG_WINDOW_MS))
    mean_gap = (ts - s.ts[earlier]) / np.maximum(index - earlier, 1)
    variance_x4 = np.maximum(square_sum / count - (change_sum / count) ** 2, 0)
    columns = (
        np.log1p(gap) / 15,  # log_gap
        np.log1p(recent_short) / 5,  # activity_10s
        np.log1p(recent_long) / 8,  # activity_5min
        np.clip(burst / 4, -1, 1),  # activity_burst
        np.log1p(mean_gap) / 15,  # log_mean_gap
        np.clip((mid_x2 - s.mid_x2[short_back]) / 20, -1, 1),  # momentum_short
        np.clip((mid_x2 - s.mid_x2[long_back]) / 60, -1, 1),  # momentum_long
        np.clip(np.sqrt(variance_x4) / 2 / 5, 0, 2),  # volatility_regime
        unchanged / count,  # price_stability
        np.log1p((ts - s.first_ts[rows]) / 1000) / 10,  # market_age
    )
    for offset, column in enumerate(columns):
        out[offset] = column
