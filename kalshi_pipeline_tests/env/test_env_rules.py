"""The environment's portfolio, reward and episode rules, on hand-made views.

A view is written as its books, one ``(yes_bids, no_bids)`` pair of ``{price: size}`` per
step (:func:`view_of_books`); features are zeros, since execution never reads them. The
rules of ``docs/environment.md`` are checked on small examples worked out by hand, and its
invariants as properties over random books and random action sequences (hypothesis).

The book used by most examples, ``BOOK``: YES bids 40 and 39, NO bids 55 and 54, so the
YES ask is 100 - 55 = 45 and the NO ask 100 - 40 = 60 (spread 5 on both sides).
"""

from __future__ import annotations

import copy
import math
from fractions import Fraction

import numpy as np
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from kalshi_pipeline.env import (
    BUY_NO,
    BUY_YES,
    HOLD,
    SELL_NO,
    SELL_YES,
    EnvConfig,
    MarketAgnosticKalshiEnv,
)
from kalshi_pipeline.market.features import NUM_FEATURES
from kalshi_pipeline.market.views import MarketSessionView
from kalshi_pipeline_tests.factories import T0_MS

Levels = dict[int, int]
Book = tuple[Levels, Levels]  # (YES bids, NO bids)
K = 5


def view_of_books(books: list[Book], *, ticker: str = "TEST-MKT") -> MarketSessionView:
    """A view whose step ``t`` shows ``books[t]``: YES and NO bid levels ``{price: size}``.

    Levels are stored best (highest) first, at most ``K``; a size of 0 is no level.
    """
    steps = len(books)
    prices = {side: np.zeros((steps, K), np.int16) for side in ("yes", "no")}
    sizes = {side: np.zeros((steps, K), np.int64) for side in ("yes", "no")}
    for t, book in enumerate(books):
        for side, levels in zip(("yes", "no"), book, strict=True):
            shown = sorted(((p, s) for p, s in levels.items() if s > 0), reverse=True)
            assert len(shown) <= K, f"step {t}: more than {K} {side} levels"
            for k, (price, size) in enumerate(shown):
                prices[side][t, k], sizes[side][t, k] = price, size
    best_yes_bid, best_no_bid = prices["yes"][:, 0], prices["no"][:, 0]
    return MarketSessionView(
        session_id=1,
        market_ticker=ticker,
        timestamps_ms=T0_MS + 1_000 * np.arange(steps, dtype=np.int64),
        sequence_numbers=np.arange(1, steps + 1, dtype=np.int64),
        best_yes_bid=best_yes_bid,
        best_yes_ask=np.where(best_no_bid > 0, 100 - best_no_bid, 0).astype(np.int16),
        best_no_bid=best_no_bid,
        best_no_ask=np.where(best_yes_bid > 0, 100 - best_yes_bid, 0).astype(np.int16),
        yes_bid_prices=prices["yes"],
        yes_bid_sizes=sizes["yes"],
        no_bid_prices=prices["no"],
        no_bid_sizes=sizes["no"],
        features=np.zeros((steps, NUM_FEATURES), np.float32),
        avg_spread=0.0,
        volatility_score=0.0,
        market_coverage=1.0,
        data_quality_score=1.0,
        activity_bursts=0,
        quiet_periods=0,
    )


def kalshi_fee_cents(contracts: int, price_cents: int) -> int:
    """ceil(0.07 * C * P * (1 - P)) dollars with P in dollars, rounded up to the cent."""
    p = Fraction(price_cents, 100)
    return math.ceil(Fraction(7, 100) * contracts * p * (1 - p) * 100)


def best(levels: Levels) -> int:
    return max((p for p, s in levels.items() if s > 0), default=0)


def value_at(book: Book, cash_cents: int, position: int) -> int:
    """Cash plus the position at the bid of the held side (0 if that side is empty)."""
    yes_bids, no_bids = book
    if position > 0:
        return cash_cents + position * best(yes_bids)
    return cash_cents - position * best(no_bids)


def env_of(books: list[Book], **config) -> MarketAgnosticKalshiEnv:
    env = MarketAgnosticKalshiEnv(view_of_books(books), EnvConfig(**config))
    env.reset(seed=0)
    return env


BOOK: Book = ({40: 50, 39: 50}, {55: 50, 54: 50})
# BUY_YES of 10 on BOOK: 10 * 45 + fee(10, 45) = 450 + ceil(17.325) = 468 cents.
CASH_AFTER_BUY_YES = 10_000 - 468
# BUY_NO of 10 on BOOK: 10 * 60 + fee(10, 60) = 600 + ceil(16.8) = 617 cents.
CASH_AFTER_BUY_NO = 10_000 - 617


