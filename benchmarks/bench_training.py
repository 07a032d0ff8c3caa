"""PPO training speed on our environment against CartPole-v1, same hyperparameters.

Trains PPO (the plan's defaults: n_steps 2048, batch 64, 10 epochs, MLP 64x64, one torch
thread) for the same number of timesteps on MarketAgnosticKalshiEnv over simulated views
and on CartPole-v1, in the same process, and prints timesteps/s for each and the ratio
(target at least 0.9x: the environment must never be the bottleneck).

    python benchmarks/bench_training.py [--timesteps 16384]
"""

from __future__ import annotations

import argparse
import time

import gymnasium
import torch
from stable_baselines3.common.vec_env import DummyVecEnv

from kalshi_pipeline.env import BalancedSampler, MarketAgnosticKalshiEnv
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session
from kalshi_pipeline.training.config import TrainingConfig
from kalshi_pipeline.training.phases import new_model


def timesteps_per_second(make_env, timesteps: int, config: TrainingConfig) -> float:
    model = new_model(config, DummyVecEnv([make_env]))
    model.learn(config.hyperparameters.n_steps)  # warm-up: first rollout and update
    started = time.perf_counter()
    model.learn(timesteps, reset_num_timesteps=False)
    return timesteps / (time.perf_counter() - started)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--timesteps", type=int, default=16_384)
    args = parser.parse_args()
    config = TrainingConfig()
    torch.set_num_threads(config.torch_threads)
    views = [
        v
        for session_id in (1, 2)
        for v in build_market_views(
            simulate_session(
                session_id, 4, SimulatorConfig(population=Population.TWO_CLASS, markets=40)
            )
        )
    ]

    def ours():
        return MarketAgnosticKalshiEnv(views, config.env, BalancedSampler(len(views)))

    def cartpole():
        return gymnasium.make("CartPole-v1")

    kalshi = timesteps_per_second(ours, args.timesteps, config)
    pole = timesteps_per_second(cartpole, args.timesteps, config)
    print(f"PPO on MarketAgnosticKalshiEnv {kalshi:>9,.0f} timesteps/s")
    print(f"PPO on CartPole-v1             {pole:>9,.0f} timesteps/s")
    print(f"ratio                          {kalshi / pole:>9.2f}x   (target >= 0.9x)")


if __name__ == "__main__":
    main()
