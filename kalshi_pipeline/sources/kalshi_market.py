"""One market of the kalshi population, book change by book change (compiled by numba).

The market's book is a *background* ladder of resting orders on each side, wide and slow,
and a *market maker* who, when present on a side, rests one order near the fair price
``F`` (cents, the expected settlement). Time comes in bursts (:mod:`~kalshi_pipeline.
sources.kalshi_population` draws when): each burst may open with takers trading, then
news moves ``F``, the maker re-quotes around it, and the background is refreshed. Every
book change touches one price level of one side, so it is one delta, as recorded Kalshi
books mostly change (about 1.1 deltas per update).

Trades follow the Glosten-Milgrom zero-profit rule, with or without the signal: with best
YES bid ``b`` and best YES ask ``a`` (``100 -`` the best NO bid) and ``b <= F <= a``, the
taker buys YES (lifting the NO bid at ``100 - a``) with probability
``q = (F - b) / (a - b)``, else sells (hitting the YES bid at ``b``), and ``F`` jumps to
the traded price. ``E[F after] = F``, and a resting order filled at its price ``p`` is
worth exactly ``p`` right after the fill: a passive fill carries no edge in the control.
The trade removes its count from the traded level in its own book change (never more
than rests there); the maker's re-quote comes at later book changes.

All draws come from numba's generator, seeded once per market from the market's own numpy
generator, so a market is a function of its seed and parameters.
"""

from __future__ import annotations

import numba
import numpy as np

from kalshi_pipeline.sources.kalshi_book import (
    E_LEVEL,
    E_OFFSET,
    MAX_BURST_STEPS,
    NO,
    P_DEPTH,
    P_DURATION_MS,
    P_GAP,
    P_PERSIST,
    P_PRESENCE,
    P_REFRESH_MORE,
    P_REQUOTE_BETWEEN,
    P_RESNAPSHOT_MS,
    P_START,
    P_TRADE,
    P_TRADE_GAP_MS,
    P_TRADE_LOG_SIZE,
    P_TRADE_MORE,
    P_TRADE_SIGMA,
    P_TRADE_SPREAD,
    P_WIDTH_CHANGE,
    PRESENT,
    PRICE,
    SIZE,
    T_COUNT,
    T_EVENT,
    T_OFFSET,
    T_TAKER_YES,
    T_YES_PRICE,
    WIDTH,
    YES,
    best_price,
    move_fair,
    next_time,
    resting_size,
    set_level,
    tilt,
    uncrossed,
)  # fmt: skip
from kalshi_pipeline.sources.kalshi_quotes import (
    background_anchor,
    background_step,
    maker_moves,
    maker_order_size,
    maker_target,
    maker_width,
    withdraw_stale,
)  # fmt: skip
from kalshi_pipeline.sources.raw import LEVELS

# numba caches this module's machine code by this file's own timestamp, not by the modules
# it calls (https://numba.readthedocs.io, "Cache invalidation"). The digests of those
# modules, checked by kalshi_pipeline_tests/sources/test_kalshi_population.py, change this
# file whenever they change, so no stale code is ever run.
COMPILED_WITH = {"kalshi_book.py": "69381a6f3ae9fc3f", "kalshi_quotes.py": "7ae0600b845c21c5"}


@numba.njit(cache=True)
def _trade_size(p) -> int:
    draw = p[P_TRADE_LOG_SIZE] + p[P_TRADE_SIGMA] * np.random.standard_normal()
    return max(1, int(np.round(np.exp(draw))))


@numba.njit(cache=True)
def _trade(book, maker, ev, fo, counts, trades, t, fair, p) -> float:
    """One taker, by the zero-profit rule: its own book change takes its count from the
    traded level. Returns the fair price after it (the traded price), or -1 for no trade
    (a side is empty, or the quotes do not straddle the fair price)."""
    bid, no_bid = best_price(book, YES), best_price(book, NO)
    if bid == 0 or no_bid == 0 or not (bid <= fair <= 100 - no_bid):
        return -1.0
    ask = 100 - no_bid
    taker_yes = np.random.random() < (fair - bid) / (ask - bid)
    side, price = (NO, no_bid) if taker_yes else (YES, bid)
    count = min(_trade_size(p), book[side, price - 1])
    after = float(ask if taker_yes else bid)
    k = counts[1]
    trades[k, T_EVENT], trades[k, T_OFFSET] = counts[0], t
    trades[k, T_YES_PRICE], trades[k, T_COUNT] = 100 - price if taker_yes else price, count
    trades[k, T_TAKER_YES] = 1 if taker_yes else 0
    counts[1] = k + 1
    set_level(book, ev, fo, counts, t, side, price, book[side, price - 1] - count, after)
    if maker[side, PRICE] == price:
        maker[side, SIZE] -= min(count, maker[side, SIZE])
        if maker[side, SIZE] == 0:
            maker[side, PRICE] = 0
    return after


@numba.njit(cache=True)
def _taker_appetite(book, fair, p) -> float:
    """How readily a taker comes, decided before the side (so the zero-profit rule holds):
    less to a wide book (``P_TRADE_SPREAD / spread``, at most 1) and less to a market
    priced near 0 or 100, where little is left to win (``4 F (100 - F) / 100^2``)."""
    bid, no_bid = best_price(book, YES), best_price(book, NO)
    if bid == 0 or no_bid == 0:
        return 0.0
    return min(1.0, p[P_TRADE_SPREAD] / (100 - no_bid - bid)) * fair * (100.0 - fair) / 2500.0


