"""Building market views: against a plain best-bid loop, linear scaling, peak memory.

Three measurements, each best of 3 after a warm-up that loads the compiled replay:

1. A session of 1,000 markets (over 100k deltas), then one with 4x the events: the time
   of ``build_market_views`` beside a plain Python loop over the same deltas that only
   tracks each market's best bids (:func:`best_bids_loop`), their ratio (target: the
   views cost no more than the loop, ratio >= 1.0x) and the cost per event of both at
   1x and 4x (target: flat within 1.5x).
2. 300 markets and at least 1M events, then 4x the events: events/s and the time ratio
   (target <= 4.4: linear in events).
3. Peak memory for a session of about 2M deltas, as ``tracemalloc`` sees it allocated
   (numpy reports its buffers to it) on top of the raw session: all views in memory
   (``build_market_views``) beside the chunked path that streams them to Parquet a group
   of markets at a time (``SessionViews`` into ``write_view_batches``, as the
   ``market_views`` asset did before sessions were streamed), whose peak is bounded by
   ``ViewConfig.chunk_events``.
4. The whole process, for a session in a Parquet store of about 2M deltas and then 4x
   that: the peak resident memory (``VmHWM``) of a fresh process that loads the
   session and builds its views (``SessionViews``), beside one that reads it a batch at
   a time (``SessionViews.streamed`` on ``open_session``, as the ``market_views`` asset
   does). The streamed peak should hardly grow with the session.

    python benchmarks/bench_views.py [--seed 11] [--skip-throughput] [--skip-process]
"""

from __future__ import annotations

import argparse
import gc
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from kalshi_pipeline.market.views import SessionViews, build_market_views, write_view_batches
from kalshi_pipeline.runtime import keep_freed_memory
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session


def best_bids_loop(raw: RawSession) -> list[int]:
    """The baseline: one pass over the deltas in plain Python, keeping a dict book per
    market and side and reading off its best bid after every delta."""
    deltas = raw.deltas
    books: dict[tuple[str, str], dict[int, int]] = {}
    best = []
    for ticker, side, price, size in zip(
        deltas.column("market_ticker").to_pylist(),
        deltas.column("side").to_pylist(),
        deltas.column("price").to_pylist(),
        deltas.column("new_size").to_pylist(),
        strict=True,
    ):
        book = books.setdefault((ticker, side), {})
        if size > 0:
            book[price] = size
        else:
            book.pop(price, None)
        best.append(max(book) if book else 0)
    return best


def best_time(fn, raw, runs: int = 3) -> float:
    best = float("inf")
    for _ in range(runs):
        gc.collect()
        started = time.perf_counter()
        fn(raw)
        best = min(best, time.perf_counter() - started)
    return best


def peak_bytes(fn) -> int:
    gc.collect()
    tracemalloc.start()
    fn()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return peak


def against_the_loop(seed: int) -> None:
    costs = []
    for scale in (1, 4):
        config = SimulatorConfig(
            population=Population.TWO_CLASS, markets=1_000, median_events_per_market=160.0 * scale
        )
        raw = simulate_session(1, seed, config)
        deltas = raw.deltas.num_rows
        loop, views = best_time(best_bids_loop, raw), best_time(build_market_views, raw)
        costs.append((loop / deltas, views / deltas))
        print(
            f"{scale}x: 1,000 markets, {deltas:>9,} deltas  best-bid loop {loop:.3f}s "
            f"({loop / deltas * 1e6:.2f} us/delta)  views {views:.3f}s "
            f"({views / deltas * 1e6:.2f} us/delta)  loop/views {loop / views:.2f}x "
            f"(target >= 1.0)"
        )
    (loop_1, views_1), (loop_4, views_4) = costs
    print(
        f"cost per delta, 4x against 1x: views {views_4 / views_1:.2f}x, "
        f"loop {loop_4 / loop_1:.2f}x (target: within 1.5x)"
    )


