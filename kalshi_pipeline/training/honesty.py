"""The honesty check: does training find the simulator's signal, and only the signal?

Writes a simulated store with the signal and a no-signal control (same seed and shape),
trains the three phases on each through ``kalshi-pipeline train`` (the two runs in
parallel, one process each) and reads both reports' ``summary.json``. The criterion
(issue 5):

* signal: the phase-3 model beats always-HOLD and random on holdout markets, the lower
  end of the 95% bootstrap interval of the paired per-market difference above 0;
* control: the model does not beat always-HOLD beyond noise (that lower end <= 0).

``benchmarks/honesty_check.py`` runs it from the command line; a slow test runs it too.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass, replace
from pathlib import Path

from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_sessions

STORES = ("signal", "control")


@dataclass(frozen=True)
class HonestyRun:
    profile: str = "default"
    timesteps_per_phase: int | None = None  # None: the profile's
    # 12 sessions x 80 markets and a 40% holdout: about 60 holdout markets, a fifth of
    # them liquid, so that the interval over markets is not decided by two or three.
    sessions: int = 12
    markets: int = 80
    seed: int = 3
    holdout_fraction: float = 0.4


def run_honesty_check(run: HonestyRun, root: Path) -> dict[str, dict]:
    """Train on both stores under ``root``; the two reports' summaries by store name."""
    config = SimulatorConfig(markets=run.markets)
    for name in STORES:
        store = ParquetSessionStore(root / name / "store")
        store_config = replace(config, signal=name == "signal")
        for session in simulate_sessions(run.sessions, run.seed, store_config):
            store.write_session(session)
    options = ["--profile", run.profile, "--holdout-fraction", str(run.holdout_fraction)]
    if run.timesteps_per_phase:
        options += ["--timesteps", str(run.timesteps_per_phase)]

    def train(name: str) -> subprocess.Popen:
        store, out = root / name / "store", root / name / "run"
        command = [sys.executable, "-m", "kalshi_pipeline.cli", "train", "--store", str(store)]
        return subprocess.Popen(
            [*command, "--out", str(out), *options],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    children = {name: train(name) for name in STORES}
    failures = []
    for name, child in children.items():
        _, err = child.communicate()
        if child.returncode != 0:
            failures.append(f"training on the {name} store failed:\n{err[-3000:]}")
    if failures:
        raise RuntimeError("\n".join(failures))
    return {
        name: json.loads((root / name / "run" / "report" / "summary.json").read_text())
        for name in STORES
    }


def verdict(summaries: dict[str, dict]) -> tuple[bool, list[str]]:
    """(criterion met, one line of figures per store and baseline)."""
    lines, met = [], True
    for store in STORES:
        for baseline in ("hold", "random"):
            d = summaries[store]["differences"][f"model-vs-{baseline}/holdout"]
            low, high = d["ci95"]
            lines.append(
                f"{store:7s} model-vs-{baseline:6s} holdout: {d['mean_difference']:+8.3f} "
                f"$/market, 95% CI [{low:+.3f}, {high:+.3f}] ({d['markets']} markets)"
            )
            if store == "signal":
                met &= low > 0
            elif baseline == "hold":
                met &= low <= 0
    return met, lines