@numba.njit(cache=True)
def _burst(book, maker, ev, fo, counts, trades, t, state, p) -> int:
    """One burst from time ``t``: takers (maybe, up to 12, each following the last with
    probability ``P_TRADE_MORE``, the maker re-quoting between them now and then), news,
    the maker's moves and background refreshes. ``state`` holds the fair price and the
    pressure. Returns the first free time after the burst."""
    fair, x = state[0], state[1]
    if np.random.random() < p[P_TRADE] * _taker_appetite(book, fair, p):
        for _ in range(12):
            after = _trade(book, maker, ev, fo, counts, trades, t, fair, p)
            if after < 0:
                break
            fair, t = after, next_time(t, p[P_TRADE_GAP_MS])
            if np.random.random() >= p[P_TRADE_MORE]:
                break
            if np.random.random() < p[P_REQUOTE_BETWEEN]:
                t = maker_moves(book, maker, ev, fo, counts, t, fair, x, p)
    rho = p[P_PERSIST]
    x = rho * x + np.sqrt(1.0 - rho * rho) * np.random.standard_normal()
    fair = move_fair(fair, x, p)
    if np.random.random() < p[P_WIDTH_CHANGE]:
        maker[YES, WIDTH] = maker_width(p)
    t = withdraw_stale(book, maker, ev, fo, counts, t, fair, p)
    t = maker_moves(book, maker, ev, fo, counts, t, fair, x, p)
    t = background_step(book, maker, ev, fo, counts, t, fair, x, p)
    for _ in range(8):
        if np.random.random() >= p[P_REFRESH_MORE]:
            break
        t = background_step(book, maker, ev, fo, counts, t, fair, x, p)
    state[0], state[1] = fair, x
    return t


@numba.njit(cache=True)
def _opening_book(book, maker, fair, x, p) -> None:
    """The book at the session's start: a background ladder of ``P_DEPTH`` levels a side
    below its anchor, and the maker on each side with probability ``P_PRESENCE``."""
    for side in (YES, NO):
        price = background_anchor(fair, side, p)
        for _ in range(max(1, int(p[P_DEPTH]))):
            price = uncrossed(book, side, price)
            if price == 0:
                break
            tilted = tilt(p, x, side) if book[side].sum() == 0 else 1.0
            book[side, price - 1] = resting_size(p, tilted)
            price -= 1 + int(np.random.exponential(p[P_GAP]))
    maker[YES, WIDTH] = maker_width(p)
    maker[NO, PRESENT] = 1 if np.random.random() < p[P_PRESENCE] else 0
    for side in (YES, NO):
        target = maker_target(book, maker, side, fair, p)
        if target > 0 and maker[NO, PRESENT] > 0:
            size = maker_order_size(p, x, side)
            book[side, target - 1] += size
            maker[side, PRICE], maker[side, SIZE] = target, size


@numba.njit(cache=True)
def run_market(p, burst_ms, seed, capacity):
    """The market's book changes over the session: (events int64[E, 4] with a snapshot row
    first and maybe a reconnect's later, fair price after each event float64[E], trades
    int64[K, 5], snapshot books int64[S, 198], whether ``capacity`` sufficed)."""
    np.random.seed(seed)
    book, maker = np.zeros((2, LEVELS), np.int64), np.zeros((2, 3), np.int64)
    ev, fo = np.zeros((capacity, 4), np.int64), np.zeros(capacity)
    trades, counts = np.zeros((capacity, 5), np.int64), np.zeros(2, np.int64)
    state = np.array([p[P_START], np.random.standard_normal()])
    _opening_book(book, maker, state[0], state[1], p)
    snaps = [book.ravel().copy()]
    ev[0, E_LEVEL], fo[0], counts[0] = -1, state[0], 1
    t_free, duration, resnapshot = 1, int(p[P_DURATION_MS]), int(p[P_RESNAPSHOT_MS])
    enough = True
    for burst in burst_ms:
        t = max(int(burst), t_free)
        if t >= duration:
            break
        if counts[0] + MAX_BURST_STEPS + 1 > capacity:
            enough = False
            break
        if 0 <= resnapshot <= t:  # a reconnect: the collector stores a fresh snapshot
            ev[counts[0], E_OFFSET], ev[counts[0], E_LEVEL] = t, -1
            fo[counts[0]], counts[0], resnapshot = state[0], counts[0] + 1, -1
            snaps.append(book.ravel().copy())
            t += 1
        t_free = _burst(book, maker, ev, fo, counts, trades, t, state, p)
    n, k = counts[0], counts[1]
    keep = n
    while keep > 1 and ev[keep - 1, E_OFFSET] >= duration:
        keep -= 1
    while k > 0 and trades[k - 1, T_EVENT] >= keep:
        k -= 1
    books = np.zeros((len(snaps), 2 * LEVELS), np.int64)
    for i in range(len(snaps)):
        books[i] = snaps[i]
    return ev[:keep], fo[:keep], trades[:k], books, enough
