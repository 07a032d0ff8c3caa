"""Scale-out: the same candidates job with one Celery worker, then with two.

Sets up what ``deploy/`` describes, on this machine: a RabbitMQ vhost of its own, the
Dagster instance in a scratch PostgreSQL database, a simulated store. It ingests three
sessions in process, then runs ``train_and_evaluate`` up to ``phase1_model`` (``K`` seed
candidates, each its own step) on the Celery executor twice, with 1 and with 2 workers,
and prints each wall time, the ratio and the parallel efficiency (speed-up / workers).
Each worker trains one step at a time on one core, so on N cores the ideal is N.

    python benchmarks/bench_scale_out.py [--candidates 4] [--timesteps 40960]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from contextlib import closing
from pathlib import Path

import dagster as dg
import psycopg2
from psycopg2 import sql

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.celery_workers import (  # noqa: E402
    deployment_files,
    kill,
    start_worker,
    train_and_evaluate,
    vhost,
    wait_until_ready,
)
from kalshi_pipeline.defs.executors import BACKEND_ENV, BROKER_ENV, EXECUTOR_ENV  # noqa: E402
from kalshi_pipeline.paths import COLLECTOR_URL_ENV, HOME_ENV, sessions_dir  # noqa: E402
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore  # noqa: E402
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session  # noqa: E402

SERVER = "postgresql://postgres@127.0.0.1:5432"


def timed_run(instance, candidates: int, timesteps: int) -> float:
    settings = {"profile": "smoke", "timesteps_per_phase": timesteps, "candidates": candidates}
    started = time.perf_counter()
    with dg.execute_job(
        dg.reconstructable(train_and_evaluate), instance,
        run_config={"ops": {"train_holdout_split": {"config": {"validation_fraction": 0.4}},
                            "phase1_model": {"config": settings}}},
        asset_selection=[dg.AssetKey(k) for k in
                         ("difficulty_scores", "train_holdout_split", "phase1_model")],
    ) as result:  # fmt: skip
        if not result.success:
            raise RuntimeError(
                f"the run failed: {[str(e) for e in result.all_events if e.is_failure]}"
            )
    return time.perf_counter() - started


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--candidates", type=int, default=4)
    parser.add_argument("--timesteps", type=int, default=40_960, help="per candidate")
    args = parser.parse_args()
    database = f"kp_bench_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(f"{SERVER}/test")
    admin.autocommit = True
    with closing(admin), admin.cursor() as cur, tempfile.TemporaryDirectory() as scratch:
        cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
        try:
            with vhost() as broker:
                walls = run_both(Path(scratch), database, broker, args)
        finally:
            cur.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                sql.Identifier(database)))  # fmt: skip
    one, two = walls
    print(f"{args.candidates} candidates x {args.timesteps:,} timesteps, phase 1 on Celery")
    print(f"1 worker : {one:7.1f} s")
    print(f"2 workers: {two:7.1f} s")
    print(f"speed-up : {one / two:.2f}x, parallel efficiency {one / two / 2:.0%} "
          f"(on {os.cpu_count()} cores)")  # fmt: skip
    return 0


def run_both(scratch: Path, database: str, broker: str, args) -> tuple[float, float]:
    dagster_home, worker_yaml = deployment_files(scratch, broker)
    url = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
    os.environ.update({
        "DAGSTER_HOME": str(dagster_home), "DAGSTER_POSTGRES_URL": url,
        HOME_ENV: str(scratch / "home"), EXECUTOR_ENV: "celery", BROKER_ENV: broker,
        BACKEND_ENV: f"db+{url}",
    })  # fmt: skip
    os.environ.pop(COLLECTOR_URL_ENV, None)
    store = ParquetSessionStore(sessions_dir(scratch / "home"))
    for session_id in (1, 2, 3):
        store.write_session(
            simulate_session(
                session_id, 5, SimulatorConfig(population=Population.TWO_CLASS, markets=20)
            )
        )
    instance = dg.DagsterInstance.get()
    from kalshi_pipeline.definitions import defs
    from kalshi_pipeline.defs.partitions import sessions

    definitions = defs()
    instance.add_dynamic_partitions(sessions.name, ["1", "2", "3"])
    for key in ("1", "2", "3"):
        definitions.resolve_job_def("ingest_session").execute_in_process(
            instance=instance, partition_key=key
        )
    walls = []
    for count in (1, 2):
        logs = [scratch / f"w{count}-{i}.log" for i in range(count)]
        workers = [start_worker(worker_yaml, f"w{count}-{i}@bench", log)
                   for i, log in enumerate(logs)]  # fmt: skip
        try:
            wait_until_ready(workers, logs)
            walls.append(timed_run(instance, args.candidates, args.timesteps))
        finally:
            for worker in workers:
                kill(worker)
    return walls[0], walls[1]


if __name__ == "__main__":
    sys.exit(main())
