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

from kalshi_pipeline.sources.raw import LEVELS

# The parameter vector's entries (float64), set by kalshi_population.market_parameters.
(
    P_PRESENCE, P_SWITCH, P_MAKER_SPREAD, P_BG_SPREAD, P_DEPTH, P_GAP, P_LOG_SIZE,
    P_MAKER_SIZE, P_TRADE, P_TRADE_MORE, P_REQUOTE_BETWEEN, P_CANCEL_FIRST, P_POSITION,
    P_SIGNAL, P_DRIFT, P_NOISE, P_PERSIST, P_SENSITIVITY, P_CONTROL_SCALE, P_GAP_MS,
    P_TRADE_GAP_MS, P_REFRESH_MORE, P_DURATION_MS, P_RESNAPSHOT_MS, P_START, P_ROUND,
    P_TRADE_LOG_SIZE, P_TRADE_SIGMA,
) = range(28)  # fmt: skip
N_PARAMETERS = 28
YES, NO = 0, 1
# Event buffer columns; a snapshot event has level -1.
E_OFFSET, E_LEVEL, E_OLD, E_NEW = range(4)
# Trade buffer columns.
T_EVENT, T_OFFSET, T_YES_PRICE, T_COUNT, T_TAKER_YES = range(5)
# Steps one burst can take at most (trades with re-quotes between, maker, background).
MAX_BURST_STEPS = 12 * 5 + 4 + 9
# Sizes resting orders are snapped to (contracts): recorded books favour round numbers.
ROUND_SIZES = np.array(
    [1, 2, 5, 10, 20, 25, 50, 100, 150, 200, 250, 300, 400, 500, 750, 1000, 1500, 2000,
     2500, 3000, 5000, 10000, 20000, 25000, 50000, 100000], dtype=np.float64,
)  # fmt: skip


@numba.njit(cache=True)
def best_price(book: np.ndarray, side: int) -> int:
    """The highest price with resting size on ``side`` (0 when the side is empty)."""
    for price in range(LEVELS, 0, -1):
        if book[side, price - 1] > 0:
            return price
    return 0


@numba.njit(cache=True)
def _resting_size(p: np.ndarray, tilt: float) -> int:
    """A new order's size: log-normal around the market's scale, most often snapped to a
    round number, times the pressure's tilt on the best level."""
    raw = np.exp(p[P_LOG_SIZE] + 0.9 * np.random.standard_normal())
    if np.random.random() < p[P_ROUND]:
        logs = np.abs(np.log(ROUND_SIZES) - np.log(raw))
        raw = ROUND_SIZES[np.argmin(logs)]
    return max(1, int(np.round(raw * tilt)))


@numba.njit(cache=True)
def _tilt(p: np.ndarray, x: float, side: int) -> float:
    """The pressure's tilt of a best level's size: YES bids grow with it, NO bids shrink."""
    sign = 1.0 if side == YES else -1.0
    return np.exp(sign * p[P_SENSITIVITY] * x)


@numba.njit(cache=True)
def _set_level(book, events, fair_out, counts, t, side, price, new, fair) -> None:
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
def _next_time(t: int, mean_ms: float) -> int:
    """The next book change of a burst: at least a millisecond later."""
    return t + 1 + int(np.random.exponential(mean_ms))


@numba.njit(cache=True)
def maker_targets(fair: float, spread: float, position: float) -> tuple[int, int]:
    """The maker's YES bid and NO bid prices for fair price ``fair``: the YES bid about
    ``position`` of the spread below ``fair``, never above it, and the YES ask (100 - the
    NO bid) at least ``spread`` higher and never below ``fair``. 0: no price on a side."""
    width = max(1, int(np.round(spread)))
    bid = min(int(np.round(fair - position * width)), int(np.floor(fair)))
    ask = max(bid + width, int(np.ceil(fair)))
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
    """News at a burst: the signal's drift and noise, or the control's martingale move,
    sized at a 50-cent price and shrinking towards the bounds (as the two-class path)."""
    shock = np.random.standard_normal()
    signal_move = p[P_DRIFT] * x + p[P_NOISE] * shock
    move = signal_move if p[P_SIGNAL] > 0 else p[P_CONTROL_SCALE] * shock
    fair += move * fair * (100.0 - fair) / 2500.0
    return min(max(fair, 1.5), 98.5)


@numba.njit(cache=True)
def _maker_target(book, side, fair, p) -> int:
    yes_price, no_price = maker_targets(fair, p[P_MAKER_SPREAD], p[P_POSITION])
    target = yes_price if side == YES else no_price
    return uncrossed(book, side, target) if target > 0 else 0


@numba.njit(cache=True)
def _maker_add(book, maker, ev, fo, counts, t, side, price, fair, x, p) -> int:
    size = max(1, int(np.round(p[P_MAKER_SIZE] * _tilt(p, x, side))))
    _set_level(book, ev, fo, counts, t, side, price, book[side, price - 1] + size, fair)
    maker[side, 0], maker[side, 1] = price, size
    return _next_time(t, p[P_GAP_MS])


@numba.njit(cache=True)
def _maker_cancel(book, maker, ev, fo, counts, t, side, fair, p) -> int:
    price, size = maker[side, 0], maker[side, 1]
    left = max(book[side, price - 1] - size, 0)
    _set_level(book, ev, fo, counts, t, side, price, left, fair)
    maker[side, 0], maker[side, 1] = 0, 0
    return _next_time(t, p[P_GAP_MS])


