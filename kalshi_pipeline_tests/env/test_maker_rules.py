"""The maker mode's rules on hand-made views (docs/environment.md, "Maker execution").

Each example is worked out by hand: a view of books (one pair of ``{price: size}`` maps per
step, a second apart) plus trades at chosen steps, an env in maker mode, a script of
actions. The book ``BOOK`` holds YES bids 40 (10 contracts) and 39, NO bids 55 (7) and
54: a BUY_YES rests at YES 40 behind 10 contracts, a BUY_NO at NO 55 behind 7. A taker
buying NO at YES price ``y`` hits the YES bids at ``y``; a taker buying YES at ``y`` hits
the NO bids at ``100 - y``. The comparison with hftbacktest itself is
``test_hftbacktest_differential.py``; the invariants over random sessions,
``test_maker_invariants.py``.
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from kalshi_pipeline.env import (
    BUY_NO,
    BUY_YES,
    HOLD,
    SELL_NO,
    SELL_YES,
    EnvConfig,
    MarketAgnosticKalshiEnv,
)
from kalshi_pipeline.env.observation import MAKER_OBSERVATION_NAMES
from kalshi_pipeline_tests.env.test_env_rules import Book, view_of_books

BOOK: Book = ({40: 10, 39: 5}, {55: 7, 54: 3})
CROSSED_BY_NO: Book = ({40: 10, 39: 5}, {60: 4, 55: 7})  # YES ask 40: crosses a bid at 40
ROW = {name: i for i, name in enumerate(MAKER_OBSERVATION_NAMES)}


def view_with_trades(books: list[Book], trades: list[tuple[int, int, int, bool]]):
    """``books`` with ``trades``: (step, YES price, contracts, taker bought YES)."""
    steps, prices, counts, taker_yes = zip(*trades, strict=True) if trades else ((),) * 4
    return dataclasses.replace(
        view_of_books(books),
        trade_tape=True,
        trade_steps=np.array(steps, np.int32),
        trade_yes_prices=np.array(prices, np.int16),
        trade_counts=np.array(counts, np.int64),
        trade_taker_yes=np.array(taker_yes, np.bool_),
        trade_off_book=np.zeros(len(steps), np.bool_),
    )


def play(books, trades, actions, seed=0, **config):
    """Step a maker-mode env through ``actions`` (HOLD after them); returns the env, every
    fill in order and the last info."""
    settings = {"execution": "maker", "latency_ms": 0} | config
    env = MarketAgnosticKalshiEnv(view_with_trades(books, trades), EnvConfig(**settings))
    env.reset(seed=seed)
    fills, info, done, t = [], {}, False, 0
    while not done:
        action = actions[t] if t < len(actions) else HOLD
        _, _, done, _, info = env.step(action)
        fills += info["fills"]
        t += 1
    return env, fills, info


def sold_yes(step: int, price: int, contracts: int):
    """A taker selling YES (buying NO): it hits the YES bids at ``price``."""
    return (step, price, contracts, False)


def maker_fee(contracts: int, price: int) -> int:
    return math.ceil(0.0175 * contracts * price * (100 - price) / 100 - 1e-9)


# -- the queue ---------------------------------------------------------------------------
def test_trades_that_only_use_up_the_queue_ahead_fill_nothing_and_the_rest_fill_it():
    trades = [sold_yes(1, 40, 10), sold_yes(2, 40, 3), sold_yes(3, 40, 20)]
    _, fills, info = play([BOOK] * 5, trades, [BUY_YES])
    assert [(f.step, f.contracts, f.price_cents, f.side, f.maker) for f in fills] == [
        (2, 3, 40, 1, True),
        (3, 7, 40, 1, True),
    ]
    assert info["position"] == 10
    fees = maker_fee(3, 40) + maker_fee(7, 40)
    assert [f.fee_cents for f in fills] == [maker_fee(3, 40), maker_fee(7, 40)]
    assert info["cash_cents"] == 10_000 - 400 - fees


def test_a_trade_at_another_price_or_on_the_other_book_does_not_move_the_queue():
    trades = [sold_yes(1, 41, 50), (1, 60, 50, True), sold_yes(2, 40, 10)]
    _, fills, _ = play([BOOK] * 4, trades, [BUY_YES])
    assert fills == []  # the 10 at 40 only used up the queue of 10


def test_hold_keeps_the_place_in_the_queue_and_a_new_order_loses_it():
    trades = [sold_yes(1, 40, 6), sold_yes(2, 40, 6)]
    _, kept, _ = play([BOOK] * 4, trades, [BUY_YES, HOLD])
    _, replaced, _ = play([BOOK] * 4, trades, [BUY_YES, BUY_YES])
    assert [(f.order_id, f.contracts) for f in kept] == [(1, 2)]  # 12 traded, 10 ahead
    assert replaced == []  # the new order is behind the whole level again


def test_a_smaller_level_caps_the_queue_ahead():
    smaller = ({40: 4, 39: 5}, {55: 7, 54: 3})
    _, fills, _ = play([BOOK, smaller, smaller], [sold_yes(2, 40, 5)], [BUY_YES])
    assert [(f.step, f.contracts) for f in fills] == [(2, 1)]


# -- full fills ----------------------------------------------------------------------------
def test_a_trade_through_its_price_fills_at_most_its_contracts_and_clears_the_queue():
    # 3 contracts sold at 38 went through the bid at 40: everything ahead of it there was
    # taken, so they fill 3 at 40 and the next trade at 40 fills from the front.
    trades = [sold_yes(1, 38, 3), sold_yes(2, 40, 2)]
    _, fills, _ = play([BOOK] * 4, trades, [BUY_YES])
    assert [(f.step, f.contracts, f.price_cents) for f in fills] == [(1, 3, 40), (2, 2, 40)]


def test_hftbacktests_rule_fills_all_that_is_left_on_any_trade_through():
    _, fills, _ = play([BOOK] * 3, [sold_yes(1, 38, 1)], [BUY_YES], trade_through_fills="all")
    assert [(f.contracts, f.price_cents) for f in fills] == [(10, 40)]


def test_the_other_book_crossing_it_fills_the_whole_order_at_its_price():
    _, fills, _ = play([BOOK, CROSSED_BY_NO, BOOK], [], [BUY_YES])
    assert [(f.step, f.contracts, f.price_cents) for f in fills] == [(1, 10, 40)]


def test_an_ask_order_rests_on_the_no_bids_and_fills_from_takers_buying_yes():
    # A taker buying YES at 45 takes the NO bids at 55, where BUY_NO rests behind 7.
    _, fills, info = play([BOOK] * 3, [(1, 45, 9, True)], [BUY_NO])
    assert [(f.side, f.price_cents, f.contracts) for f in fills] == [(-1, 55, 2)]
    assert info["position"] == -2
    assert info["cash_cents"] == 10_000 - 2 * 55 - maker_fee(2, 55)


# -- latency, post-only, expiry ----------------------------------------------------------
def test_trades_before_the_order_arrives_do_not_count_for_it():
    trades = [sold_yes(1, 40, 30), sold_yes(2, 40, 11)]
    _, fast, _ = play([BOOK] * 3, trades, [BUY_YES], latency_ms=0)
    _, slow, _ = play([BOOK] * 3, trades, [BUY_YES], latency_ms=1_500)
    assert [(f.step, f.contracts) for f in fast] == [(1, 10)]
    assert [(f.step, f.contracts) for f in slow] == [(2, 1)]


def test_an_order_arriving_with_the_next_book_meets_it_after_its_trades():
    # 1,000 ms: it arrives at step 1's millisecond, after step 1's trades and book.
    _, fills, _ = play([BOOK] * 3, [sold_yes(1, 40, 30)], [BUY_YES], latency_ms=1_000)
    assert fills == []


def test_an_order_arriving_at_a_millisecond_of_two_steps_meets_both_steps_trades_first():
    # Steps 1 and 2 share a millisecond (a repaired time makes a step of its own); an
    # order arriving then comes after all of that millisecond's market rows, step 2's
    # trades too, as it comes after step 1's.
    view = view_with_trades([BOOK] * 4, [sold_yes(2, 40, 30)])
    times = view.timestamps_ms.copy()
    times[2] = times[1]
    env = MarketAgnosticKalshiEnv(
        dataclasses.replace(view, timestamps_ms=times),
        EnvConfig(execution="maker", latency_ms=int(times[1] - times[0])),
    )
    env.reset(seed=0)
    fills = [f for action in (BUY_YES, HOLD, HOLD) for f in env.step(action)[4]["fills"]]
    assert fills == []


@pytest.mark.parametrize("seed", range(40))
def test_a_replacement_waits_for_every_cancel_sent_before_it_in_its_slot(seed):
    # Lognormal latencies: order 3's cancel (of order 2) may be quick while order 1's
    # cancel, sent with order 2, is slow. Order 3 waits for both, so the slot never has two
    # orders resting: the trade through fills one order, within max_position.
    lognormal = {"latency_ms": 300, "latency_distribution": "lognormal", "latency_sigma": 2.0}
    _, fills, info = play(
        [BOOK] * 6, [sold_yes(4, 38, 50)], [BUY_YES] * 3, seed=seed, max_position=10, **lognormal
    )
    assert len({f.order_id for f in fills}) <= 1
    assert info["position"] <= 10


def test_an_order_that_would_cross_when_it_arrives_is_cancelled_unfilled():
    _, fills, _ = play([BOOK, CROSSED_BY_NO, BOOK, BOOK], [], [BUY_YES], latency_ms=1_000)
    assert fills == []  # post-only: never rests, so the crossing book does not fill it


def test_an_order_expires_after_its_steps():
    trades = [sold_yes(3, 40, 20)]
    _, expired, _ = play([BOOK] * 5, trades, [BUY_YES], order_expiry_steps=2)
    _, alive, _ = play([BOOK] * 5, trades, [BUY_YES], order_expiry_steps=3)
    assert expired == []
    assert [(f.step, f.contracts) for f in alive] == [(3, 10)]


# -- money ---------------------------------------------------------------------------------
def test_an_unfilled_order_costs_nothing():
    env, fills, info = play([BOOK] * 6, [], [BUY_YES, BUY_NO, HOLD, BUY_YES])
    assert fills == []
    assert (info["cash_cents"], info["position"], info["portfolio_value_cents"]) == (
        10_000,
        0,
        10_000,
    )


def test_a_resting_buy_reserves_its_cash():
    # 500 cents: the YES bid of 10 at 40 reserves 10 * (40 + 1); 90 cents are left, one
    # NO contract at 55 plus its fee (without the reservation: 8 of them).
    trades = [sold_yes(2, 38, 50), (2, 45, 100, True)]
    _, fills, info = play([BOOK] * 4, trades, [BUY_YES, BUY_NO], starting_cash_cents=500)
    assert sorted((f.side, f.contracts) for f in fills) == [(-1, 1), (1, 10)]
    assert info["cash_cents"] >= 0


def test_a_buy_is_sized_to_max_position_counting_what_is_held():
    trades = [sold_yes(1, 38, 50), sold_yes(3, 38, 50)]
    _, fills, info = play([BOOK] * 5, trades, [BUY_YES, HOLD, BUY_YES], max_position=14)
    assert [f.contracts for f in fills] == [10, 4]
    assert info["position"] == 14


def test_a_sell_rests_only_against_contracts_held():
    # Flat: SELL_YES places nothing, so a taker buying YES at 45 fills nothing.
    _, fills, info = play([BOOK] * 3, [(1, 45, 100, True)], [SELL_YES])
    assert fills == []
    assert info["position"] == 0


def test_selling_yes_rests_on_the_no_bids_and_closes_the_position():
    # Buy 10 YES at 40 (a trade through), then SELL_YES rests at NO 55 (YES 45) and a
    # taker buying YES at 45 takes it: 10 contracts held are sold at 45.
    trades = [sold_yes(1, 38, 50), (2, 45, 30, True)]
    _, fills, info = play([BOOK] * 4, trades, [BUY_YES, SELL_YES])
    assert [(f.side, f.price_cents, f.contracts) for f in fills] == [(1, 40, 10), (-1, 55, 10)]
    assert info["position"] == 0
    fees = maker_fee(10, 40) + maker_fee(10, 55)
    assert info["cash_cents"] == 10_000 - 400 + 450 - fees


def test_a_sell_whose_fee_exceeds_what_it_receives_is_sized_to_the_free_cash():
    # Fee multiplier 100: one contract's maker fee at YES 90 is 16 cents, more than the 10
    # a sold NO contract receives there. 5 NO bought at 5 (sized at 5 + 9 fee each) leave
    # 3 cents; SELL_NO at YES 90 would cost 6 a contract, more than that: it is refused.
    high: Book = ({90: 5}, {5: 5})
    trades = [(1, 96, 50, True), sold_yes(3, 89, 50)]  # through NO 5, then through YES 90
    _, fills, info = play(
        [high] * 5, trades, [BUY_NO, HOLD, SELL_NO], starting_cash_cents=70, fee_multiplier=100
    )
    assert [(f.side, f.contracts) for f in fills] == [(-1, 5)]
    assert (info["cash_cents"], info["position"]) == (70 - 25 - 42, -5)  # fee of 5 at 5: 42


@pytest.mark.parametrize(
    "fee_type, charged", [("quadratic", False), ("quadratic_with_maker_fees", True)]
)
def test_the_maker_fee_follows_the_series_fee_type(fee_type, charged):
    _, fills, _ = play([BOOK] * 3, [sold_yes(1, 38, 50)], [BUY_YES], fee_type=fee_type)
    assert fills[0].fee_cents == (maker_fee(10, 40) if charged else 0)


# -- the observation -----------------------------------------------------------------------
def test_the_observation_shows_each_resting_orders_place():
    env = MarketAgnosticKalshiEnv(
        view_with_trades([BOOK] * 4, [sold_yes(1, 40, 4)]),
        EnvConfig(execution="maker", latency_ms=0),
    )
    obs, _ = env.reset(seed=0)
    assert obs[ROW["bid_order_queue"]] == obs[ROW["ask_order_queue"]] == -1
    obs = env.step(BUY_YES)[0]  # at step 1: 4 of the 10 ahead traded
    assert obs[ROW["bid_order_distance"]] == 0
    assert obs[ROW["bid_order_queue"]] == pytest.approx(6 / 10)
    assert obs[ROW["bid_order_age"]] == pytest.approx(math.log1p(1) / 5)
    assert obs[ROW["ask_order_queue"]] == -1


def test_an_order_in_flight_shows_the_whole_level_ahead():
    env = MarketAgnosticKalshiEnv(
        view_with_trades([BOOK] * 4, []), EnvConfig(execution="maker", latency_ms=5_000)
    )
    env.reset(seed=0)
    obs = env.step(BUY_NO)[0]
    assert obs[ROW["ask_order_queue"]] == 1.0
    assert obs[ROW["bid_order_queue"]] == -1


def test_each_mode_names_its_observation_layout_and_rows():
    view = view_with_trades([BOOK] * 2, [])
    taker = MarketAgnosticKalshiEnv(view, EnvConfig())
    maker = MarketAgnosticKalshiEnv(view, EnvConfig(execution="maker"))
    assert taker.observation_names[:46] == maker.observation_names[:46]
    assert maker.observation_names[46:] == (
        "bid_order_distance", "bid_order_queue", "bid_order_age",
        "ask_order_distance", "ask_order_queue", "ask_order_age",
    )  # fmt: skip
    assert taker.observation_layout.endswith("+last-order-v1")
    assert maker.observation_layout.endswith("+resting-orders-v1")
    assert taker.observation_layout.split("+")[0] == maker.observation_layout.split("+")[0]
