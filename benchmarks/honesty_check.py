"""The honesty check of issue 5, end to end through the CLI a user runs.

Writes a simulated store with the signal and a no-signal control store (same seed, same
shape), trains the three phases on each with ``kalshi-pipeline train`` (the two runs in
parallel, one per core) and reads both reports' ``summary.json``. The criterion:

* signal: the phase-3 model beats always-HOLD and random on holdout markets, the lower
  end of the 95% bootstrap interval of the paired difference above 0;
* control: the model does not beat always-HOLD beyond noise (that lower end <= 0).

Prints the figures and exits 0 when both hold, 1 otherwise.

    python benchmarks/honesty_check.py [--profile default] [--timesteps N] [--out DIR]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

CLI = [sys.executable, "-m", "kalshi_pipeline.cli"]


def run_both(args: argparse.Namespace, root: Path) -> dict[str, dict]:
    shape = ["--sessions", str(args.sessions), "--markets", str(args.markets)]
    stores = {"signal": [], "control": ["--no-signal"]}
    for name, flags in stores.items():
        subprocess.run(
            [*CLI, "generate", "--out", str(root / name / "store"), *shape,
             "--seed", str(args.seed), *flags],
            check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
    train = ["--profile", args.profile, "--holdout-fraction", str(args.holdout_fraction)]
    if args.timesteps:
        train += ["--timesteps", str(args.timesteps)]
    runs = {
        name: subprocess.Popen(
            [
                *CLI,
                "train",
                "--store",
                str(root / name / "store"),
                "--out",
                str(root / name / "run"),
                *train,
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for name in stores
    }
    for name, run in runs.items():
        _, err = run.communicate()
        if run.returncode != 0:
            raise SystemExit(f"training on the {name} store failed:\n{err[-3000:]}")
    return {
        name: json.loads((root / name / "run" / "report" / "summary.json").read_text())
        for name in stores
    }


def verdict(summaries: dict[str, dict]) -> tuple[bool, list[str]]:
    lines, ok = [], True
    for store, summary in summaries.items():
        for baseline in ("hold", "random"):
            d = summary["differences"][f"model-vs-{baseline}/holdout"]
            low, high = d["ci95"]
            lines.append(
                f"{store:7s} model-vs-{baseline:6s} holdout: {d['mean_difference']:+8.3f} $/market"
                f"  95% CI [{low:+.3f}, {high:+.3f}]  ({d['markets']} markets)"
            )
            if store == "signal":
                ok &= low > 0
            elif baseline == "hold":
                ok &= low <= 0
    return ok, lines


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profile", default="default")
    parser.add_argument("--timesteps", type=int, help="per phase (default: the profile's)")
    parser.add_argument("--sessions", type=int, default=10)
    parser.add_argument("--markets", type=int, default=60)
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--holdout-fraction", type=float, default=0.3)
    parser.add_argument("--out", type=Path, help="keep stores, models and reports here")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch:
        summaries = run_both(args, args.out or Path(scratch))
    ok, lines = verdict(summaries)
    print("\n".join(lines))
    print("honesty criterion:", "MET" if ok else "NOT MET")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
