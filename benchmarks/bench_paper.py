"""Paper trading's latency: from a row's commit in the collector to the model's decision.

A 1,000-market session (the simulator's Kalshi population) is written into a scratch
collector database as the collector would record it, one receive millisecond per commit,
``--speed`` times faster than recorded (a writer process), while the paper trader follows
it (this process, the follow loop of ``kalshi-pipeline paper``) and records its decisions
in a scratch paper database. For every decision, the latency is its recorded decision
time minus the wall time at which the commit holding its step's rows returned. Printed:
p50, p99 and the maximum over every decision; for the session's opening commit alone
(every market subscribing in its first millisecond), for the commits that arrived before
the follower had caught up with the writer after it (its first read after the opening
that found nothing new), and for all after those, with their first and last tenth of the
session, to show whether latency grows. At the end, the
session's batch views are backtested with the same model and compared, record for
record, with what the trader recorded.

The model is an untrained PPO of the default profile's size (two layers of 64): a
decision costs what a trained model's costs.

    python benchmarks/bench_paper.py [--markets 1000] [--minutes 60] [--speed 10]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import multiprocessing
import sys
import tempfile
import time
import uuid
from contextlib import closing, contextmanager
from datetime import timedelta
from pathlib import Path

import numpy as np
import psycopg2
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kalshi_pipeline.env import MarketAgnosticKalshiEnv  # noqa: E402
from kalshi_pipeline.env.env_config import EnvConfig  # noqa: E402
from kalshi_pipeline.market import build_market_views  # noqa: E402
from kalshi_pipeline.paper.backtest import backtest  # noqa: E402
from kalshi_pipeline.paper.follow import follow  # noqa: E402
from kalshi_pipeline.paper.records import compare  # noqa: E402
from kalshi_pipeline.paper.store import PaperStore  # noqa: E402
from kalshi_pipeline.paper.trader import ChosenModel, PaperTrader  # noqa: E402
from kalshi_pipeline.sources.collector_tail import CollectorTail  # noqa: E402
from kalshi_pipeline.sources.collector_writer import collector_ddl  # noqa: E402
from kalshi_pipeline.sources.live_writer import write_live_session  # noqa: E402
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session  # noqa: E402

SERVER = "postgresql://postgres@127.0.0.1:5432"


@contextmanager
def scratch_database(prefix: str):
    name = f"{prefix}_{uuid.uuid4().hex[:8]}"
    with closing(psycopg2.connect(f"{SERVER}/postgres")) as admin:
        admin.autocommit = True
        admin.cursor().execute(f"CREATE DATABASE {name}")
    try:
        yield f"{SERVER}/{name}"
    finally:
        with closing(psycopg2.connect(f"{SERVER}/postgres")) as admin:
            admin.autocommit = True
            admin.cursor().execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")


def first_minutes(raw, minutes: float):
    """The session's first ``minutes``, closed at their end."""
    start = raw.info.started_at
    end_ms = int(start.timestamp() * 1000 + minutes * 60_000)

    def cut(table):
        return table.filter(pc.less(table.column("timestamp_ms"), end_ms))

    trades = None if raw.trades is None else cut(raw.trades)
    end = start + timedelta(minutes=minutes)
    info = dataclasses.replace(raw.info, ended_at=end, last_message_at=end)
    return dataclasses.replace(
        raw, info=info, snapshots=cut(raw.snapshots), deltas=cut(raw.deltas), trades=trades
    )


class WatchedTail(CollectorTail):
    """The collector's tail, noting when the follower first caught up with the writer:
    the wall time of its first read that found nothing new after one that found rows."""

    caught_up: float | None = None
    _had_rows = False

    def read(self, *args, **kwargs):
        found = super().read(*args, **kwargs)
        if len(found):
            self._had_rows = True
        elif self._had_rows and self.caught_up is None:
            self.caught_up = time.time()
        return found


def session_arguments(parser: argparse.ArgumentParser, minutes: float) -> None:
    """The options naming the session replayed: its markets, its first minutes, its seed."""
    parser.add_argument("--markets", type=int, default=1000)
    parser.add_argument("--minutes", type=float, default=minutes, help="of the session replayed")
    parser.add_argument("--seed", type=int, default=0)


def session_of(args: argparse.Namespace):
    """The simulated session those options name, cut to its first minutes."""
    config = SimulatorConfig(markets=args.markets)
    return first_minutes(simulate_session(1, seed=args.seed, config=config), args.minutes)


def write(url: str, raw, speed: float, out: str) -> None:
    """The writer process: the session into the collector's tables, live; each commit's
    millisecond and wall time into ``out``."""
    commits: dict[int, float] = {}
    with closing(psycopg2.connect(url)) as conn:
        write_live_session(
            conn, raw, speed, on_commit=lambda ms, wall: commits.setdefault(ms, wall)
        )
    Path(out).write_text(json.dumps(commits))