@numba.njit(cache=True)
def _maker_side(book, maker, ev, fo, counts, t, side, fair, x, p) -> int:
    """The maker's move on one side at a burst: leave or arrive (presence ``P_PRESENCE``
    in the long run), re-quote to the fair price's target (cancel first or add first), or
    refresh its size. Returns the time of the next book change."""
    on = maker[side, 0] > 0
    u = np.random.random()
    if on and u < p[P_SWITCH] * (1.0 - p[P_PRESENCE]):
        return _maker_cancel(book, maker, ev, fo, counts, t, side, fair, p)
    target = _maker_target(book, side, fair, p)
    if not on:
        if target > 0 and u < p[P_SWITCH] * p[P_PRESENCE]:
            t = _maker_add(book, maker, ev, fo, counts, t, side, target, fair, x, p)
        return t
    if target > 0 and target != maker[side, 0]:
        if np.random.random() < p[P_CANCEL_FIRST]:
            t = _maker_cancel(book, maker, ev, fo, counts, t, side, fair, p)
            target = _maker_target(book, side, fair, p)
            if target > 0:
                t = _maker_add(book, maker, ev, fo, counts, t, side, target, fair, x, p)
            return t
        old_price, old_size = maker[side, 0], maker[side, 1]
        t = _maker_add(book, maker, ev, fo, counts, t, side, target, fair, x, p)
        left = max(book[side, old_price - 1] - old_size, 0)
        _set_level(book, ev, fo, counts, t, side, old_price, left, fair)
        return _next_time(t, p[P_GAP_MS])
    if np.random.random() < 0.3:  # a size refresh at the same price
        price, size = maker[side, 0], max(1, int(np.round(p[P_MAKER_SIZE] * _tilt(p, x, side))))
        total = book[side, price - 1] - maker[side, 1] + size
        _set_level(book, ev, fo, counts, t, side, price, total, fair)
        maker[side, 1] = size
        return _next_time(t, p[P_GAP_MS])
    return t


@numba.njit(cache=True)
def _background_levels(book, maker, side) -> int:
    levels = 0
    for price in range(1, LEVELS + 1):
        if book[side, price - 1] - (maker[side, 1] if maker[side, 0] == price else 0) > 0:
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
        if book[side, price - 1] - (maker[side, 1] if maker[side, 0] == price else 0) > 0:
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
def _background_step(book, maker, ev, fo, counts, t, fair, x, p) -> int:
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
    own = maker[side, 1] if maker[side, 0] == price else 0
    if add <= u < add + cancel and levels > 1:
        size = 0
    else:
        best = price >= best_price(book, side)
        size = _resting_size(p, _tilt(p, x, side) if best else 1.0)
    _set_level(book, ev, fo, counts, t, side, price, own + size, fair)
    return _next_time(t, p[P_GAP_MS])


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
    _set_level(book, ev, fo, counts, t, side, price, book[side, price - 1] - count, after)
    if maker[side, 0] == price:
        maker[side, 1] -= min(count, maker[side, 1])
        if maker[side, 1] == 0:
            maker[side, 0] = 0
    return after


@numba.njit(cache=True)
def _maker_both(book, maker, ev, fo, counts, t, fair, x, p) -> int:
    first = np.random.randint(2)
    t = _maker_side(book, maker, ev, fo, counts, t, first, fair, x, p)
    return _maker_side(book, maker, ev, fo, counts, t, 1 - first, fair, x, p)


@numba.njit(cache=True)
def _burst(book, maker, ev, fo, counts, trades, t, state, p) -> int:
    """One burst from time ``t``: takers (maybe, up to 12, each following the last with
    probability ``P_TRADE_MORE``, the maker re-quoting between them now and then), news,
    the maker's moves and background refreshes. ``state`` holds the fair price and the
    pressure. Returns the first free time after the burst."""
    fair, x = state[0], state[1]
    if np.random.random() < p[P_TRADE]:
        for _ in range(12):
            after = _trade(book, maker, ev, fo, counts, trades, t, fair, p)
            if after < 0:
                break
            fair, t = after, _next_time(t, p[P_TRADE_GAP_MS])
            if np.random.random() >= p[P_TRADE_MORE]:
                break
            if np.random.random() < p[P_REQUOTE_BETWEEN]:
                t = _maker_both(book, maker, ev, fo, counts, t, fair, x, p)
    rho = p[P_PERSIST]
    x = rho * x + np.sqrt(1.0 - rho * rho) * np.random.standard_normal()
    fair = move_fair(fair, x, p)
    t = _maker_both(book, maker, ev, fo, counts, t, fair, x, p)
    t = _background_step(book, maker, ev, fo, counts, t, fair, x, p)
    for _ in range(8):
        if np.random.random() >= p[P_REFRESH_MORE]:
            break
        t = _background_step(book, maker, ev, fo, counts, t, fair, x, p)
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
            tilt = _tilt(p, x, side) if book[side].sum() == 0 else 1.0
            book[side, price - 1] = _resting_size(p, tilt)
            price -= 1 + int(np.random.exponential(p[P_GAP]))
    for side in (YES, NO):
        target = _maker_target(book, side, fair, p)
        if target > 0 and np.random.random() < p[P_PRESENCE]:
            size = max(1, int(np.round(p[P_MAKER_SIZE] * _tilt(p, x, side))))
            book[side, target - 1] += size
            maker[side, 0], maker[side, 1] = target, size


@numba.njit(cache=True)
def run_market(p, burst_ms, seed, capacity):
    """The market's book changes over the session: (events int64[E, 4] with a snapshot row
    first and maybe a reconnect's later, fair price after each event float64[E], trades
    int64[K, 5], snapshot books int64[S, 198], whether ``capacity`` sufficed)."""
    np.random.seed(seed)
    book, maker = np.zeros((2, LEVELS), np.int64), np.zeros((2, 2), np.int64)
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
