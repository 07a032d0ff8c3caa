"""Views of simulated sessions and an untrained model, shared by the evaluation's tests."""

from __future__ import annotations

import pytest
from stable_baselines3 import PPO

from kalshi_pipeline.env import MarketAgnosticKalshiEnv
from kalshi_pipeline_tests.training.evaluation.simulated import simulated_views


@pytest.fixture(scope="module")
def views():
    return simulated_views()


@pytest.fixture(scope="module")
def untrained_model(views, tmp_path_factory):
    """A PPO model as the phases save it (``model.save``), loaded back the way users do."""
    path = tmp_path_factory.mktemp("model") / "model.zip"
    PPO("MlpPolicy", MarketAgnosticKalshiEnv(views), n_steps=64, seed=0, device="cpu").save(path)
    return PPO.load(path, device="cpu")
