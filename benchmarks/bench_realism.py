"""Realism: how close a store of sessions is to the recorded Kalshi figures.

By default writes a store as a user would, ``kalshi-pipeline generate --sessions 12
--markets 200`` (the simulator's defaults otherwise, so its default population) into a
temporary directory; ``--store DIR`` reads an existing Parquet store instead. Each session
is measured and dropped before the next (:func:`benchmarks.realism.measure`), then every
figure is printed beside the recorded one (``benchmarks/kalshi_reference/``): quantiles
p10..p90 side by side, KS distances, band shares, and PASS/FAIL for each tolerance
(``benchmarks/realism.py`` lists them; ``docs/realism.md`` explains them). Exits 1 when
a tolerance fails.

    python benchmarks/bench_realism.py [--sessions 12] [--markets 200] [--seed 0]
    python benchmarks/bench_realism.py --store DIR
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

# The repository root, for ``benchmarks.*`` when run as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.realism import all_passed, compare, format_table, load_reference, measure  # noqa: E402
from benchmarks.realism_reference import REFERENCE_DIR  # noqa: E402
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore  # noqa: E402
from kalshi_pipeline.sources.raw import RawSession  # noqa: E402


def generate_store(out: Path, sessions: int, markets: int, seed: int) -> None:
    """Write a store through the CLI's ``generate`` with its defaults otherwise."""
    command = [
        sys.executable, "-m", "kalshi_pipeline.cli", "generate", "--out", str(out),
        "--sessions", str(sessions), "--markets", str(markets), "--seed", str(seed),
    ]  # fmt: skip
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)


def stored_sessions(store: ParquetSessionStore) -> Iterator[RawSession]:
    """Every complete session of ``store``, loaded one at a time."""
    for info in store.list_sessions():
        if info.is_complete:
            yield store.load_session(info.session_id)


def run(store_path: Path, reference: Path) -> bool:
    started = time.perf_counter()
    figures = measure(stored_sessions(ParquetSessionStore(store_path)))
    print(
        f"measured {figures.sessions} sessions, {len(figures.markets):,} markets in "
        f"{time.perf_counter() - started:.1f}s ({store_path})\n"
    )
    rows = compare(figures, load_reference(reference))
    print(format_table(rows))
    return all_passed(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, help="an existing Parquet session store")
    parser.add_argument("--sessions", type=int, default=12)
    parser.add_argument("--markets", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--reference", type=Path, default=REFERENCE_DIR)
    args = parser.parse_args()
    if args.store is not None:
        ok = run(args.store, args.reference)
    else:
        with tempfile.TemporaryDirectory() as tmp:
            store = Path(tmp) / "store"
            started = time.perf_counter()
            generate_store(store, args.sessions, args.markets, args.seed)
            print(
                f"generated {args.sessions} sessions x {args.markets} markets (seed "
                f"{args.seed}) in {time.perf_counter() - started:.1f}s"
            )
            ok = run(store, args.reference)
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
