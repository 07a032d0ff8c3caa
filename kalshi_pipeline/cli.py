"""The ``kalshi-pipeline`` command.

``generate`` writes simulated sessions to a Parquet store (or the collector's tables);
``train`` runs the three phases and the report outside Dagster; ``demo`` is the main job
on the embedded default: the whole Dagster graph on a local instance
(:mod:`kalshi_pipeline.defs.demo`).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from kalshi_pipeline.runtime import keep_freed_memory
from kalshi_pipeline.settings import pipeline_home, sessions_dir
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_sessions
from kalshi_pipeline.training.config import PROFILES


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="kalshi-pipeline", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)

    gen = commands.add_parser("generate", help="write simulated sessions in the raw schema")
    gen.add_argument("--out", type=Path, help="Parquet session store directory")
    gen.add_argument("--postgres", metavar="URL", help="write into the collector's tables")
    gen.add_argument("--sessions", type=int, default=4)
    gen.add_argument("--markets", type=int, default=40)
    gen.add_argument("--seed", type=int, default=0)
    gen.add_argument(
        "--median-events",
        type=float,
        default=SimulatorConfig.median_events_per_market,
        help="median events per market (activity is log-normal around it; about 2.5 "
        "events make one book change, one view step)",
    )
    gen.add_argument(
        "--no-signal", action="store_true", help="the control: book imbalance predicts nothing"
    )

    train = commands.add_parser(
        "train", help="train the three phases on a session store and write the report"
    )
    train.add_argument("--store", type=Path, help="Parquet session store (default: the home's)")
    train.add_argument("--out", type=Path, required=True, help="models and report go here")
    train.add_argument("--profile", default="demo", choices=sorted(PROFILES))
    train.add_argument("--phases", type=int, nargs="+", default=[1, 2, 3], choices=[1, 2, 3])
    train.add_argument("--timesteps", type=int, help="timesteps per phase (overrides profile)")
    train.add_argument("--checkpoint-every", type=int, help="timesteps between checkpoints")
    train.add_argument("--algorithm", choices=["ppo", "a2c"], help="default: the profile's")
    train.add_argument("--seed", type=int, help="default: the profile's")
    train.add_argument("--holdout-fraction", type=float, default=0.2)

    demo = commands.add_parser("demo", help="the main job on the embedded default")
    demo.add_argument(
        "--home", type=Path, help="default: $KALSHI_PIPELINE_HOME or ./.kalshi-pipeline"
    )

    args = parser.parse_args(argv)
    keep_freed_memory()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if args.command == "generate":
        if (args.out is None) == (args.postgres is None):
            parser.error("generate needs exactly one of --out DIR or --postgres URL")
        config = SimulatorConfig(
            markets=args.markets,
            median_events_per_market=args.median_events,
            signal=not args.no_signal,
        )
        return generate(args.out, args.postgres, args.sessions, args.seed, config)
    if args.command == "train":
        return run_train(args)
    return run_demo(pipeline_home(args.home))


def run_train(args: argparse.Namespace) -> int:
    from kalshi_pipeline.training.config import profile
    from kalshi_pipeline.training.run import train_and_evaluate

    changes = {"checkpoint_every": args.checkpoint_every} if args.checkpoint_every else {}
    config = profile(
        args.profile, timesteps_per_phase=args.timesteps, algorithm=args.algorithm,
        seed=args.seed, **changes,
    )  # fmt: skip
    store = ParquetSessionStore(args.store or sessions_dir(pipeline_home(None)))
    report = train_and_evaluate(
        store, args.out, config, holdout_fraction=args.holdout_fraction,
        phases=args.phases, progress=True,
    )  # fmt: skip
    print(f"models: {args.out / 'models'}")
    if report is not None:
        print(f"report: {report}")
    return 0


def generate(
    out: Path | None, postgres_url: str | None, sessions: int, seed: int, config: SimulatorConfig
) -> int:
    started = time.perf_counter()
    events = 0
    simulated = simulate_sessions(sessions, seed, config, progress=True)
    if out is not None:
        store = ParquetSessionStore(out)
        for session in simulated:
            store.write_session(session)
            events += session.num_events
        where = str(out)
    else:
        import psycopg2

        from kalshi_pipeline.sources.postgres import collector_ddl, write_collector_session

        with psycopg2.connect(postgres_url) as conn:
            with conn.cursor() as cur:
                cur.execute(collector_ddl())
            for session in simulated:
                write_collector_session(conn, session)
                events += session.num_events
        where = "the collector database"
    print(
        f"wrote {sessions} sessions ({events:,} events, signal={config.signal}) to {where} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return 0


def run_demo(home: Path) -> int:
    from kalshi_pipeline.defs.demo import run_demo as run_pipeline

    run_pipeline(home)
    return 0


if __name__ == "__main__":
    sys.exit(main())
