"""Phase 3's stage before its envs: extra sampling weight where the parent does worst."""

from __future__ import annotations

import numpy as np
import pytest
from stable_baselines3 import PPO

from kalshi_pipeline.env import MarketAgnosticKalshiEnv
from kalshi_pipeline.training.config import profile
from kalshi_pipeline.training.stages import struggle_weights
from kalshi_pipeline_tests.training.test_phases import trainable_views


@pytest.fixture(scope="module")
def views():
    return trainable_views()


def total_reward(model, view) -> float:
    """One deterministic episode of ``model`` on ``view``, played here by hand."""
    env = MarketAgnosticKalshiEnv(view)
    obs, _ = env.reset(seed=0)
    total, done = 0.0, False
    while not done:
        action, _ = model.predict(obs, deterministic=True)
        obs, reward, terminated, truncated, _ = env.step(int(action))
        total += reward
        done = terminated or truncated
    return total


@pytest.mark.parametrize("fraction", [0.4, 0.2])
def test_struggle_weights_go_to_the_views_the_model_does_worst_on(views, fraction):
    # Tiny-budget models may hold everywhere (all tied at 0); an untrained model trades,
    # and loses a different amount on each view.
    model = PPO("MlpPolicy", MarketAgnosticKalshiEnv(views), seed=1, device="cpu")
    rewards = np.array([total_reward(model, view) for view in views])
    assert rewards.min() < rewards.max(), "the views must not all tie"
    config = profile("smoke", struggle_fraction=fraction, struggle_weight=3.0)

    weights = struggle_weights(model, views, config)

    struggling = weights > 0
    assert struggling.sum() == max(1, int(len(views) * fraction))  # the share, rounded down
    assert set(weights[struggling]) == {3.0}
    assert rewards[struggling].max() <= rewards[~struggling].min()


def test_no_struggle_fraction_gives_no_extra_weight(views):
    model = PPO("MlpPolicy", MarketAgnosticKalshiEnv(views), seed=0, device="cpu")
    weights = struggle_weights(model, views, profile("smoke", struggle_fraction=0.0))
    assert not weights.any()
