"""One simulated market: its traits as a record, and the fair-price path's bounds."""

from __future__ import annotations

import json

import numpy as np

from kalshi_pipeline.sources.simulated_market import MarketTraits, SimulatedMarketKind, _fair_path
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, ticker_pool


def test_market_traits_round_trip_through_json_and_name_their_kind():
    pool = ticker_pool(3, SimulatorConfig(population=Population.TWO_CLASS, markets=20))
    for traits in pool:
        assert MarketTraits.from_json(json.loads(json.dumps(traits.to_json()))) == traits
        expected = SimulatedMarketKind.LIQUID if traits.liquid else SimulatedMarketKind.ILLIQUID
        assert traits.kind is expected
    assert {traits.kind for traits in pool} == {"liquid", "illiquid"}


def test_a_price_pushed_towards_a_bound_creeps_up_to_it_and_never_folds_back():
    # Steady upward moves from near the top: a fold at the bound would turn them into a
    # fall (and invert the signal there); the price only rises, by ever smaller steps.
    fair = _fair_path(90.0, np.full(400, 1.0))

    steps = np.diff(fair)
    assert (steps >= 0).all() and fair.max() <= 98.5 and fair[-1] > 98.0
    assert (np.diff(steps[fair[1:] < 98.5]) <= 1e-12).all()
    # Zero-mean moves leave the price where it was on average (the control's martingale).
    rng = np.random.default_rng(0)
    ends = [_fair_path(80.0, rng.normal(0, 3.0, 50))[-1] for _ in range(4000)]
    assert abs(np.mean(ends) - 80.0) < 0.3
