"""The honesty check of issue 5: does training find the simulator's signal, and only the
signal? End to end, through the CLI a user runs.

Writes a simulated store with the signal and a no-signal control (same seed and shape),
trains the three phases on each through ``kalshi-pipeline train`` (the two runs in
parallel, one process each) and reads both reports' ``summary.json``. The criterion:

* signal: the phase-3 model beats always-HOLD and random on holdout markets, the lower
  end of the 95% bootstrap interval of the paired per-market difference above 0;
* control: the model does not beat always-HOLD beyond noise (that lower end <= 0).

It drives the CLI as a subprocess, so it is a check of the whole tool rather than part of
the library: it lives here, and the slow test
``kalshi_pipeline_tests/training/test_honesty.py`` imports it from here. From the command
line it prints the figures and exits 0 when the criterion is met, 1 otherwise:

    python benchmarks/honesty_check.py [--profile default] [--timesteps N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
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


def main() -> int:
    defaults = HonestyRun()
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default=defaults.profile)
    parser.add_argument("--timesteps", type=int, help="per phase (default: the profile's)")
    parser.add_argument("--sessions", type=int, default=defaults.sessions)
    parser.add_argument("--markets", type=int, default=defaults.markets)
    parser.add_argument("--seed", type=int, default=defaults.seed)
    parser.add_argument("--holdout-fraction", type=float, default=defaults.holdout_fraction)
    parser.add_argument("--out", type=Path, help="keep stores, models and reports here")
    args = parser.parse_args()
    run = HonestyRun(
        args.profile, args.timesteps, args.sessions, args.markets, args.seed,
        args.holdout_fraction,
    )  # fmt: skip
    with tempfile.TemporaryDirectory() as scratch:
        met, lines = verdict(run_honesty_check(run, args.out or Path(scratch)))
    print("\n".join(lines))
    print("honesty criterion:", "MET" if met else "NOT MET")
    return 0 if met else 1


if __name__ == "__main__":
    sys.exit(main())
