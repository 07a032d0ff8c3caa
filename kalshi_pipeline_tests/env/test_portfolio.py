"""The portfolio (``kalshi_pipeline.env.portfolio``): how fills move cash, position and the
cost of what is held, and what the position is worth.

The env's tests check the same rules through ``step()``; these pin the bookkeeping itself,
on fills written by hand (a fill's ``contracts`` is signed: + YES, - NO).
"""

from __future__ import annotations

from kalshi_pipeline.env.execution import Fill
from kalshi_pipeline.env.portfolio import NO_ORDER, Portfolio


def test_a_new_portfolio_is_flat_with_its_starting_cash():
    portfolio = Portfolio(10_000)
    assert (portfolio.cash, portfolio.position, portfolio.value, portfolio.peak) == (
        10_000, 0, 10_000, 10_000,
    )  # fmt: skip
    assert (portfolio.last_order, portfolio.last_fill_step) == (NO_ORDER, -1)


def test_opening_then_adding_sums_the_cost_and_keeps_the_opening_step():
    portfolio = Portfolio(10_000)
    portfolio.apply(Fill(contracts=4, cash_change_cents=-185, fees_cents=5,
                         notional_cents=180, opened_notional_cents=180), t=3)  # fmt: skip
    portfolio.apply(Fill(contracts=2, cash_change_cents=-94, fees_cents=2,
                         notional_cents=92, opened_notional_cents=92), t=5)  # fmt: skip
    assert (portfolio.position, portfolio.cost_basis, portfolio.cash) == (6, 272, 9_721)
    assert (portfolio.fees_paid, portfolio.opened_at, portfolio.last_fill_step) == (7, 3, 5)


def test_a_partial_close_keeps_the_average_price_of_the_rest():
    portfolio = Portfolio(10_000)
    portfolio.apply(Fill(contracts=-6, opened_notional_cents=300), t=0)
    portfolio.apply(Fill(contracts=2), t=1)  # 2 NO sold: 4 left at 50 each
    assert (portfolio.position, portfolio.cost_basis, portfolio.opened_at) == (-4, 200, 0)


def test_a_flip_costs_only_what_it_opened_and_restarts_the_holding_time():
    portfolio = Portfolio(10_000)
    portfolio.apply(Fill(contracts=-3, opened_notional_cents=165), t=0)
    portfolio.apply(Fill(contracts=10, opened_notional_cents=290), t=4)
    assert (portfolio.position, portfolio.cost_basis, portfolio.opened_at) == (7, 290, 4)
    portfolio.apply(Fill(contracts=-7), t=6)
    assert (portfolio.position, portfolio.cost_basis) == (0, 0)


def test_the_position_is_worth_the_bid_of_the_side_held():
    portfolio = Portfolio(1_000)
    assert portfolio.value_at(yes_bid=40, no_bid=55) == 1_000
    portfolio.apply(Fill(contracts=5, cash_change_cents=-240), t=0)
    assert portfolio.value_at(yes_bid=40, no_bid=55) == 760 + 5 * 40
    portfolio.apply(Fill(contracts=-8, cash_change_cents=300), t=1)
    assert portfolio.value_at(yes_bid=40, no_bid=55) == 1_060 + 3 * 55


def test_revalue_returns_the_change_and_tracks_the_peak():
    portfolio = Portfolio(1_000)
    assert portfolio.revalue(1_050) == 50
    assert portfolio.revalue(990) == -60
    assert (portfolio.value, portfolio.peak) == (990, 1_050)
