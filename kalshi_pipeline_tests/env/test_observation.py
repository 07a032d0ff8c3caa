"""The observation (``kalshi_pipeline.env.observation``): names, the view's features first,
then the portfolio's rows at the scales of the env's docstring table, clipped to the bound.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kalshi_pipeline.env import OBSERVATION_NAMES
from kalshi_pipeline.env.execution import Fill
from kalshi_pipeline.env.observation import OBSERVATION_BOUND, OBSERVATION_SIZE, clip, observe
from kalshi_pipeline.env.portfolio import Portfolio
from kalshi_pipeline.market.features import FEATURE_NAMES, NUM_FEATURES

SCALES = {"starting_cash_cents": 10_000, "order_size": 10, "max_position": 100}


def row(obs: np.ndarray, name: str) -> float:
    return float(obs[OBSERVATION_NAMES.index(name)])


def test_the_names_are_the_features_then_the_portfolio_and_the_last_order():
    assert OBSERVATION_SIZE == len(OBSERVATION_NAMES) == 52
    assert OBSERVATION_NAMES[:NUM_FEATURES] == FEATURE_NAMES
    assert OBSERVATION_NAMES[NUM_FEATURES] == "cash_ratio"
    assert OBSERVATION_NAMES[-1] == "steps_since_fill"


@pytest.mark.parametrize(("x", "clipped"), [(7.5, 5.0), (-9.0, -5.0), (1.25, 1.25)])
def test_clip_keeps_a_value_within_the_bound(x, clipped):
    assert clip(x) == clipped
    assert abs(clip(x)) <= OBSERVATION_BOUND


def test_a_flat_portfolio_shows_its_cash_and_no_position():
    features = np.linspace(-1, 1, NUM_FEATURES, dtype=np.float32)
    obs = observe(features, Portfolio(10_000), t=0, mark=0, **SCALES)
    assert obs.dtype == np.float32 and obs.shape == (52,)
    assert obs[:NUM_FEATURES].tobytes() == features.tobytes()
    assert (row(obs, "cash_ratio"), row(obs, "buying_power"), row(obs, "exposure")) == (1, 1, 0)
    assert row(obs, "steps_since_fill") == pytest.approx(math.log1p(1) / 5)


def test_a_held_position_shows_its_entry_edge_and_holding_time():
    portfolio = Portfolio(10_000)
    portfolio.apply(Fill(contracts=10, cash_change_cents=-468, fees_cents=18,
                         notional_cents=450, opened_notional_cents=450), t=2)  # fmt: skip
    portfolio.revalue(portfolio.value_at(yes_bid=40, no_bid=55))
    obs = observe(np.zeros(NUM_FEATURES, np.float32), portfolio, t=5, mark=40, **SCALES)
    assert row(obs, "signed_position") == pytest.approx(0.1)
    assert row(obs, "average_entry") == pytest.approx(0.45)
    assert row(obs, "entry_edge") == pytest.approx(-0.05)
    assert row(obs, "unrealized_pnl") == pytest.approx((400 - 450) / 1_000)
    assert row(obs, "holding_time") == pytest.approx(math.log1p(3) / 5)
    assert row(obs, "fees_paid") == pytest.approx(18 / 1_000)
    assert row(obs, "steps_since_fill") == pytest.approx(math.log1p(3) / 5)


def test_unbounded_ratios_are_clipped_to_the_bound():
    portfolio = Portfolio(100)  # 100 cents to start, then a windfall
    portfolio.cash = portfolio.value = 100_000
    obs = observe(np.zeros(NUM_FEATURES, np.float32), portfolio, t=0, mark=0,
                  starting_cash_cents=100, order_size=10, max_position=100)  # fmt: skip
    assert row(obs, "cash_ratio") == OBSERVATION_BOUND
    assert row(obs, "total_return") == OBSERVATION_BOUND
