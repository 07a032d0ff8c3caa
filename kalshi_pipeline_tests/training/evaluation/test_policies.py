"""The baselines: the imbalance rule's and the quote rule's decisions, and the policies an
evaluation plays."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from stable_baselines3 import A2C, PPO

from kalshi_pipeline.env import EnvConfig, MarketAgnosticKalshiEnv
from kalshi_pipeline.env.execution import BUY_NO, BUY_YES, HOLD, SELL_NO, SELL_YES
from kalshi_pipeline.env.observation import (
    MAKER_OBSERVATION_NAMES,
    OBSERVATION_NAMES,
    OBSERVATION_SIZE,
)
from kalshi_pipeline.market.features import FEATURE_NAMES
from kalshi_pipeline.training.evaluation import (
    baseline_policies,
    imbalance_policy,
    model_policy,
    quote_policy,
    rollout,
)

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
    with_quotes = baseline_policies(untrained_model, quote_rule=True)
    assert list(with_quotes) == ["model", "random", "hold", "imbalance_rule", "quote_rule"]


def maker_observation(imbalance: float, signed_position: float = 0.0, **orders: float):
    """A maker-mode observation: no resting order unless ``orders`` gives one's rows,
    e.g. ``bid_order_queue=0.4, bid_order_distance=0.0``."""
    obs = np.zeros(OBSERVATION_SIZE, dtype=np.float32)
    obs[MAKER_OBSERVATION_NAMES.index("top_imbalance")] = imbalance
    obs[MAKER_OBSERVATION_NAMES.index("signed_position")] = signed_position
    for side in ("bid", "ask"):
        obs[MAKER_OBSERVATION_NAMES.index(f"{side}_order_queue")] = -1.0
    for name, value in orders.items():
        obs[MAKER_OBSERVATION_NAMES.index(name)] = value
    return obs


def test_the_quote_rule_quotes_the_imbalance_and_keeps_its_place_in_the_queue():
    rule = quote_policy(threshold=0.5)

    # Flat, no order: quote on the side the top of the book leans to, if it leans enough.
    assert rule(maker_observation(0.8)) == BUY_YES
    assert rule(maker_observation(-0.8)) == BUY_NO
    assert rule(maker_observation(0.3)) == HOLD
    assert rule(maker_observation(-0.3)) == HOLD
    # An order already at the touch keeps its place: resting (any queue) or in flight (1).
    at_bid = {"bid_order_distance": 0.0, "bid_order_queue": 0.4, "bid_order_age": 0.2}
    assert rule(maker_observation(0.8, **at_bid)) == HOLD
    assert rule(maker_observation(0.8, bid_order_distance=0.0, bid_order_queue=1.0)) == HOLD
    assert rule(maker_observation(0.8, bid_order_distance=0.0, bid_order_queue=0.0)) == HOLD
    assert rule(maker_observation(-0.8, ask_order_distance=0.0, ask_order_queue=0.7)) == HOLD
    # The touch moved away from it (a better bid came in): quote again at the touch.
    assert rule(maker_observation(0.8, bid_order_distance=0.01, bid_order_queue=0.0)) == BUY_YES
    assert rule(maker_observation(-0.8, ask_order_distance=0.02, ask_order_queue=0.5)) == BUY_NO
    # An order on the other book does not count for this one.
    assert rule(maker_observation(0.8, ask_order_distance=0.0, ask_order_queue=0.2)) == BUY_YES
    # Holding: quote to close, whatever the imbalance, unless that order rests at the touch.
    assert rule(maker_observation(0.9, signed_position=0.1)) == SELL_YES
    assert rule(maker_observation(-0.9, signed_position=-0.1)) == SELL_NO
    closing_yes = {"ask_order_distance": 0.0, "ask_order_queue": 0.3}
    assert rule(maker_observation(0.9, signed_position=0.1, **closing_yes)) == HOLD
    assert rule(maker_observation(0.0, signed_position=-0.1, bid_order_queue=0.0)) == HOLD
    assert rule(maker_observation(0.0, signed_position=0.1, ask_order_distance=0.03,
                                  ask_order_queue=0.3)) == SELL_YES  # fmt: skip


def test_the_quote_rule_rests_orders_that_fill_on_a_simulated_session(views):
    """In maker mode, on simulated sessions with a trade tape, the rule sends orders, a few
    of which others trade into: maker fills, paying the maker fee."""
    maker = EnvConfig(execution="maker")
    episodes = [rollout(quote_policy(), view, maker, name="quote_rule") for view in views]

    sent = sum(sum(e.action_counts[1:]) for e in episodes)
    assert sent > 0
    assert sum(e.contracts_traded for e in episodes) > 0
    assert sum(e.fees_cents for e in episodes) > 0
    # It keeps an order at the touch rather than sending one at every step it leans.
    assert sent < sum(e.length for e in episodes) // 4


@pytest.mark.parametrize(
    ("algorithm", "execution"), [(PPO, "taker"), (PPO, "maker"), (A2C, "taker")]
)
def test_a_model_acts_as_its_predict_does_bit_for_bit(views, algorithm, execution):
    """The model's policy computes the action itself (not through ``predict``), and it is
    the action ``predict(obs, deterministic=True)`` gives, on the env's observations, on
    wild ones, and where two actions' logits are equal (the first of them)."""
    env = MarketAgnosticKalshiEnv(views, EnvConfig(execution=execution))
    model = algorithm("MlpPolicy", env, seed=3, device="cpu")
    with torch.no_grad():  # weights far from their start, and actions 1 and 3 tied
        for parameter in model.policy.parameters():
            parameter.mul_(8.0)
        model.policy.action_net.weight[3] = model.policy.action_net.weight[1]
        model.policy.action_net.bias[3] = model.policy.action_net.bias[1]
    model.policy.set_training_mode(True)  # as a training callback may leave it
    rng = np.random.default_rng(0)
    observations = [env.reset(seed=0)[0]]
    for _ in range(200):
        observations.append(env.step(int(rng.integers(5)))[0])
    size = env.observation_space.shape
    observations += list((rng.standard_normal((300, *size)) * 4).astype(np.float32))
    expected = [int(model.predict(obs, deterministic=True)[0]) for obs in observations]
    model.predict = None  # the policy must not call it

    acted = [model_policy(model)(obs) for obs in observations]

    assert acted == expected
    assert len(set(expected)) >= 3 and 1 in expected and 3 not in expected
