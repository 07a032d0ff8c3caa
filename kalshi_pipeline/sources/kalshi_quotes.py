"""The kalshi population's resting orders: a market maker's quotes around the fair price
and a wide background ladder (compiled by numba).

The maker, when present (a share ``P_PRESENCE`` of the time; it comes and goes at bursts,
both sides together), rests one order a side at :func:`~kalshi_pipeline.sources.
kalshi_book.maker_targets` for the width it quotes now, re-quoting (cancel first or add
first, each its own book change) when the fair price moves its target. The background
keeps about ``P_DEPTH`` levels a side at and below its anchor, the targets for the wide
``P_BG_SPREAD``, refreshed one level at a time. Every function records each book change
it makes and returns the time of the next one.
"""

from __future__ import annotations

import numba
import numpy as np

from kalshi_pipeline.sources.kalshi_book import (
    MAX_WITHDRAWN,
    NO,
    P_BG_SPREAD,
    P_CANCEL_FIRST,
    P_DEPTH,
    P_GAP,
    P_GAP_MS,
    P_MAKER_SIZE,
    P_MAKER_SPREAD,
    P_POSITION,
    P_PRESENCE,
    P_SWITCH,
    P_WIDTH_SIGMA,
    PRESENT,
    PRICE,
    SIZE,
    WIDTH,
    YES,
    best_price,
    maker_targets,
    next_time,
    resting_size,
    set_level,
    tilt,
    uncrossed,
)  # fmt: skip
from kalshi_pipeline.sources.raw import LEVELS

# numba caches this module's machine code by this file's own timestamp, not by the modules
# it calls (https://numba.readthedocs.io, "Cache invalidation"). The digests of those
# modules, checked by kalshi_pipeline_tests/sources/test_kalshi_population.py, change this
# file whenever they change, so no stale code is ever run.
COMPILED_WITH = {"kalshi_book.py": "69381a6f3ae9fc3f"}


@numba.njit(cache=True)
def maker_order_size(p, x, side) -> int:
    """The size of a new maker order on ``side``: its usual size tilted by the pressure."""
    return max(1, int(np.round(p[P_MAKER_SIZE] * tilt(p, x, side))))


@numba.njit(cache=True)
def maker_size_at(maker, side, price) -> int:
    """What the maker rests at ``price`` on ``side`` (0 where its order is elsewhere)."""
    return maker[side, SIZE] if maker[side, PRICE] == price else 0


@numba.njit(cache=True)
def maker_target(book, maker, side, fair, p) -> int:
    yes_price, no_price = maker_targets(fair, maker[YES, WIDTH], p[P_POSITION])
    target = yes_price if side == YES else no_price
    return uncrossed(book, side, target) if target > 0 else 0


@numba.njit(cache=True)
def _maker_add(book, maker, ev, fo, counts, t, side, price, fair, x, p) -> int:
    size = maker_order_size(p, x, side)
    set_level(book, ev, fo, counts, t, side, price, book[side, price - 1] + size, fair)
    maker[side, PRICE], maker[side, SIZE] = price, size
    return next_time(t, p[P_GAP_MS])


@numba.njit(cache=True)
def _maker_cancel(book, maker, ev, fo, counts, t, side, fair, p) -> int:
    price, size = maker[side, PRICE], maker[side, SIZE]
    left = max(book[side, price - 1] - size, 0)
    set_level(book, ev, fo, counts, t, side, price, left, fair)
    maker[side, PRICE], maker[side, SIZE] = 0, 0
    return next_time(t, p[P_GAP_MS])


@numba.njit(cache=True)
def _maker_side(book, maker, ev, fo, counts, t, side, fair, x, p) -> int:
    """The maker's move on one side at a burst: withdraw its order if it has left, post
    one if it is there without, re-quote to the fair price's target (cancel first or add
    first), or refresh its size. Returns the time of the next book change."""
    on, present = maker[side, PRICE] > 0, maker[NO, PRESENT] > 0
    if on and not present:
        return _maker_cancel(book, maker, ev, fo, counts, t, side, fair, p)
    target = maker_target(book, maker, side, fair, p)
    if not present or target == 0:
        return t
    if not on:
        return _maker_add(book, maker, ev, fo, counts, t, side, target, fair, x, p)
    if target != maker[side, PRICE]:
        if np.random.random() < p[P_CANCEL_FIRST]:
            t = _maker_cancel(book, maker, ev, fo, counts, t, side, fair, p)
            target = maker_target(book, maker, side, fair, p)
            if target > 0:
                t = _maker_add(book, maker, ev, fo, counts, t, side, target, fair, x, p)
            return t
        old_price, old_size = maker[side, PRICE], maker[side, SIZE]
        t = _maker_add(book, maker, ev, fo, counts, t, side, target, fair, x, p)
        left = max(book[side, old_price - 1] - old_size, 0)
        set_level(book, ev, fo, counts, t, side, old_price, left, fair)
        return next_time(t, p[P_GAP_MS])
    if np.random.random() < 0.3:  # a size refresh at the same price
        price = maker[side, PRICE]
        size = maker_order_size(p, x, side)
        total = book[side, price - 1] - maker[side, SIZE] + size
        set_level(book, ev, fo, counts, t, side, price, total, fair)
        maker[side, SIZE] = size
        return next_time(t, p[P_GAP_MS])
    return t


