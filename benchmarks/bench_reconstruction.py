"""Book reconstruction speed: the fast path against the plain per-event reference.

Simulates one session of at least 1M events (300 markets), cleans it once, then times
``books_from_events`` (best of 3, after a warm-up that loads the compiled replay) and the
reference in ``benchmarks/reference_books.py`` on the same events, and
checks they agree. Prints delta events per second and the ratio (target: at least 20x).

    python benchmarks/bench_reconstruction.py [--markets 300] [--median-events 2200]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

# The repository root, for ``benchmarks.reference_books`` when run as a script.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.reference_books import reference_books  # noqa: E402
from kalshi_pipeline.market.books import books_from_events  # noqa: E402
from kalshi_pipeline.market.cleaning import clean_session  # noqa: E402
from kalshi_pipeline.runtime import keep_freed_memory  # noqa: E402
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session  # noqa: E402


def best_of(runs: int, fn) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(runs):
        started = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - started)
    return best, result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--markets", type=int, default=300)
    parser.add_argument("--median-events", type=float, default=2200.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(f"allocator keeps freed memory: {keep_freed_memory()}")

    config = SimulatorConfig(
        population=Population.TWO_CLASS,
        markets=args.markets,
        median_events_per_market=args.median_events,
    )
    raw = simulate_session(1, args.seed, config)
    clean_s, events = best_of(1, lambda: clean_session(raw))
    deltas = int((~events.is_snapshot).sum())
    print(f"session: {args.markets} markets, {len(events):,} events ({deltas:,} deltas)")
    if len(events) < 1_000_000:
        print("warning: fewer than 1M events; raise --median-events")

    books_from_events(
        clean_session(
            simulate_session(
                2, args.seed, SimulatorConfig(population=Population.TWO_CLASS, markets=3)
            )
        )
    )
    fast_s, books = best_of(3, lambda: books_from_events(events))
    ref_s, ref = best_of(1, lambda: reference_books(events))
    for name, expected in ref.items():
        assert np.array_equal(getattr(books, name), expected), f"fast != reference: {name}"

    print(f"cleaning (vectorised)     {len(events) / clean_s:>14,.0f} events/s")
    print(f"fast replay               {deltas / fast_s:>14,.0f} delta events/s  ({fast_s:.3f}s)")
    print(f"reference (per event)     {deltas / ref_s:>14,.0f} delta events/s  ({ref_s:.3f}s)")
    print(f"clean + fast, end to end  {deltas / (clean_s + fast_s):>14,.0f} delta events/s")
    print(f"ratio fast / reference    {ref_s / fast_s:>14.1f}x   (target >= 20x)")
    print(f"ratio end-to-end / ref    {ref_s / (clean_s + fast_s):>14.1f}x")


if __name__ == "__main__":
    main()
