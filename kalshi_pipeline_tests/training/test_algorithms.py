"""The SB3 objects a phase trains: vectorised envs in one process or several, and a new
model's configured start."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

from kalshi_pipeline.env import BalancedSampler
from kalshi_pipeline.training.algorithms import make_vec_env, new_model
from kalshi_pipeline_tests.training.test_phases import CONFIG, trainable_views


@pytest.fixture(scope="module")
def views():
    return trainable_views()


def test_several_envs_step_in_one_process_unless_subprocesses_are_asked_for(views):
    config = replace(CONFIG, n_envs=4)
    sampler = lambda: BalancedSampler(len(views))  # noqa: E731

    in_process = make_vec_env(views, config, sampler)
    separate = make_vec_env(views, replace(config, subprocess_envs=True), sampler)
    try:
        assert isinstance(in_process, DummyVecEnv) and in_process.num_envs == 4
        assert isinstance(separate, SubprocVecEnv) and separate.num_envs == 4
        # Each env draws its own views: seeded apart, they do not play in lockstep.
        in_process.seed(0)
        in_process.reset()
        first = in_process.get_attr("episode_counts")
        assert any(not np.array_equal(first[0], other) for other in first[1:])
    finally:
        in_process.close()
        separate.close()


@pytest.mark.parametrize("algorithm", ["ppo", "a2c"])
def test_a_new_model_starts_with_the_configured_action_probabilities(views, algorithm):
    start = (0.9, 0.04, 0.01, 0.04, 0.01)
    config = replace(
        CONFIG,
        algorithm=algorithm,
        hyperparameters=replace(CONFIG.hyperparameters, initial_action_probabilities=start),
    )
    env = make_vec_env(views, config, lambda: BalancedSampler(len(views)))
    observations = []
    obs = env.reset()
    for _ in range(200):
        observations.append(obs[0])
        obs, *_ = env.step(np.array([env.action_space.sample()]))

    def probabilities(model) -> np.ndarray:
        with torch.no_grad():
            batch = torch.as_tensor(np.array(observations))
            return model.policy.get_distribution(batch).distribution.probs.numpy()

    shaped = probabilities(new_model(config, env))
    uniform = probabilities(new_model(replace(config, hyperparameters=CONFIG.hyperparameters), env))
    env.close()
    # In every state, not only on average.
    assert np.abs(shaped - np.array(start)).max() < 0.02
    assert np.abs(uniform - 0.2).max() < 0.02