# -- position and portfolio value ----------------------------------------------------------
def test_yes_is_a_positive_position_and_no_a_negative_one():
    env = env_of([BOOK] * 3)
    *_, info = env.step(BUY_YES)
    assert (info["position"], info["cash_cents"]) == (10, CASH_AFTER_BUY_YES)

    env = env_of([BOOK] * 3)
    *_, info = env.step(BUY_NO)
    assert (info["position"], info["cash_cents"]) == (-10, CASH_AFTER_BUY_NO)


def test_reset_info_shows_the_starting_portfolio():
    env = MarketAgnosticKalshiEnv(view_of_books([BOOK]), EnvConfig(starting_cash_cents=777))
    _, info = env.reset(seed=0)
    assert (info["portfolio_value_cents"], info["cash_cents"], info["position"]) == (777, 777, 0)


def test_yes_is_valued_at_the_yes_bid_not_the_mid():
    # 10 YES at the YES bid 40 (the mid, 42.5, would give 9,957).
    env = env_of([BOOK] * 3)
    *_, info = env.step(BUY_YES)
    assert info["portfolio_value_cents"] == CASH_AFTER_BUY_YES + 10 * 40 == 9_932


def test_no_is_valued_at_the_no_bid_not_the_mid():
    # 10 NO at the NO bid 55 (the NO mid, 57.5, would give 9,958).
    env = env_of([BOOK] * 3)
    *_, info = env.step(BUY_NO)
    assert info["portfolio_value_cents"] == CASH_AFTER_BUY_NO + 10 * 55 == 9_933


def test_the_position_is_valued_at_the_next_steps_bid():
    # Bought at step 0, valued at step 1's book: YES bid 50, NO bid 45.
    moved: Book = ({50: 10}, {45: 10})
    env = env_of([BOOK, moved, moved])
    *_, info = env.step(BUY_YES)
    assert info["portfolio_value_cents"] == CASH_AFTER_BUY_YES + 10 * 50

    env = env_of([BOOK, moved, moved])
    *_, info = env.step(BUY_NO)
    assert info["portfolio_value_cents"] == CASH_AFTER_BUY_NO + 10 * 45


def test_the_position_is_still_valued_at_the_last_step():
    # A one-step view: the buy ends the episode, and the 10 YES still count at 40.
    env = env_of([BOOK])
    _, reward, terminated, _, info = env.step(BUY_YES)
    assert terminated
    assert info["portfolio_value_cents"] == 9_932
    assert math.isclose(reward, -0.68)

    # Held to the end of a longer view: the last step values it too.
    env = env_of([BOOK] * 2)
    env.step(BUY_NO)
    _, reward, terminated, _, info = env.step(HOLD)
    assert terminated
    assert info["portfolio_value_cents"] == 9_933
    assert reward == 0.0


def test_an_empty_bid_on_the_held_side_values_the_position_at_zero():
    no_yes_bids: Book = ({}, {55: 50})
    env = env_of([BOOK, no_yes_bids])
    _, reward, *_, info = env.step(BUY_YES)
    assert info["portfolio_value_cents"] == CASH_AFTER_BUY_YES
    assert math.isclose(reward, -4.68)

    no_no_bids: Book = ({40: 50}, {})
    env = env_of([BOOK, no_no_bids])
    *_, info = env.step(BUY_NO)
    assert info["portfolio_value_cents"] == CASH_AFTER_BUY_NO


# -- reward --------------------------------------------------------------------------------
def test_a_buy_is_rewarded_at_its_own_step_with_minus_spread_and_fees():
    # One YES at ask 45, worth its bid 40 at once: -(5 + fee(1, 45) = 2) cents.
    env = env_of([BOOK] * 3, order_size=1)
    _, reward, *_ = env.step(BUY_YES)
    assert math.isclose(reward, -(5 + 2) / 100)

    # Ten: -(10 * 5 + fee(10, 45) = 18) cents.
    env = env_of([BOOK] * 3, order_size=10)
    _, reward, *_ = env.step(BUY_YES)
    assert math.isclose(reward, -(50 + 18) / 100)


def test_the_reward_is_the_change_in_value_in_dollars():
    # YES bid 40 -> 50 while holding 10 YES: +100 cents = $1.
    moved: Book = ({50: 10}, {45: 10})
    env = env_of([BOOK, BOOK, moved])
    env.step(BUY_YES)
    _, reward, *_ = env.step(HOLD)
    assert math.isclose(reward, 1.0)


