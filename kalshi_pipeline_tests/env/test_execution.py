"""The execution model (``kalshi_pipeline.env.execution``), rule by rule on hand-made books.

Books are written as bid levels ``{price_cents: size}``. A NO bid at ``p`` is a YES ask at
``100 - p`` and a YES bid at ``p`` a NO ask at ``100 - p``. Every expected number is worked
out by hand in the comments, with Kalshi's taker fee
``fee(C, P) = ceil(0.07 * C * P/100 * (1 - P/100))`` dollars, i.e.
``ceil(7 * C * P * (100 - P) / 10_000)`` cents, charged once per price level filled.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kalshi_pipeline.env.execution import (
    BUY_NO,
    BUY_YES,
    HOLD,
    SELL_NO,
    SELL_YES,
    Fill,
    execute,
)
from kalshi_pipeline.market.fees import taker_fee_cents


def ladder(levels: dict[int, int]) -> list[tuple[int, int]]:
    """Bid levels as ``execute`` takes them: ``(price, size)``, best (highest) first."""
    return sorted(levels.items(), reverse=True)


def order(
    action: int,
    yes_bids: dict[int, int] | None = None,
    no_bids: dict[int, int] | None = None,
    *,
    position: int = 0,
    cash_cents: int = 100_000,
    order_size: int = 10,
    max_position: int = 100,
    limit_slippage_cents: int = 2,
) -> Fill:
    return execute(
        action,
        position,
        cash_cents,
        ladder(yes_bids or {}),
        ladder(no_bids or {}),
        order_size=order_size,
        max_position=max_position,
        limit_slippage_cents=limit_slippage_cents,
    )


# -- fees ----------------------------------------------------------------------------------
def test_a_fill_pays_the_fee_of_its_contracts_at_their_price():
    # 1 YES at 50c: pays 50 + fee(1, 50) = 2.
    fill = order(BUY_YES, no_bids={50: 5}, order_size=1)
    assert (fill.contracts, fill.fees_cents, fill.cash_change_cents) == (1, 2, -52)


def test_the_fee_is_charged_per_price_level_filled():
    # YES asks 40 (3) and 41 (4). Per level: fee(3, 40) = ceil(5.04) = 6 and
    # fee(4, 41) = ceil(6.7732) = 7, so 13 cents; one fee over the order would be
    # ceil(11.8132) = 12.
    fill = order(BUY_YES, no_bids={60: 3, 59: 4})
    assert fill.fees_cents == 13


@pytest.mark.parametrize(
    ("action", "position"), [(BUY_YES, 0), (SELL_YES, 5), (BUY_NO, 0), (SELL_NO, -5)]
)
def test_an_unfilled_order_costs_nothing(action, position):
    # An empty book: nothing to buy from, no bid to sell the held contracts into.
    fill = order(action, yes_bids={}, no_bids={}, position=position)
    assert (fill.contracts, fill.fees_cents, fill.cash_change_cents) == (0, 0, 0)


def test_hold_does_nothing():
    assert order(HOLD, {40: 10}, {55: 10}, position=5) == Fill()


# -- BUY_YES / BUY_NO ----------------------------------------------------------------------
def test_buy_yes_lifts_the_best_yes_ask():
    # NO bid 60 is a YES ask at 40: 10 * 40 = 400, fee(10, 40) = 17.
    fill = order(BUY_YES, yes_bids={38: 50}, no_bids={60: 20})
    assert fill.contracts == 10
    assert fill.notional_cents == 400
    assert fill.fees_cents == 17
    assert fill.cash_change_cents == -417
    assert fill.average_price_cents == 40


def test_buy_yes_walks_the_asks_up_to_best_ask_plus_slippage():
    # YES asks 40 (3), 41 (4), 42 (5), 43 (100); the limit is 40 + 2 = 42, so 43 is not
    # touched: 12 of 20 fill.
    # Paid 3*40 + 4*41 + 5*42 = 120 + 164 + 210 = 494.
    # Fees fee(3, 40) = ceil(5.04) = 6, fee(4, 41) = ceil(6.7732) = 7,
    # fee(5, 42) = ceil(8.526) = 9: 22.
    fill = order(BUY_YES, no_bids={60: 3, 59: 4, 58: 5, 57: 100}, order_size=20)
    assert (fill.contracts, fill.requested) == (12, 20)
    assert fill.notional_cents == 494
    assert fill.fees_cents == 22
    assert fill.cash_change_cents == -516


def test_buy_yes_with_no_slippage_takes_the_best_ask_only():
    fill = order(BUY_YES, no_bids={60: 3, 59: 4}, limit_slippage_cents=0)
    assert (fill.contracts, fill.notional_cents) == (3, 120)


def test_buy_yes_does_not_jump_a_gap_beyond_the_limit():
    # YES asks 40 (3) and 45 (10): 45 > 40 + 2.
    fill = order(BUY_YES, no_bids={60: 3, 55: 10})
    assert (fill.contracts, fill.notional_cents) == (3, 120)


def test_buy_yes_fills_partly_when_the_displayed_depth_is_short():
    # Only 4 offered at 40: 4 fill, the other 6 are cancelled (not filled later, not paid).
    # 4 * 40 = 160, fee(4, 40) = ceil(6.72) = 7.
    fill = order(BUY_YES, no_bids={60: 4})
    assert (fill.contracts, fill.requested) == (4, 10)
    assert fill.cash_change_cents == -167


def test_buy_yes_on_an_empty_no_side_fills_nothing():
    # YES bids alone offer no YES to buy.
    fill = order(BUY_YES, yes_bids={40: 100}, no_bids={})
    assert (fill.contracts, fill.cash_change_cents, fill.fees_cents) == (0, 0, 0)


def test_buy_no_walks_the_no_asks_formed_by_the_yes_bids():
    # YES bids 30 (5), 29 (5), 27 (50) are NO asks 70, 71, 73; the limit is 72.
    # 5*70 + 5*71 = 705; fee(5, 70) = ceil(7.35) = 8, fee(5, 71) = ceil(7.2065) = 8.
    fill = order(BUY_NO, yes_bids={30: 5, 29: 5, 27: 50}, no_bids={65: 100}, order_size=20)
    assert (fill.contracts, fill.requested) == (-10, 20)
    assert fill.notional_cents == 705
    assert fill.fees_cents == 16
    assert fill.cash_change_cents == -721


def test_buy_no_on_an_empty_yes_side_fills_nothing():
    fill = order(BUY_NO, yes_bids={}, no_bids={60: 100})
    assert (fill.contracts, fill.cash_change_cents, fill.fees_cents) == (0, 0, 0)


# -- SELL_YES / SELL_NO --------------------------------------------------------------------
def test_sell_yes_sells_held_yes_into_the_yes_bids():
    # Holding 15, order 10: 4 at 45 then 6 at 44. 180 + 264 = 444;
    # fee(4, 45) = ceil(6.93) = 7, fee(6, 44) = ceil(10.3488) = 11.
    fill = order(SELL_YES, yes_bids={45: 4, 44: 20}, no_bids={50: 100}, position=15)
    assert fill.contracts == -10
    assert fill.notional_cents == 444
    assert fill.fees_cents == 18
    assert fill.cash_change_cents == 426


def test_sell_yes_sells_no_more_than_is_held():
    # Holding 3: 3 * 45 = 135, fee(3, 45) = ceil(5.1975) = 6.
    fill = order(SELL_YES, yes_bids={45: 100}, position=3)
    assert (fill.contracts, fill.cash_change_cents) == (-3, 129)


def test_sell_yes_walks_down_to_best_bid_minus_slippage():
    # Limit 45 - 2 = 43: 2 at 45, 5 at 43; 42 is not touched.
    fill = order(SELL_YES, yes_bids={45: 2, 43: 5, 42: 9}, position=50)
    assert (fill.contracts, fill.notional_cents) == (-7, 2 * 45 + 5 * 43)


@pytest.mark.parametrize("position", [0, -5], ids=["flat", "short NO"])
def test_sell_yes_without_yes_held_does_nothing(position):
    fill = order(SELL_YES, yes_bids={45: 100}, no_bids={50: 100}, position=position)
    assert (fill.contracts, fill.cash_change_cents, fill.fees_cents) == (0, 0, 0)


def test_sell_no_sells_held_no_into_the_no_bids():
    # Holding 8 NO: 5 at 55, 3 at 54. 275 + 162 = 437;
    # fee(5, 55) = ceil(8.6625) = 9, fee(3, 54) = ceil(5.2164) = 6.
    fill = order(SELL_NO, yes_bids={40: 100}, no_bids={55: 5, 54: 10}, position=-8)
    assert fill.contracts == 8
    assert fill.notional_cents == 437
    assert fill.cash_change_cents == 437 - 15


def test_sell_no_walks_down_to_best_bid_minus_slippage():
    fill = order(SELL_NO, no_bids={55: 1, 54: 1, 52: 50}, position=-50, limit_slippage_cents=1)
    assert (fill.contracts, fill.notional_cents) == (2, 55 + 54)


@pytest.mark.parametrize("position", [0, 5], ids=["flat", "long YES"])
def test_sell_no_without_no_held_does_nothing(position):
    fill = order(SELL_NO, yes_bids={45: 100}, no_bids={50: 100}, position=position)
    assert (fill.contracts, fill.cash_change_cents, fill.fees_cents) == (0, 0, 0)


# -- netting -------------------------------------------------------------------------------
def test_buy_yes_while_short_no_is_selling_no_at_the_no_bid():
    # Holding 10 NO, NO bid 60 (YES ask 40): each YES bought pairs with a NO and the pair
    # pays 100, so the order brings 10 * (100 - 40) = 600, less fee(10, 40) = 17 ...
    fill = order(BUY_YES, no_bids={60: 20}, position=-10)
    assert (fill.contracts, fill.cash_change_cents, fill.fees_cents) == (10, 583, 17)
    # ... exactly what selling the 10 NO at 60 brings (fee(10, 60) = 17 too).
    sold = order(SELL_NO, no_bids={60: 20}, position=-10)
    assert (sold.contracts, sold.cash_change_cents) == (10, 583)


def test_buy_yes_nets_held_no_first_then_opens_yes_with_the_rest():
    # Holding 4 NO: 4 netted bring 4 * 60 = 240, 6 opened cost 6 * 40 = 240,
    # fee(10, 40) = 17 over the level: cash -17, position -4 -> +6.
    fill = order(BUY_YES, no_bids={60: 20}, position=-4)
    assert (fill.contracts, fill.cash_change_cents) == (10, -17)


def test_buy_no_nets_held_yes_first_then_opens_no_with_the_rest():
    # Holding 4 YES, YES bid 30 (NO ask 70): 4 netted bring 4 * 30 = 120, 6 opened cost
    # 6 * 70 = 420, fee(10, 70) = ceil(14.7) = 15: cash -315, position +4 -> -6.
    fill = order(BUY_NO, yes_bids={30: 20}, position=4)
    assert (fill.contracts, fill.cash_change_cents) == (-10, -315)


def test_netting_needs_no_cash():
    # Closing held contracts pays, so it goes through with an empty purse.
    fill = order(BUY_NO, yes_bids={30: 20}, position=10, cash_cents=0)
    assert (fill.contracts, fill.cash_change_cents) == (-10, 10 * 30 - 15)


# -- cash and max_position -----------------------------------------------------------------
def test_a_buy_is_sized_down_to_what_cash_can_pay_fees_included():
    # 500 cents at a YES ask of 50: 10 contracts would cost 500 + fee(10, 50) = 518 > 500;
    # 9 cost 450 + fee(9, 50) = 450 + ceil(15.75) = 466. The fee decides: 9, not 10.
    fill = order(BUY_YES, no_bids={50: 100}, cash_cents=500, order_size=20)
    assert fill.contracts == 9
    assert fill.cash_change_cents == -466


def test_cash_running_out_mid_walk_stops_the_walk():
    # 400 cents. Level 40 (5): 200 + fee(5, 40) = 200 + ceil(8.4) = 209, 191 left.
    # Level 41: 4 cost 164 + ceil(6.7732) = 171 <= 191; 5 would cost 205 + 9 = 214.
    fill = order(BUY_YES, no_bids={60: 5, 59: 10}, cash_cents=400)
    assert fill.contracts == 9
    assert fill.cash_change_cents == -380


def test_a_buy_with_no_cash_fills_nothing():
    fill = order(BUY_NO, yes_bids={30: 20}, cash_cents=0)
    assert (fill.contracts, fill.cash_change_cents) == (0, 0)


def test_a_netting_buy_opens_with_the_cash_it_frees_fees_included():
    # Holding 5 NO and no cash, YES ask 40: the 5 netted bring 5 * 60 = 300; opening k
    # more costs 40 k, and the level's fee is fee(5 + k, 40).
    # k = 6: 300 - 240 - ceil(18.48) = 41 left; k = 7: 300 - 280 - ceil(20.16) = -1.
    fill = order(BUY_YES, no_bids={60: 50}, position=-5, cash_cents=0, order_size=20)
    assert (fill.contracts, fill.cash_change_cents) == (11, 41)


@pytest.mark.parametrize(
    ("action", "position", "filled"),
    [(BUY_YES, 95, 5), (BUY_YES, 100, 0), (BUY_NO, -95, -5), (BUY_NO, -100, 0)],
)
def test_max_position_caps_buys(action, position, filled):
    fill = order(action, {40: 100}, {55: 100}, position=position, max_position=100)
    assert fill.contracts == filled


def test_max_position_counts_from_the_netted_position():
    # Holding 3 NO with max_position 5: buying YES can go from -3 up to +5, 8 contracts.
    fill = order(BUY_YES, no_bids={60: 100}, position=-3, max_position=5)
    assert fill.contracts == 8


# -- liquidity taken is gone ---------------------------------------------------------------
def test_liquidity_taken_is_gone_for_the_rest_of_the_order():
    # An order of 10 over YES asks 40 (3) and 41 (4): 3 at 40 and 4 at 41, never 10 at 40.
    fill = order(BUY_YES, no_bids={60: 3, 59: 4})
    assert fill.contracts == 7
    assert fill.notional_cents == 3 * 40 + 4 * 41
    assert fill.cash_change_cents == -(284 + 6 + 7)


def test_a_sell_takes_each_bid_level_once():
    fill = order(SELL_YES, yes_bids={45: 3, 44: 4}, position=20)
    assert (fill.contracts, fill.notional_cents) == (-7, 3 * 45 + 4 * 44)


# -- a buy takes as much as cash allows, and no more ----------------------------------------
@st.composite
def asks(draw) -> list[tuple[int, int]]:
    prices = draw(st.lists(st.integers(1, 99), min_size=1, max_size=5, unique=True))
    return [(p, draw(st.integers(1, 50))) for p in sorted(prices, reverse=True)]


@settings(max_examples=300, deadline=None)
@given(
    no_bids=asks(),
    position=st.integers(-30, 0),
    cash=st.integers(0, 3_000),
    order_size=st.integers(1, 60),
    slippage=st.integers(0, 5),
)
def test_a_buy_is_the_largest_walk_that_cash_can_pay(no_bids, position, cash, order_size, slippage):
    fill = execute(
        BUY_YES, position, cash, [], no_bids,
        order_size=order_size, max_position=1_000, limit_slippage_cents=slippage,
    )  # fmt: skip

    def cash_needed(contracts: int) -> int | None:
        """Cash a walk of ``contracts`` needs (None: more than the walk offers). Each
        level pays its prices and its own fee; contracts netting held NO bring 100 each."""
        need, left, nettable = 0, contracts, -position
        limit = 100 - no_bids[0][0] + slippage
        for bid, size in no_bids:
            ask = 100 - bid
            if left == 0 or ask > limit:
                break
            take = min(size, left)
            netted = min(take, nettable)
            need += take * ask - netted * 100 + taker_fee_cents(take, ask)
            left, nettable = left - take, nettable - netted
        return need if left == 0 else None

    n = fill.contracts
    assert 0 <= n <= order_size
    assert -fill.cash_change_cents == cash_needed(n) <= cash
    # One more contract is either not wanted, not offered, or more than cash can pay.
    more = cash_needed(n + 1)
    assert n == order_size or more is None or more > cash


def test_a_fill_survives_a_round_trip_through_json():
    fill = order(BUY_YES, yes_bids={}, no_bids={60: 3, 59: 4}, position=-2)
    assert fill.contracts == 7 and fill.opened_notional_cents > 0
    assert Fill.from_json(json.loads(json.dumps(fill.to_json()))) == fill
