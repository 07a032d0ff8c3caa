"""The live path's cost per commit: paper trading one commit's rows, in process.

A 1,000-market simulated session (its first ``--minutes``) is cut into its commits (one
receive millisecond each, as the collector commits them) and replayed commit by commit,
with no database, through a :class:`~kalshi_pipeline.paper.trader.PaperTrader` playing
an untrained PPO (two layers of 64), and through a second
:class:`~kalshi_pipeline.market.streaming.SessionStream` alone. Printed, over every commit
after the opening one (every market subscribing at once): p50, p90, p99 and the maximum
of the time of ``PaperTrader.add``, of the same less the time spent in the model's
``predict``, and of ``SessionStream.add``. The reference, measured in the same process,
is the batch path: ``build_market_views`` on the whole session, divided by its commits;
the ratio is the live p50 over that (how many times a commit costs more live than its
share of the batch run). Targets: ``SessionStream.add`` plus the trader's own work p50
<= 2 ms and p99 <= 4.5 ms on a steady commit of 1-3 rows.

    python benchmarks/bench_live_path.py [--markets 1000] [--minutes 15] [--seed 0]
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.bench_paper import session_arguments, session_of  # noqa: E402
from kalshi_pipeline.env import MarketAgnosticKalshiEnv  # noqa: E402
from kalshi_pipeline.env.env_config import EnvConfig  # noqa: E402
from kalshi_pipeline.market import build_market_views  # noqa: E402
from kalshi_pipeline.market.streaming import SessionStream  # noqa: E402
from kalshi_pipeline.paper.replay import by_millisecond  # noqa: E402
from kalshi_pipeline.paper.trader import ChosenModel, PaperTrader  # noqa: E402


class TimedPolicy:
    """A policy that adds the time of each of its calls to ``seconds``."""

    def __init__(self, policy) -> None:
        self.policy = policy
        self.seconds = 0.0

    def __call__(self, obs: np.ndarray) -> int:
        started = time.perf_counter()
        try:
            return self.policy(obs)
        finally:
            self.seconds += time.perf_counter() - started


def figures(name: str, ms: np.ndarray) -> str:
    p50, p90, p99 = np.percentile(ms, [50, 90, 99])
    return (
        f"{name:<34} p50 {p50:6.2f} ms  p90 {p90:6.2f} ms  p99 {p99:6.2f} ms  "
        f"max {ms.max():7.2f} ms"
    )


def replay_trader(trader: PaperTrader, groups, policy: TimedPolicy) -> tuple[float, np.ndarray]:
    """The opening commit's time (s), then each later commit's times (ms): the whole of
    ``PaperTrader.add`` and the model's share of it."""
    started = time.perf_counter()
    trader.add(*groups[0])
    opening = time.perf_counter() - started
    times = np.zeros((len(groups) - 1, 2))
    for i, group in enumerate(groups[1:]):
        policy.seconds = 0.0
        started = time.perf_counter()
        trader.add(*group)
        times[i] = (time.perf_counter() - started, policy.seconds)
    return opening, times * 1000


def replay_stream(stream: SessionStream, groups) -> tuple[float, np.ndarray]:
    """The opening commit's time (s), then each later commit's time (ms) in
    ``SessionStream.add`` alone."""
    started = time.perf_counter()
    stream.add(*groups[0])
    opening = time.perf_counter() - started
    times = np.zeros(len(groups) - 1)
    for i, group in enumerate(groups[1:]):
        started = time.perf_counter()
        stream.add(*group)
        times[i] = time.perf_counter() - started
    return opening, times * 1000


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    session_arguments(parser, minutes=15.0)
    args = parser.parse_args()

    raw = session_of(args)
    build_market_views(raw)  # warm-up: the compiled replay loaded
    gc.collect()
    started = time.perf_counter()
    views = build_market_views(raw)
    batch = time.perf_counter() - started
    config = EnvConfig()
    from stable_baselines3 import PPO

    from kalshi_pipeline.training.evaluation.policies import model_policy

    model = PPO("MlpPolicy", MarketAgnosticKalshiEnv(views[:2], config), seed=21, device="cpu")
    policy = TimedPolicy(model_policy(model))
    chosen = ChosenModel(name="untrained-64x64", path="", policy=policy)
    info = dataclasses.replace(raw.info, ended_at=None, last_message_at=None)
    groups = list(by_millisecond(raw))
    rows = np.array([sum(t.num_rows for t in g if t is not None) for g in groups])
    print(
        f"session: {len(views)} markets with a view, {int(rows.sum()):,} "
        f"rows over {args.minutes:g} min in {len(groups):,} commits "
        f"(after the opening: {np.median(rows[1:]):g} rows a commit at the median, "
        f"{np.percentile(rows[1:], 99):g} at p99)"
    )
    per_commit_ms = batch / len(groups) * 1000
    print(f"batch build_market_views: {batch:.2f} s, {per_commit_ms:.3f} ms a commit")

    gc.collect()
    trader = PaperTrader(info, config, lambda ticker: chosen)
    opening, times = replay_trader(trader, groups, policy)
    print(f"PaperTrader.add, the opening commit: {opening:.2f} s")
    print(figures("PaperTrader.add", times[:, 0]))
    print(figures("PaperTrader.add less predict", times[:, 0] - times[:, 1]))
    gc.collect()
    opening, stream_ms = replay_stream(SessionStream(info), groups)
    print(f"SessionStream.add, the opening commit: {opening:.2f} s")
    print(figures("SessionStream.add", stream_ms))
    own = np.median(times[:, 0] - times[:, 1])
    print(
        f"ratio: a commit live (less predict, p50) costs {own / per_commit_ms:.1f}x its "
        f"share of the batch run; SessionStream.add p50 {np.median(stream_ms) / per_commit_ms:.1f}x"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