def test_reward_scale_scales_every_reward():
    moved: Book = ({50: 10}, {45: 10})
    rewards = {}
    for scale in (1.0, 10.0):
        env = env_of([BOOK, BOOK, moved], reward_scale=scale)
        rewards[scale] = [env.step(a)[1] for a in (BUY_YES, HOLD, HOLD)]
    assert rewards[1.0] == [-0.68, 1.0, 0.0]
    assert all(
        math.isclose(r, 10 * u, abs_tol=1e-12)
        for r, u in zip(rewards[10.0], rewards[1.0], strict=True)
    )


# -- episode end ---------------------------------------------------------------------------
def test_an_episode_of_a_t_step_view_has_exactly_t_steps():
    env = env_of([BOOK] * 4)
    ends = [env.step(HOLD)[2:4] for _ in range(4)]
    assert ends == [(False, False), (False, False), (False, False), (True, False)]


def test_an_episode_ends_at_once_when_the_portfolio_cannot_trade():
    # 1 cent cannot pay for one contract at 1c plus its 1c fee.
    env = env_of([BOOK] * 10, starting_cash_cents=1)
    _, _, terminated, truncated, _ = env.step(HOLD)
    assert (terminated, truncated) == (True, False)


def test_two_cents_can_still_trade():
    # NO bid 99: a YES ask of 1; 1 + fee(1, 1) = 2 cents buys one contract.
    penny: Book = ({}, {99: 10})
    env = env_of([penny] * 3, starting_cash_cents=2)
    _, _, terminated, _, _ = env.step(HOLD)
    assert not terminated
    _, _, terminated, _, info = env.step(BUY_YES)
    assert not terminated  # cash 0 now, but a contract is held
    assert (info["position"], info["cash_cents"]) == (1, 0)


def test_an_episode_ends_once_flat_with_under_two_cents():
    # YES ask 3: one YES costs 3 + fee(1, 3) = 4, leaving 1 cent. Sold at the YES bid 1 it
    # brings 1 - fee(1, 1) = 0: flat with 1 cent.
    book: Book = ({1: 10}, {97: 10})
    env = env_of([book] * 5, starting_cash_cents=5)
    _, _, terminated, _, info = env.step(BUY_YES)
    assert not terminated
    assert (info["position"], info["cash_cents"]) == (1, 1)
    _, _, terminated, _, info = env.step(SELL_YES)
    assert terminated
    assert (info["position"], info["cash_cents"]) == (0, 1)


# -- invariants over random books and actions ----------------------------------------------
@st.composite
def books(draw, *, two_sided: bool = False) -> Book:
    """Random YES and NO bid ladders (prices 1..99, up to K levels), never crossed."""
    size = st.integers(1, 50) if two_sided else st.integers(0, 50)
    top = 98 if two_sided else 99
    yes_prices = draw(st.lists(st.integers(1, top), min_size=int(two_sided), max_size=K))
    yes = {p: s for p in sorted(set(yes_prices)) if (s := draw(size))}
    # Not crossed: best YES bid + best NO bid <= 99 (the YES ask above the YES bid).
    no_top = 99 - best(yes)
    if no_top < 1:
        return yes, {}
    no_prices = draw(st.lists(st.integers(1, no_top), min_size=int(two_sided), max_size=K))
    no = {p: s for p in sorted(set(no_prices)) if (s := draw(size))}
    return yes, no


@st.composite
def episodes(draw, *, tight: bool = False):
    """Books (with repeats, so that unchanged books occur), actions and a config."""
    pool = draw(st.lists(books(), min_size=1, max_size=4))
    picks = draw(st.lists(st.integers(0, len(pool) - 1), min_size=1, max_size=15))
    actions = draw(st.lists(st.integers(0, 4), min_size=len(picks), max_size=len(picks)))
    config = EnvConfig(
        starting_cash_cents=draw(st.integers(2, 2_000) if tight else st.integers(2, 20_000)),
        order_size=draw(st.integers(1, 20)),
        max_position=draw(st.integers(1, 25) if tight else st.integers(1, 200)),
        limit_slippage_cents=draw(st.integers(0, 5)),
    )
    return [pool[i] for i in picks], actions, config


PROPERTY = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def run(books_: list[Book], actions: list[int], config: EnvConfig):
    """Play ``actions`` until the episode ends; yield ``(t, reward, terminated, info)``."""
    env = MarketAgnosticKalshiEnv(view_of_books(books_), config)
    env.reset(seed=0)
    for t, action in enumerate(actions):
        _, reward, terminated, truncated, info = env.step(action)
        yield t, reward, terminated, info
        if terminated or truncated:
            return


