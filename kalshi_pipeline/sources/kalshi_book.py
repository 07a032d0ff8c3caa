"""The kalshi population's book: its parameters, its state and the primitives that change
it (compiled by numba).

A market's book is ``int64[2, 99]``, resting size by side (YES, NO) and price; every
change of one level is one delta, recorded in an event buffer with the fair price after
it (:func:`set_level`). :mod:`~kalshi_pipeline.sources.kalshi_quotes` moves the maker's
and the background's orders, :mod:`~kalshi_pipeline.sources.kalshi_market` runs the
session (``docs/simulator.md`` describes the model).
"""

from __future__ import annotations

import numba
import numpy as np

from kalshi_pipeline.sources.raw import LEVELS

# The parameter vector's entries (float64), set by kalshi_population.market_parameters.
(
    P_PRESENCE, P_SWITCH, P_MAKER_SPREAD, P_BG_SPREAD, P_DEPTH, P_GAP, P_LOG_SIZE,
    P_MAKER_SIZE, P_TRADE, P_TRADE_MORE, P_REQUOTE_BETWEEN, P_CANCEL_FIRST, P_POSITION,
    P_SIGNAL, P_DRIFT, P_NOISE, P_PERSIST, P_SENSITIVITY, P_CONTROL_SCALE, P_GAP_MS,
    P_TRADE_GAP_MS, P_REFRESH_MORE, P_DURATION_MS, P_RESNAPSHOT_MS, P_START, P_ROUND,
    P_TRADE_LOG_SIZE, P_TRADE_SIGMA, P_TRADE_SPREAD, P_RETAIL, P_RETAIL_LOG_SIZE,
    P_WIDTH_SIGMA, P_WIDTH_CHANGE,
) = range(33)  # fmt: skip
N_PARAMETERS = 33
# The maker's state, a row per side: its order's price (0: none) and size; the third
# column holds the width it quotes now (YES row) and whether it is there at all (NO row).
PRICE, SIZE, WIDTH, PRESENT = 0, 1, 2, 2
YES, NO = 0, 1
# Event buffer columns; a snapshot event has level -1.
E_OFFSET, E_LEVEL, E_OLD, E_NEW = range(4)
# Trade buffer columns.
T_EVENT, T_OFFSET, T_YES_PRICE, T_COUNT, T_TAKER_YES = range(5)
# Stale background orders withdrawn a side at a burst, at most.
MAX_WITHDRAWN = 8
# Steps one burst can take at most: trades with re-quotes between, stale orders withdrawn,
# the maker's moves, background refreshes.
MAX_BURST_STEPS = 12 * 5 + 2 * MAX_WITHDRAWN + 4 + 9
# Sizes resting orders are snapped to (contracts): recorded books favour round numbers.
ROUND_SIZES = np.array(
    [1, 2, 5, 10, 20, 25, 50, 100, 200, 250, 300, 400, 500, 1000, 2000, 3000, 5000, 10000,
     20000, 25000, 50000, 100000], dtype=np.float64,
)  # fmt: skip


@numba.njit(cache=True)
def best_price(book: np.ndarray, side: int) -> int:
    """The highest price with resting size on ``side`` (0 when the side is empty)."""
    for price in range(LEVELS, 0, -1):
        if book[side, price - 1] > 0:
            return price
    return 0


@numba.njit(cache=True)
def resting_size(p: np.ndarray, tilt: float) -> int:
    """A new order's size: log-normal around the market's scale, most often snapped to a
    round number, times the pressure's tilt on the best level."""
    scale = p[P_RETAIL_LOG_SIZE] if np.random.random() < p[P_RETAIL] else p[P_LOG_SIZE]
    raw = np.exp(scale + 0.9 * np.random.standard_normal())
    if np.random.random() < p[P_ROUND]:
        logs = np.abs(np.log(ROUND_SIZES) - np.log(raw))
        raw = ROUND_SIZES[np.argmin(logs)]
    return max(1, int(np.round(raw * tilt)))


@numba.njit(cache=True)
def tilt(p: np.ndarray, x: float, side: int) -> float:
    """The pressure's tilt of a best level's size: YES bids grow with it, NO bids shrink."""
    sign = 1.0 if side == YES else -1.0
    return np.exp(sign * p[P_SENSITIVITY] * x)


@numba.njit(cache=True)
def set_level(book, events, fair_out, counts, t, side, price, new, fair) -> None:
    """Set one level (one delta) and record it, unless nothing changes."""
    old = book[side, price - 1]
    if new == old:
        return
    book[side, price - 1] = new
    n = counts[0]
    events[n, E_OFFSET] = t
    events[n, E_LEVEL] = side * LEVELS + price - 1
    events[n, E_OLD] = old
    events[n, E_NEW] = new
    fair_out[n] = fair
    counts[0] = n + 1


@numba.njit(cache=True)
def next_time(t: int, mean_ms: float) -> int:
    """The next book change of a burst: at least a millisecond later."""
    return t + 1 + int(np.random.exponential(mean_ms))


@numba.njit(cache=True)
def maker_targets(fair: float, spread: float, position: float) -> tuple[int, int]:
    """The YES bid and NO bid prices quoting ``spread`` around fair price ``fair``: the
    YES bid about ``position`` of the spread below ``fair`` where the spread allows,
    shifted to fit inside 1..99 otherwise, always with ``bid <= fair <= ask`` (the YES ask
    is 100 - the NO bid). 0: no price on a side (only for a spread over 98 cents)."""
    width = max(1, int(np.round(spread)))
    low, high = int(np.floor(fair)), int(np.ceil(fair))
    bid = min(int(np.round(fair - position * width)), low)
    bid = max(bid, high - width, 1)
    bid = min(bid, 99 - width, low)
    ask = max(bid + width, high)
    if ask == bid:
        ask = bid + 1
    yes_price = bid if 1 <= bid <= LEVELS else 0
    no_price = 100 - ask if 1 <= 100 - ask <= LEVELS else 0
    return yes_price, no_price


@numba.njit(cache=True)
def uncrossed(book: np.ndarray, side: int, price: int) -> int:
    """``price`` on ``side``, lowered so that the book cannot cross (0: no room)."""
    opposite = best_price(book, 1 - side)
    if opposite > 0:
        price = min(price, 99 - opposite)
    return price if price >= 1 else 0


@numba.njit(cache=True)
def move_fair(fair: float, x: float, p: np.ndarray) -> float:
    """News at a burst: the signal's drift and noise, or the control's martingale move.
    A move is sized at a 50-cent price and shrinks to nothing at 1 and 99 cents (it is
    scaled by ``(F - 1)(99 - F) / 49^2``), so the fair price stays inside 1..99 with no
    clip at work: a zero-mean move leaves it a martingale even at the bounds, where the
    traded price may have taken it. (The guard below only holds a single move of more
    than about 24 cents, which the shocks do not reach.)"""
    shock = np.random.standard_normal()
    signal_move = p[P_DRIFT] * x + p[P_NOISE] * shock
    move = signal_move if p[P_SIGNAL] > 0 else p[P_CONTROL_SCALE] * shock
    fair += move * (fair - 1.0) * (99.0 - fair) / 2401.0
    return min(max(fair, 1.0), 99.0)
