"""The baselines: the imbalance rule's decisions, and the policies an evaluation plays."""

from __future__ import annotations

import numpy as np

from kalshi_pipeline.env.execution import BUY_NO, BUY_YES, HOLD, SELL_NO, SELL_YES
from kalshi_pipeline.env.observation import OBSERVATION_NAMES, OBSERVATION_SIZE
from kalshi_pipeline.market.features import FEATURE_NAMES
from kalshi_pipeline.training.evaluation import baseline_policies, imbalance_policy

IMBALANCE = FEATURE_NAMES.index("top_imbalance")
SPREAD = FEATURE_NAMES.index("spread")
SIGNED_POSITION = OBSERVATION_NAMES.index("signed_position")


def observation(imbalance: float, spread_cents: float, signed_position: float = 0.0):
    obs = np.zeros(OBSERVATION_SIZE, dtype=np.float32)
    obs[IMBALANCE] = imbalance
    obs[SPREAD] = spread_cents / 100
    obs[SIGNED_POSITION] = signed_position
    return obs


def test_the_imbalance_rule_trades_strong_imbalances_on_tight_books():
    rule = imbalance_policy(threshold=0.5, max_spread_cents=3)

    # Flat: buy the side the top of the book leans to, only when the lean is strong.
    assert rule(observation(0.8, spread_cents=2)) == BUY_YES
    assert rule(observation(-0.8, spread_cents=2)) == BUY_NO
    assert rule(observation(0.8, spread_cents=3)) == BUY_YES  # 3c is still tight
    assert rule(observation(0.3, spread_cents=1)) == HOLD
    assert rule(observation(-0.3, spread_cents=1)) == HOLD
    # A wide spread would eat the edge.
    assert rule(observation(0.8, spread_cents=10)) == HOLD
    assert rule(observation(-0.8, spread_cents=4)) == HOLD
    # Holding: get out once the imbalance turns against the position, else keep it.
    assert rule(observation(-0.2, spread_cents=2, signed_position=0.1)) == SELL_YES
    assert rule(observation(0.9, spread_cents=2, signed_position=0.1)) == HOLD
    assert rule(observation(0.2, spread_cents=2, signed_position=-0.1)) == SELL_NO
    assert rule(observation(-0.9, spread_cents=2, signed_position=-0.1)) == HOLD
    assert rule(observation(-0.9, spread_cents=20, signed_position=0.1)) == SELL_YES


def test_baseline_policies_add_the_phase_two_model_when_given(untrained_model):
    assert "phase2" not in baseline_policies(untrained_model)
    policies = baseline_policies(untrained_model, phase2_model=untrained_model)
    assert list(policies) == ["model", "phase2", "random", "hold", "imbalance_rule"]