@numba.njit(cache=True)
def _background_levels(book, maker, side) -> int:
    levels = 0
    for price in range(1, LEVELS + 1):
        if book[side, price - 1] - maker_size_at(maker, side, price) > 0:
            levels += 1
    return levels


@numba.njit(cache=True)
def _background_pick(book, maker, side) -> int:
    """A random price of the background ladder on ``side`` (0 when it is empty)."""
    levels = _background_levels(book, maker, side)
    if levels == 0:
        return 0
    k = np.random.randint(levels)
    for price in range(1, LEVELS + 1):
        if book[side, price - 1] - maker_size_at(maker, side, price) > 0:
            if k == 0:
                return price
            k -= 1
    return 0


@numba.njit(cache=True)
def background_anchor(fair, side, p) -> int:
    """The best price of the background ladder on ``side`` for fair price ``fair``."""
    yes_price, no_price = maker_targets(fair, p[P_BG_SPREAD], p[P_POSITION])
    return max(yes_price if side == YES else no_price, 1)


@numba.njit(cache=True)
def withdraw_stale(book, maker, ev, fo, counts, t, fair, p) -> int:
    """Cancel the background orders the fair price has moved past (a YES bid above it, a
    YES ask, 100 - a NO bid, below it), best first, each its own book change: their
    owners withdraw them, nobody trades at a price the fair value has left behind (at most
    :data:`~kalshi_pipeline.sources.kalshi_book.MAX_WITHDRAWN` a side at a burst)."""
    for side in (YES, NO):
        for _ in range(MAX_WITHDRAWN):
            price = best_price(book, side)
            own = maker_size_at(maker, side, price)
            stale = price > fair if side == YES else 100 - price < fair
            if price == 0 or not stale or book[side, price - 1] == own:
                break
            set_level(book, ev, fo, counts, t, side, price, own, fair)
            t = next_time(t, p[P_GAP_MS])
    return t


@numba.njit(cache=True)
def background_step(book, maker, ev, fo, counts, t, fair, x, p) -> int:
    """One refresh of the background ladder on a random side: add a level at or below the
    fair price's anchor, cancel one, or resize one, keeping about ``P_DEPTH`` levels."""
    side = np.random.randint(2)
    levels = _background_levels(book, maker, side)
    depth = p[P_DEPTH]
    add, cancel = (0.6, 0.1) if levels < depth else (0.1, 0.6) if levels > depth else (0.2, 0.2)
    u = np.random.random()
    if u < add or levels == 0:
        gap = int(np.random.exponential(p[P_GAP])) if np.random.random() < 0.5 else 0
        price = uncrossed(book, side, background_anchor(fair, side, p) - gap)
    else:
        price = _background_pick(book, maker, side)
    if price == 0:
        return t
    own = maker_size_at(maker, side, price)
    if add <= u < add + cancel and levels > 1:
        size = 0
    else:
        best = price >= best_price(book, side)
        size = resting_size(p, tilt(p, x, side) if best else 1.0)
    set_level(book, ev, fo, counts, t, side, price, own + size, fair)
    return next_time(t, p[P_GAP_MS])


@numba.njit(cache=True)
def maker_moves(book, maker, ev, fo, counts, t, fair, x, p) -> int:
    """The maker at a burst: it comes or goes (both sides together; present a share
    ``P_PRESENCE`` of the time in the long run), then moves on each side."""
    u = np.random.random()
    if maker[NO, PRESENT] > 0 and u < p[P_SWITCH] * (1.0 - p[P_PRESENCE]):
        maker[NO, PRESENT] = 0
    elif maker[NO, PRESENT] == 0 and u < p[P_SWITCH] * p[P_PRESENCE]:
        maker[NO, PRESENT] = 1
    first = np.random.randint(2)
    t = _maker_side(book, maker, ev, fo, counts, t, first, fair, x, p)
    return _maker_side(book, maker, ev, fo, counts, t, 1 - first, fair, x, p)


@numba.njit(cache=True)
def maker_width(p) -> int:
    """The width the maker quotes for a while: its usual spread, give or take."""
    return max(
        1, int(np.round(p[P_MAKER_SPREAD] * np.exp(p[P_WIDTH_SIGMA] * np.random.standard_normal())))
    )
