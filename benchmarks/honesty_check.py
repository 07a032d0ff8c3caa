"""The honesty check of issue 5, end to end through the CLI a user runs.

Trains on a simulated store with the signal and on a no-signal control, in parallel, and
prints the phase-3 model's paired difference to always-HOLD and random on holdout
markets (see :mod:`kalshi_pipeline.training.honesty` for the criterion). Exits 0 when
the criterion is met, 1 otherwise.

    python benchmarks/honesty_check.py [--profile default] [--timesteps N] [--out DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

from kalshi_pipeline.training.honesty import HonestyRun, run_honesty_check, verdict


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