@PROPERTY
@given(
    book=books(two_sided=True),
    buy_yes=st.booleans(),
    data=st.data(),
)
def test_a_round_trip_at_an_unchanged_book_loses_exactly_spread_and_fees(book, buy_yes, data):
    yes_bids, no_bids = book
    if buy_yes:
        buy, sell, ask, bid = BUY_YES, SELL_YES, 100 - best(no_bids), best(yes_bids)
    else:
        buy, sell, ask, bid = BUY_NO, SELL_NO, 100 - best(yes_bids), best(no_bids)
    # Fully filled at the top of the book both ways.
    depth = min(yes_bids[best(yes_bids)], no_bids[best(no_bids)])
    contracts = data.draw(st.integers(1, depth), label="contracts")
    env = env_of([book] * 3, order_size=contracts)

    _, bought, *_ = env.step(buy)
    _, sold, *_, info = env.step(sell)

    loss = contracts * (ask - bid) + kalshi_fee_cents(contracts, ask)
    loss += kalshi_fee_cents(contracts, bid)
    assert info["position"] == 0
    assert info["cash_cents"] == info["portfolio_value_cents"] == 10_000 - loss
    assert math.isclose(bought + sold, -loss / 100, abs_tol=1e-9)


@PROPERTY
@given(episode=episodes())
def test_selling_what_is_not_held_changes_nothing(episode):
    """SELL_YES without YES (SELL_NO without NO) does what HOLD does: no fill, no fee,
    cash and position unchanged, so it cannot raise the portfolio value."""
    books_, actions, config = episode
    env = MarketAgnosticKalshiEnv(view_of_books(books_), config)
    _, info = env.reset(seed=0)
    for action in actions:
        not_held = (action == SELL_YES and info["position"] <= 0) or (
            action == SELL_NO and info["position"] >= 0
        )
        holding = copy.deepcopy(env)
        _, reward, terminated, _, after = env.step(action)
        if not_held:
            # Cash, position and value move exactly as if the agent had held.
            _, hold_reward, _, _, held = holding.step(HOLD)
            assert (after["filled"], after["fees_cents"]) == (0, 0)
            assert after["cash_cents"] == info["cash_cents"]
            assert after["position"] == info["position"]
            assert after["portfolio_value_cents"] == held["portfolio_value_cents"]
            assert reward == hold_reward
        info = after
        if terminated:
            break


@PROPERTY
@given(episode=episodes())
def test_hold_on_an_unchanged_book_earns_exactly_zero(episode):
    books_, actions, config = episode
    # The last book is shown twice: HOLD there (and at the last step) earns exactly 0.
    view_books = books_ + [books_[-1]]
    steps = list(run(view_books, actions[:-1] + [HOLD, HOLD], config))
    assume(len(steps) == len(view_books))  # not ended early for want of cash
    assert [reward for _, reward, _, _ in steps[-2:]] == [0.0, 0.0]


@PROPERTY
@given(episode=episodes())
def test_rewards_sum_to_the_final_value_minus_the_starting_cash(episode):
    books_, actions, config = episode
    total, done = 0.0, False
    for t, reward, terminated, info in run(books_, actions, config):
        total, done = total + reward, terminated
        # Valued at the book the reward is measured on: the next one, the last at the end.
        now = t if t == len(books_) - 1 else t + 1
        value = value_at(books_[now], info["cash_cents"], info["position"])
        assert info["portfolio_value_cents"] == value
    assert math.isclose(
        total, (value - config.starting_cash_cents) / 100, rel_tol=1e-12, abs_tol=1e-9
    )
    assert done  # one action per step: the last one ends the episode


@PROPERTY
@given(episode=episodes(tight=True))
def test_cash_never_goes_negative_and_the_position_stays_within_max_position(episode):
    books_, actions, config = episode
    for *_, info in run(books_, actions, config):
        assert info["cash_cents"] >= 0
        assert abs(info["position"]) <= config.max_position


def test_a_flip_keeps_the_cost_of_the_contracts_opened_not_of_those_closed():
    # Buy 3 NO first; then BUY_YES 10 over YES asks 40 (5) and 42 (10): 3 close the NO
    # at 40, 7 open YES (2 at 40, 5 at 42: 290 cents), an average entry of 290 / 7.
    flip: Book = ({45: 50}, {60: 5, 58: 10})
    env = env_of([({45: 50}, {55: 50}), flip, flip], order_size=3)
    env.step(BUY_NO)
    env.config = EnvConfig(order_size=10)
    obs, *_, info = env.step(BUY_YES)

    assert info["position"] == 7
    average_entry = NUM_FEATURES + 5
    assert math.isclose(obs[average_entry], 290 / 7 / 100, rel_tol=1e-6)
