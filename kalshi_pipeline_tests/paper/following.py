"""What the follower's tests share: a small session, a tiny model saved with its lineage,
the session's backtest, and running ``kalshi-pipeline paper`` as a real process."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from stable_baselines3 import PPO

from kalshi_pipeline.env import EnvConfig, MarketAgnosticKalshiEnv
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paper.backtest import backtest
from kalshi_pipeline.paper.records import Records
from kalshi_pipeline.paper.trader import ChosenModel
from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.training.config import profile
from kalshi_pipeline.training.evaluation.policies import model_policy
from kalshi_pipeline.training.model_loading import load_checked_model
from kalshi_pipeline.training.phases import write_lineage

SMALL = SimulatorConfig(markets=4)


def small_session(session_id: int = 1, seed: int = 3) -> RawSession:
    return simulate_session(session_id, seed=seed, config=SMALL)


def tiny_model(directory: Path, execution: str, views, seed: int = 0) -> Path:
    """An untrained PPO (its random policy trades) saved with a lineage that says it was
    trained in ``execution`` mode."""
    env = EnvConfig(execution=execution)
    model = PPO(
        "MlpPolicy", MarketAgnosticKalshiEnv(views, env), n_steps=64, seed=seed, device="cpu"
    )
    path = directory / "model.zip"
    directory.mkdir(parents=True, exist_ok=True)
    model.save(path)
    write_lineage(
        directory / "model.json", 3, views[:3], profile("smoke", seed=seed, env=env), None, 0
    )
    return path


def backtest_of(session: RawSession, model_path: Path, name: str | None = None) -> Records:
    """The session's batch views played by the model at ``model_path`` in its own env
    config, named as the follower names a ``--model`` file."""
    from kalshi_pipeline.training.lineage import read_lineage

    config = read_lineage(model_path).env_config()
    policy = model_policy(load_checked_model(model_path))
    chosen = ChosenModel(name or str(model_path), str(model_path), policy, config)
    return backtest(build_market_views(session), config, lambda ticker: chosen)


def paper_command(collector: str, paper_db: str, *extra: str) -> list[str]:
    return [
        sys.executable, "-m", "kalshi_pipeline.cli", "paper", "--collector", collector,
        "--paper-db", paper_db, *extra,
    ]  # fmt: skip


def start_paper(collector: str, paper_db: str, *extra: str, home: Path | None = None):
    """``kalshi-pipeline paper`` as a process of its own, its output in a pipe."""
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    if home is not None:
        env["KALSHI_PIPELINE_HOME"] = str(home)
    return subprocess.Popen(
        paper_command(collector, paper_db, *extra), env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def run_paper(collector: str, paper_db: str, *extra: str, timeout: float = 120) -> str:
    """Run ``kalshi-pipeline paper`` to its end; its output (it must succeed)."""
    process = start_paper(collector, paper_db, *extra)
    try:
        output, _ = process.communicate(timeout=timeout)
    finally:
        process.kill()  # only if it is still running: a test that timed out
    assert process.returncode == 0, output
    return output