def throughput(seed: int) -> None:
    results = []
    for scale in (1, 4):
        config = SimulatorConfig(
            population=Population.TWO_CLASS, markets=300, median_events_per_market=2200.0 * scale
        )
        raw = simulate_session(1, seed, config)
        seconds = best_time(build_market_views, raw)
        results.append((raw.num_events, seconds))
        print(
            f"{scale}x: 300 markets, {raw.num_events:>10,} events  "
            f"{raw.num_events / seconds:>12,.0f} events/s  ({seconds:.2f}s)"
        )
        del raw
    (events_1, time_1), (events_4, time_4) = results
    print(
        f"events ratio {events_4 / events_1:.2f}x, time ratio {time_4 / time_1:.2f}x "
        f"(target <= 4.4 for 4x the events)"
    )


def memory(seed: int) -> None:
    raw = simulate_session(
        1,
        seed,
        SimulatorConfig(
            population=Population.TWO_CLASS, markets=300, median_events_per_market=4400
        ),
    )
    whole = peak_bytes(lambda: build_market_views(raw))
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "views.parquet"
        chunked = peak_bytes(lambda: write_view_batches(SessionViews(raw).batches(), path))
    events = raw.num_events
    print(
        f"{raw.deltas.num_rows:,} deltas: peak {whole / 2**20:,.0f} MiB with all views in "
        f"memory ({whole / events:.0f} B/event), {chunked / 2**20:,.0f} MiB streamed in "
        f"chunks ({chunked / events:.0f} B/event): {whole / chunked:.1f}x less"
    )


def process_peaks(seed: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        for scale in (1, 4):
            config = SimulatorConfig(
                population=Population.TWO_CLASS,
                markets=300,
                median_events_per_market=4400.0 * scale,
            )
            raw = simulate_session(1, seed, config)
            store = ParquetSessionStore(Path(tmp) / f"store-{scale}")
            store.write_session(raw)
            deltas, events = raw.deltas.num_rows, raw.num_events
            del raw
            peaks = {how: child_peak(how, store.path, Path(tmp)) for how in ("whole", "streamed")}
            (base, whole), (_, streamed) = peaks["whole"], peaks["streamed"]
            print(
                f"{scale}x: {deltas:>10,} deltas from a store: peak RSS {mib(base)} after "
                f"imports; loaded whole {mib(whole)} ({(whole - base) / events:.0f} B/event "
                f"above imports), streamed {mib(streamed)} "
                f"({(streamed - base) / events:.0f} B/event): {whole / streamed:.1f}x less"
            )


def mib(size: int) -> str:
    return f"{size / 2**20:,.0f} MiB"


def child_peak(how: str, store: Path, scratch: Path) -> tuple[int, int]:
    """(peak RSS after imports, peak RSS at the end) of a fresh process building views."""
    command = [sys.executable, __file__, "--peak-of", how, str(store), str(scratch)]
    out = subprocess.run(command, check=True, capture_output=True, text=True).stdout
    base, peak = out.split()
    return int(base), int(peak)


def build_views_here(how: str, store_path: str, scratch: str) -> None:
    """The child of :func:`child_peak`: print the peak RSS after imports and at the end."""
    keep_freed_memory()
    base = peak_rss()
    store, out = ParquetSessionStore(store_path), Path(scratch) / f"views-{how}.parquet"
    if how == "whole":
        write_view_batches(SessionViews(store.load_session(1)).batches(), out)
    else:
        with store.open_session(1) as stored, SessionViews.streamed(stored, None, scratch) as b:
            write_view_batches(b.batches(), out)
    print(base, peak_rss())


def peak_rss() -> int:
    """This process's peak resident memory (VmHWM: unlike ``ru_maxrss``, not inherited
    from the parent that forked it)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise RuntimeError("no VmHWM in /proc/self/status (Linux only)")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seed", type=int, default=11)
    parser.add_argument("--skip-throughput", action="store_true")
    parser.add_argument("--skip-process", action="store_true")
    parser.add_argument("--peak-of", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peak_of:
        build_views_here(*args.peak_of)
        return
    print(f"allocator keeps freed memory: {keep_freed_memory()}")
    build_market_views(
        simulate_session(9, args.seed, SimulatorConfig(population=Population.TWO_CLASS, markets=3))
    )  # warm-up
    against_the_loop(args.seed)
    if not args.skip_throughput:
        throughput(args.seed)
    memory(args.seed)
    if not args.skip_process:
        process_peaks(args.seed)


if __name__ == "__main__":
    main()
