"""Hand-made sessions for the maker-mode tests: books and trades step by step, as a view.

A session is a list of :class:`Step`: the YES and NO bids ``{price: size}`` after the step
and the trades just before it (each ``(yes_price, count, taker_yes)``). :func:`view_of_steps`
writes them as raw events (a snapshot, then one delta per changed level, the step's trades
in the same millisecond) and builds the view the way every view is built, so the env and
the reference read exactly what the pipeline makes. Each book keeps at most 5 levels a
side, so the view's top-5 arrays are the whole book. :func:`random_steps` makes small
random sessions with trades at and around the touch.

``BOOK``, where the hand-made sessions start: YES bids 40 (10) and 39 (5), NO bids 55 (7)
and 54 (4), so the YES ask is 45 and the NO ask 60.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.market.views import MarketSessionView
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot, trade, with_tape

TICKER = "KXTEST-26JAN05"
STEP_MS = 1_000
LEVELS = 5
YES, NO = True, False  # a trade's taker bought YES / bought NO


@dataclass(frozen=True)
class Step:
    """One step: the bids after it and the trades (yes price, count, taker bought YES)
    that came just before its book."""

    yes_bids: dict[int, int]
    no_bids: dict[int, int]
    trades: tuple[tuple[int, int, bool], ...] = field(default=())


BOOK = Step({40: 10, 39: 5}, {55: 7, 54: 4})


def steps_of(*changes: tuple[dict, dict, tuple]) -> list[Step]:
    """``BOOK``, then one step per ``(yes_bids, no_bids, trades)``."""
    return [BOOK, *(Step(yes, no, trades) for yes, no, trades in changes)]


# A BID order of 5 at 40 on BOOK joins behind the 10 shown; then:
QUEUE_USED_UP = steps_of(
    ({40: 3, 39: 5}, {55: 7, 54: 4}, ((40, 10, NO),)),  # exactly the queue: no fill
    ({40: 2, 39: 5}, {55: 7, 54: 4}, ((40, 1, NO),)),  # one more: 1 of 5
    ({40: 1, 39: 5}, {55: 7, 54: 4}, ((40, 1, NO),)),  # 1 more of the 4 left
    ({39: 5}, {55: 7, 54: 4}, ((39, 1, NO),)),  # a trade through 40: the 3 left
)
# 6 join behind it, 4 are cancelled (the probability models move the queue ahead
# part-way, risk_averse keeps it), then a trade of 9 at 40.
CANCELS_THEN_A_TRADE = steps_of(
    ({40: 16, 39: 5}, {55: 7, 54: 4}, ()),
    ({40: 12, 39: 5}, {55: 7, 54: 4}, ()),
    ({40: 3, 39: 5}, {55: 7, 54: 4}, ((40, 9, NO),)),
)


def prob_front(front: float, back: float, cancelled: float, f) -> float:
    """hftbacktest's queue ahead after ``cancelled`` leave a level: the share
    ``f(back) / (f(back) + f(front))`` of them is taken from behind the order."""
    prob = f(back) / (f(back) + f(front))
    return front - (1 - prob) * cancelled + min(back - prob * cancelled, 0)


def step_time_ms(step: int, gap_ms: int = STEP_MS) -> int:
    """Step ``step``'s millisecond in a session whose steps are ``gap_ms`` apart."""
    return T0_MS + gap_ms * (step + 1)


def _changes(before: dict[int, int], after: dict[int, int]) -> list[tuple[int, int, int]]:
    """(price, old size, new size) of each level that changed."""
    return [
        (p, before.get(p, 0), after.get(p, 0))
        for p in sorted(before.keys() | after.keys())
        if before.get(p, 0) != after.get(p, 0)
    ]


def raw_rows(steps: list[Step], times_ms: list[int]) -> tuple[list[dict], list[dict]]:
    """The book rows and the trade rows of ``steps``, step ``s`` at ``times_ms[s]``."""
    first = steps[0]
    book = [snapshot(TICKER, 1, first.yes_bids, first.no_bids, ts=times_ms[0])]
    trades, seq = [], 2
    for s, (step, ts) in enumerate(zip(steps, times_ms, strict=True)):
        for k, (price, count, taker_yes) in enumerate(step.trades):
            side = "yes" if taker_yes else "no"
            trades.append(trade(TICKER, f"t{s}-{k}", price, count, side, ts=ts))
        if s == 0:
            continue
        prev = steps[s - 1]
        changes = [("yes", c) for c in _changes(prev.yes_bids, step.yes_bids)]
        changes += [("no", c) for c in _changes(prev.no_bids, step.no_bids)]
        assert changes, f"step {s} changes no level: it would be no step of its own"
        changes.sort(key=lambda change: change[1][2] > change[1][1])  # decreases first
        for side, (price, old, new) in changes:
            book.append(delta(TICKER, seq, side, price, new, old_size=old, ts=ts))
            seq += 1
    return book, trades


