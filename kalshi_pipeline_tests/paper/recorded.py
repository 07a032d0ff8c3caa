"""Recorded sessions for the paper tests, and the live path run on them.

A session is replayed one receive millisecond at a time, as the collector commits it
(:mod:`kalshi_pipeline.paper.replay`). Sessions are built once per process.
"""

from __future__ import annotations

from functools import cache

import numpy as np
import pytest
from stable_baselines3 import PPO

from kalshi_pipeline.env import MarketAgnosticKalshiEnv
from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.market.streaming import SessionStream
from kalshi_pipeline.paper.records import Records
from kalshi_pipeline.paper.replay import by_millisecond
from kalshi_pipeline.paper.trader import ChosenModel, PaperTrader
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.training.evaluation.policies import model_policy

SEEDS = (0, 1, 2)
# The first session in the default suite, the other two with the slow tests (.ci/run).
SEED_PARAMS = [SEEDS[0], *(pytest.param(seed, marks=pytest.mark.slow) for seed in SEEDS[1:])]


@cache
def recorded_session(seed: int):
    """A recorded (simulated) session of four markets."""
    return simulate_session(1, seed=seed, config=SimulatorConfig(markets=4))


def live_views(raw) -> tuple[dict[str, dict[str, np.ndarray]], SessionStream]:
    """Every market's view columns as the live path grows them, concatenated."""
    stream = SessionStream(raw.info)
    grown: dict[str, dict[str, list]] = {}
    for snapshots, deltas, trades in by_millisecond(raw):
        for chunk in stream.add(snapshots, deltas, trades):
            columns = grown.setdefault(chunk.ticker, {})
            assert chunk.first_step == len(sum(columns.get("timestamps_ms", []), []))
            for name, values in {**chunk.columns, **chunk.trades}.items():
                columns.setdefault(name, []).append(values.tolist())
    stream.finish()
    joined = {
        ticker: {name: sum(parts, []) for name, parts in columns.items()}
        for ticker, columns in grown.items()
    }
    return joined, stream


MODEL_SEED = 21  # an untrained policy that takes all five actions on these sessions


def untrained_model(views, config: EnvConfig) -> ChosenModel:
    """A seeded, untrained PPO: it takes every action now and then, so fills happen."""
    env = MarketAgnosticKalshiEnv(views, config)
    model = PPO("MlpPolicy", env, seed=MODEL_SEED, device="cpu")
    return ChosenModel(name="untrained", path="", policy=model_policy(model))


def paper_trade(raw, config: EnvConfig, model: ChosenModel) -> Records:
    """Paper trading of ``raw`` replayed as committed, to its close."""
    trader = PaperTrader(raw.info, config, lambda ticker: model)
    records = Records()
    for snapshots, deltas, trades in by_millisecond(raw):
        records.extend(trader.add(snapshots, deltas, trades))
    records.extend(trader.close())
    return records
