"""Raw environment speed: MarketAgnosticKalshiEnv against Gymnasium's CartPole-v1.

Steps the unwrapped environment with uniformly random actions over the views of several
simulated sessions (a new view every episode), then CartPole-v1 (unwrapped) with random
actions, in the same process, for the same number of steps; best of 3 each. Prints
steps/s and the ratio (target at least 0.5x; 1x is the ambition).

    python benchmarks/bench_env.py [--steps 200000]
"""

from __future__ import annotations

import argparse
import time

import gymnasium
import numpy as np

from kalshi_pipeline.env import BalancedSampler, MarketAgnosticKalshiEnv
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session


def steps_per_second(env, actions: list[int], runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        env.reset(seed=0)
        started = time.perf_counter()
        for action in actions:
            _, _, terminated, truncated, _ = env.step(action)
            if terminated or truncated:
                env.reset()
        best = min(best, time.perf_counter() - started)
    return len(actions) / best


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=200_000)
    args = parser.parse_args()

    views = [
        view
        for session_id in (1, 2, 3)
        for view in build_market_views(
            simulate_session(
                session_id, 4, SimulatorConfig(population=Population.TWO_CLASS, markets=40)
            )
        )
    ]
    env = MarketAgnosticKalshiEnv(views, sampler=BalancedSampler(len(views)))
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 5, size=args.steps).tolist()
    ours = steps_per_second(env, actions)
    episodes = int(env.episode_counts.sum())
    cartpole = steps_per_second(gymnasium.make("CartPole-v1").unwrapped, [a % 2 for a in actions])
    print(f"views: {len(views)}, episodes played in the last run: {episodes}")
    print(f"MarketAgnosticKalshiEnv {ours:>12,.0f} steps/s (random actions)")
    print(f"CartPole-v1 (unwrapped) {cartpole:>12,.0f} steps/s")
    print(f"ratio                   {ours / cartpole:>12.2f}x   (target >= 0.5x, ambition 1x)")


if __name__ == "__main__":
    main()
