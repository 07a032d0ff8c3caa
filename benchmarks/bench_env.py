"""Raw environment speed: MarketAgnosticKalshiEnv in both execution modes against
Gymnasium's CartPole-v1.

Steps the unwrapped environment with uniformly random actions over the views of several
simulated sessions of the calibrated population, which carry a trade tape (a new view
every episode), once in ``taker`` mode and once in ``maker`` mode (resting orders,
100 ms latency, the risk-averse queue), then CartPole-v1 (unwrapped) with random actions,
in the same process, for the same number of steps; best of 3 each. Prints steps/s and the
ratios (target at least 0.5x in both modes; 1x is the ambition).

    python benchmarks/bench_env.py [--steps 200000]
"""

from __future__ import annotations

import argparse
import time

import gymnasium
import numpy as np

from kalshi_pipeline.env import BalancedSampler, EnvConfig, MarketAgnosticKalshiEnv
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session


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
        for view in build_market_views(simulate_session(session_id, 4, SimulatorConfig(markets=40)))
    ]
    rng = np.random.default_rng(0)
    actions = rng.integers(0, 5, size=args.steps).tolist()
    speeds = {}
    for mode in ("taker", "maker"):
        env = MarketAgnosticKalshiEnv(
            views, EnvConfig(execution=mode), sampler=BalancedSampler(len(views))
        )
        speeds[mode] = steps_per_second(env, actions)
    cartpole = steps_per_second(gymnasium.make("CartPole-v1").unwrapped, [a % 2 for a in actions])
    print(f"views: {len(views)}, trades on their tapes: {sum(len(v.trade_steps) for v in views)}")
    for mode, speed in speeds.items():
        print(f"MarketAgnosticKalshiEnv, {mode:<5} {speed:>12,.0f} steps/s (random actions)")
    print(f"CartPole-v1 (unwrapped)        {cartpole:>12,.0f} steps/s")
    for mode, speed in speeds.items():
        print(f"ratio, {mode:<5}                  {speed / cartpole:>12.2f}x   (target >= 0.5x)")


if __name__ == "__main__":
    main()
