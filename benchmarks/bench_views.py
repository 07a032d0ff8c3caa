"""Building market views: throughput, peak memory and linear scaling.

Simulates a session of 300 markets and at least 1M events, then one with 4x the events
(same markets), and times ``build_market_views`` on each (best of 3, after a warm-up
that loads the compiled replay). Peak memory is what ``tracemalloc`` sees allocated
during one build (numpy reports its buffers to it), on top of the raw session.
Prints events/s, peak memory, and the ratio of times for 4x the events (target <= 4.4:
linear in events).

    python benchmarks/bench_views.py [--markets 300] [--median-events 2200]
"""

from __future__ import annotations

import argparse
import gc
import time
import tracemalloc

from kalshi_pipeline.market.views import build_market_views
from kalshi_pipeline.runtime import keep_freed_memory
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session


def timed_build(raw, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        build_market_views(raw)
        best = min(best, time.perf_counter() - started)
    return best


def peak_bytes(raw) -> int:
    gc.collect()
    tracemalloc.start()
    views = build_market_views(raw)
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    del views
    return peak


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--markets", type=int, default=300)
    parser.add_argument("--median-events", type=float, default=2200.0)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    print(f"allocator keeps freed memory: {keep_freed_memory()}")

    build_market_views(simulate_session(9, args.seed, SimulatorConfig(markets=3)))  # warm-up
    results = []
    for scale in (1, 4):
        config = SimulatorConfig(
            markets=args.markets, median_events_per_market=args.median_events * scale
        )
        raw = simulate_session(1, args.seed, config)
        seconds = timed_build(raw)
        peak = peak_bytes(raw)
        results.append((raw.num_events, seconds))
        print(
            f"{scale}x: {args.markets} markets, {raw.num_events:>10,} events  "
            f"{raw.num_events / seconds:>12,.0f} events/s  ({seconds:.2f}s)  "
            f"peak {peak / 2**20:,.0f} MiB ({peak / raw.num_events:.0f} B/event)"
        )
        del raw
    (events_1, time_1), (events_4, time_4) = results
    print(
        f"events ratio {events_4 / events_1:.2f}x, time ratio {time_4 / time_1:.2f}x "
        f"(target <= 4.4 for 4x the events)"
    )


if __name__ == "__main__":
    main()