def decisions(paper_url: str, session_id: int) -> np.ndarray:
    """(step_ms, decided_at in seconds) of every recorded decision."""
    with closing(psycopg2.connect(paper_url)) as conn, conn.cursor() as cur:
        cur.execute(
            "SELECT step_ms, EXTRACT(EPOCH FROM decided_at) FROM paper_decisions "
            "WHERE session_id = %s",
            (session_id,),
        )
        return np.array([(int(ms), float(at)) for ms, at in cur.fetchall()])


def figures(name: str, latency_ms: np.ndarray) -> str:
    if not len(latency_ms):
        return f"{name:<34} no decisions"
    p50, p99 = np.percentile(latency_ms, [50, 99])
    return (
        f"{name:<34} {len(latency_ms):>7,} decisions  p50 {p50:6.1f} ms  p99 {p99:6.1f} ms  "
        f"max {latency_ms.max():7.1f} ms"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    session_arguments(parser, minutes=60.0)
    parser.add_argument("--speed", type=float, default=10.0)
    parser.add_argument("--poll-ms", type=float, default=5.0, help="the follower's poll interval")
    args = parser.parse_args()

    raw = session_of(args)
    views = build_market_views(raw)
    config = EnvConfig()
    # torch is imported here, after the session: the model's own import time is not timed.
    from stable_baselines3 import PPO

    from kalshi_pipeline.training.evaluation.policies import model_policy

    model = PPO("MlpPolicy", MarketAgnosticKalshiEnv(views[:2], config), seed=21, device="cpu")
    chosen = ChosenModel(name="untrained-64x64", path="", policy=model_policy(model))
    rows = raw.snapshots.num_rows + raw.deltas.num_rows + raw.trades.num_rows
    print(
        f"session: {len(views)} markets with a view, {rows:,} rows over {args.minutes:g} min, "
        f"replayed at {args.speed:g}x (about {args.minutes * 60 / args.speed:.0f} s); "
        f"poll every {args.poll_ms:g} ms"
    )
    with (
        scratch_database("bench_collector") as collector_url,
        scratch_database("bench_paper") as paper_url,
        tempfile.TemporaryDirectory() as scratch,
    ):
        with closing(psycopg2.connect(collector_url)) as conn:
            conn.cursor().execute(collector_ddl())
            conn.commit()
        store = PaperStore(paper_url)
        store.create()
        commits_file = str(Path(scratch) / "commits.json")
        writer = multiprocessing.get_context("spawn").Process(
            target=write, args=(collector_url, raw, args.speed, commits_file)
        )
        writer.start()
        with closing(WatchedTail(collector_url)) as tail:
            while tail.live_session() is None:
                time.sleep(0.01)
            started = time.perf_counter()
            follow(
                tail, store, lambda info, pinned: PaperTrader(info, config, lambda t: chosen),
                session_id=raw.info.session_id, once=True, poll_seconds=args.poll_ms / 1000,
                say=lambda line: print(f"  paper: {line}"),
            )  # fmt: skip
            took = time.perf_counter() - started
        writer.join()
        commits = {int(ms): wall for ms, wall in json.loads(Path(commits_file).read_text()).items()}
        made = decisions(paper_url, raw.info.session_id)
        stored = store.load(raw.info.session_id)
        store.close()

    print(f"followed to the close in {took:.0f} s; {len(commits):,} commits")
    known = np.array([ms in commits for ms in made[:, 0].astype(np.int64)])
    made = made[known]
    committed = np.array([commits[int(ms)] for ms in made[:, 0]])
    latency = (made[:, 1] - committed) * 1000
    opening = made[:, 0] == min(commits)
    # Commits that arrived before the follower caught up after the opening waited for it.
    behind = ~opening & (committed < (tail.caught_up or np.inf))  # never: all of them
    steady = ~opening & ~behind
    session_ms = made[:, 0]
    tenth = (session_ms[steady].max() - session_ms[steady].min()) / 10
    first = steady & (session_ms < session_ms[steady].min() + tenth)
    last = steady & (session_ms >= session_ms[steady].max() - tenth)
    print(figures("every decision", latency))
    print(figures("the opening commit", latency[opening]))
    print(figures("until caught up after it", latency[behind]))
    print(figures("after those", latency[steady]))
    print(figures("  its first tenth", latency[first]))
    print(figures("  its last tenth", latency[last]))
    if (~known).any():
        print(f"({int((~known).sum())} decisions at a repaired time are left out)")

    expected = backtest(views, config, lambda ticker: chosen)
    problems = compare(stored.records, expected)
    kinds = ("decisions", "outcomes", "fills")
    paper_counts = {kind: stored.records.counts()[kind] for kind in kinds}
    print(f"paper {paper_counts}; backtest { {k: expected.counts()[k] for k in kinds} }")
    print("paper equals the backtest" if not problems else f"DIFFERENT: {problems[:3]}")
    return 0 if not problems else 1


if __name__ == "__main__":
    raise SystemExit(main())