def _shown(prices: np.ndarray, sizes: np.ndarray) -> dict[int, int]:
    return {int(p): int(n) for p, n in zip(prices, sizes, strict=True) if n}


def _top(levels: dict[int, int]) -> dict[int, int]:
    return dict(sorted(levels.items(), reverse=True)[:LEVELS])


def view_of_steps(
    steps: list[Step], *, gap_ms: int | list[int] = STEP_MS, deep: bool = False
) -> MarketSessionView:
    """The view of ``steps``, ``gap_ms`` apart (one gap, or one per step after the first),
    checked to show exactly the books and trades given. Books are at most 5 levels a side
    unless ``deep`` (the view then shows the top 5)."""
    gaps = [gap_ms] * (len(steps) - 1) if isinstance(gap_ms, int) else list(gap_ms)
    times_ms = (T0_MS + STEP_MS + np.concatenate([[0], np.cumsum(gaps)])).astype(int).tolist()
    for s, step in enumerate(steps):
        for levels in (step.yes_bids, step.no_bids):
            assert deep or len(levels) <= LEVELS, (s, levels)
            assert all(v > 0 for v in levels.values()), (s, levels)
        assert max(step.yes_bids, default=0) + max(step.no_bids, default=0) < 100, (s, step)
    book, trades = raw_rows(steps, times_ms)
    (view,) = build_market_views(with_tape(make_session(*book), *trades))
    assert view.timestamps_ms.tolist() == times_ms
    for s, step in enumerate(steps):
        shown = (
            _shown(view.yes_bid_prices[s], view.yes_bid_sizes[s]),
            _shown(view.no_bid_prices[s], view.no_bid_sizes[s]),
        )
        assert shown == (_top(step.yes_bids), _top(step.no_bids)), s
    expected = [(s, p, c, y) for s, step in enumerate(steps) for p, c, y in step.trades]
    got = zip(
        view.trade_steps.tolist(),
        view.trade_yes_prices.tolist(),
        view.trade_counts.tolist(),
        view.trade_taker_yes.tolist(),
        strict=True,
    )
    assert list(got) == expected
    return view


def _random_trades(rng: np.random.Generator, prev: Step) -> tuple[tuple[int, int, bool], ...]:
    """0-2 trades of 1-20 contracts at, one tick through or one tick short of either
    touch of ``prev``."""
    trades = []
    for _ in range(int(rng.choice([0, 0, 1, 1, 2]))):
        taker_yes = bool(rng.integers(2))
        levels = prev.no_bids if taker_yes else prev.yes_bids
        if not levels:
            continue
        price = max(levels) + int(rng.choice([0, 0, 0, 1, -1]))  # on the book it hits
        if 1 <= price <= 98:
            count = int(rng.integers(1, 21))
            trades.append((100 - price if taker_yes else price, count, taker_yes))
    return tuple(trades)


def _mutate(rng: np.random.Generator, yes: dict[int, int], no: dict[int, int]) -> None:
    """One random change: a level's size, a level added or removed (within 5 levels and
    an uncrossed book)."""
    levels, other = (yes, no) if rng.integers(2) else (no, yes)
    kind = rng.choice(["size", "size", "add", "remove"])
    if kind == "size" and levels:
        levels[int(rng.choice(list(levels)))] = int(rng.integers(1, 13))
    elif kind == "remove" and len(levels) > 1:
        del levels[int(rng.choice(list(levels)))]
    elif len(levels) < LEVELS:
        top = min(99 - max(other, default=0), 98)  # above it would cross the other book
        low = max(1, max(levels, default=top) - 5)
        if low <= top:
            levels.setdefault(int(rng.integers(low, top + 1)), int(rng.integers(1, 13)))


def random_steps(rng: np.random.Generator, steps: int) -> list[Step]:
    """A random session of ``steps`` steps: both sides start with 1-4 levels around a
    random mid; before each later step come 0-2 trades at, through or short of a touch
    (one at the touch takes its contracts from the level), then one or two random level
    changes."""
    mid = int(rng.integers(20, 80))
    yes = {mid - k: int(rng.integers(1, 13)) for k in range(1, int(rng.integers(2, 6)))}
    no = {100 - mid - k: int(rng.integers(1, 13)) for k in range(1, int(rng.integers(2, 6)))}
    session = [Step(dict(yes), dict(no))]
    while len(session) < steps:
        trades = _random_trades(rng, session[-1])
        for yes_price, count, taker_yes in trades:
            levels, price = (no, 100 - yes_price) if taker_yes else (yes, yes_price)
            if price in levels:
                levels[price] -= min(count, levels[price])
                if not levels[price]:
                    del levels[price]
        for _ in range(int(rng.integers(1, 3))):
            _mutate(rng, yes, no)
        if (yes, no) != (session[-1].yes_bids, session[-1].no_bids):
            session.append(Step(dict(yes), dict(no), trades))
    return session
