"""Real Celery workers for the scale-out test and benchmark: a RabbitMQ vhost of one's own,
the deployment's settings (``deploy/``) pointed at it, worker processes started and killed.

Shared by ``kalshi_pipeline_tests/defs/test_celery.py`` and ``bench_scale_out.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import yaml

REPO = Path(__file__).resolve().parents[1]
RABBITMQ_HINT = "rabbitmq-server -detached"


class WorkerError(RuntimeError):
    """RabbitMQ or a worker is not there (the message says how to start it)."""


def rabbitmqctl(*args: str) -> None:
    done = subprocess.run(["rabbitmqctl", *args], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise WorkerError(
            f"rabbitmqctl {' '.join(args)} failed (is RabbitMQ running? {RABBITMQ_HINT}):\n"
            f"{done.stderr}"
        )


@contextmanager
def vhost() -> Iterator[str]:
    """A broker URL on a new vhost, deleted afterwards (runs never share queues)."""
    name = f"kp_{uuid.uuid4().hex[:12]}"
    rabbitmqctl("add_vhost", name)
    try:
        rabbitmqctl("set_permissions", "-p", name, "guest", ".*", ".*", ".*")
        yield f"pyamqp://guest:guest@127.0.0.1:5672/{name}"
    finally:
        rabbitmqctl("delete_vhost", name)


@contextmanager
def broker_stopped() -> Iterator[None]:
    """RabbitMQ stopped (every connection dropped; durable queues kept on disk), then
    started again, whatever happens inside."""
    rabbitmqctl("stop_app")
    try:
        yield
    finally:
        rabbitmqctl("start_app")
        rabbitmqctl("await_startup")


def deployment_files(directory: Path, broker: str) -> tuple[Path, Path]:
    """``deploy/dagster.yaml`` as ``<directory>/dagster/dagster.yaml`` (the DAGSTER_HOME)
    and ``deploy/celery.yaml`` with ``broker``: (DAGSTER_HOME, the workers' config)."""
    dagster_home = directory / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text((REPO / "deploy" / "dagster.yaml").read_text())
    workers = yaml.safe_load((REPO / "deploy" / "celery.yaml").read_text())
    workers["execution"]["config"]["broker"] = broker
    (directory / "celery.yaml").write_text(yaml.safe_dump(workers))
    return dagster_home, directory / "celery.yaml"


def start_worker(worker_yaml: Path, name: str, log: Path) -> subprocess.Popen:
    """``dagster-celery worker start`` in its own process group (the environment is
    this process's: DAGSTER_HOME, the pipeline home, the executor)."""
    command = [
        sys.executable, "-m", "dagster_celery.cli", "worker", "start",
        "-A", "dagster_celery.app", "-y", str(worker_yaml), "-n", name, "-l", "info",
    ]  # fmt: skip
    return subprocess.Popen(
        command, cwd=REPO, env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=log.open("w"), stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def wait_until_ready(workers: list[subprocess.Popen], logs: list[Path], timeout=90.0) -> None:
    """Every worker connected and ready; else :class:`WorkerError` with its log (a run
    would otherwise wait forever for workers that are gone)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for worker, log in zip(workers, logs, strict=True):
            if worker.poll() is not None:
                raise WorkerError(
                    f"worker exited ({worker.returncode}):\n{log.read_text()[-3000:]}"
                )
        if all("ready." in log.read_text() for log in logs):
            return
        time.sleep(0.5)
    raise WorkerError(f"workers not ready after {timeout:.0f} s:\n{logs[0].read_text()[-3000:]}")


def kill(worker: subprocess.Popen) -> None:
    """SIGKILL the worker and its pool processes."""
    if worker.poll() is None:
        os.killpg(worker.pid, signal.SIGKILL)
        worker.wait(timeout=30)


def steps_by_worker(events) -> dict[str, list[str]]:
    """Worker name (before its ``@host``) -> the step keys it was given, from the events."""
    found: dict[str, list[str]] = {}
    for e in events:
        if e.event_type_value == "ENGINE_EVENT" and "in celery worker" in (e.message or ""):
            worker = e.event_specific_data.metadata["Celery worker"].value.split("@")[0]
            found.setdefault(worker, []).append(e.step_key)
    return found


def train_and_evaluate() -> dg.JobDefinition:
    """``train_and_evaluate`` as the workers rebuild it: a module-level function that
    ``dg.reconstructable`` can point to and a worker process can import."""
    from kalshi_pipeline.definitions import defs

    return defs().resolve_job_def("train_and_evaluate")


def tune_hyperparameters() -> dg.JobDefinition:
    """``tune_hyperparameters`` as the workers rebuild it (see :func:`train_and_evaluate`)."""
    from kalshi_pipeline.definitions import defs

    return defs().resolve_job_def("tune_hyperparameters")
