"""Which executor runs the jobs' steps: the embedded default or Celery workers.

Unset (the embedded default, what ``demo`` uses): Dagster's multiprocess executor, one
process per step on this machine (``demo`` itself runs in process). With
``KALSHI_EXECUTOR=celery`` (the scale-out deployment, ``deploy/``), every job's steps go to
Celery workers through the broker named by ``KALSHI_CELERY_BROKER`` (default
``pyamqp://guest@127.0.0.1:5672//``): each session's ingest, each seed candidate of a
training phase, each selection, may run on another worker.

Workers acknowledge a task only when its step is done (``task_acks_late``) and a task
whose worker died is requeued (``task_reject_on_worker_lost``); each worker takes one step
at a time (``worker_prefetch_multiplier`` 1, ``worker_concurrency`` 1), so a long training
step never holds back a queued one that another worker could run. Steps that may meet a
dying worker carry a Dagster ``RetryPolicy`` (``raw_sessions``, the candidate steps).
"""

import os

import dagster as dg
from dagster_celery import celery_executor

EXECUTOR_ENV = "KALSHI_EXECUTOR"
BROKER_ENV = "KALSHI_CELERY_BROKER"
DEFAULT_BROKER = "pyamqp://guest@127.0.0.1:5672//"
CELERY_SETTINGS = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "worker_concurrency": 1,
    "broker_connection_retry_on_startup": True,
}


def executor() -> dg.ExecutorDefinition:
    """The executor ``KALSHI_EXECUTOR`` names (``multiprocess``, the default, or
    ``celery``)."""
    kind = os.environ.get(EXECUTOR_ENV, "multiprocess")
    if kind == "multiprocess":
        return dg.multiprocess_executor
    if kind == "celery":
        return celery_executor.configured(
            {
                "broker": os.environ.get(BROKER_ENV, DEFAULT_BROKER),
                "backend": "rpc://",
                "config_source": CELERY_SETTINGS,
                "retries": {"enabled": {}},
            },
            name="celery",
        )
    raise ValueError(f"{EXECUTOR_ENV} must be multiprocess or celery, got {kind!r}")


@dg.definitions
def executor_definitions() -> dg.Definitions:
    return dg.Definitions(executor=executor())
