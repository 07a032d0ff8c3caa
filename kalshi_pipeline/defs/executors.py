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

A broker restart must not lose a run either. The queue is durable and its messages
persistent (Celery's defaults), so queued steps survive it; a step submitted while the
broker is down is published again until it is back (``task_publish_retry_policy``: up to
about two minutes); workers reconnect by themselves. A step running during the restart
goes on, but its task can no longer be acknowledged, so the broker delivers it again:
delivery is at least once, and the pipeline's steps are idempotent (a candidate already
trained is not trained again; every output is a function of its inputs and seed).
Step results go to ``KALSHI_CELERY_BACKEND``, which must be set with the Celery
executor: a database (``db+postgresql+psycopg2://user@host/dagster``, the instance's own
database will do; the password from ``PGPASSWORD``, so that it never lands in the
worker's generated config file). Celery's ``rpc://`` backend sends results through the
broker and loses those in flight when it restarts (the run then fails: the broker-restart
test does with it), and ``cache+memory://`` keeps them in one process: only a database
(``db+...``) is accepted. The three variables, and that rule, are read and checked in
:mod:`kalshi_pipeline.sources.settings`; a bad one fails the definitions' load, named.
"""

import dagster as dg
from dagster_celery import celery_executor

from kalshi_pipeline.sources.settings import (
    CELERY_BACKEND,
    CELERY_BROKER,
    EXECUTOR,
    celery_result_backend,
)

EXECUTOR_ENV = EXECUTOR.name
BROKER_ENV = CELERY_BROKER.name
BACKEND_ENV = CELERY_BACKEND.name
DEFAULT_BROKER = CELERY_BROKER.default
CELERY_SETTINGS = {
    "task_acks_late": True,
    "task_reject_on_worker_lost": True,
    "worker_prefetch_multiplier": 1,
    "worker_concurrency": 1,
    "broker_connection_retry_on_startup": True,
    # Keep publishing while the broker restarts: 1 s, 2 s, ... up to 5 s apart, 30 times.
    "task_publish_retry_policy": {
        "max_retries": 30,
        "interval_start": 1,
        "interval_step": 1,
        "interval_max": 5,
    },
}


def executor() -> dg.ExecutorDefinition:
    """The executor ``KALSHI_EXECUTOR`` names (``multiprocess``, the default, or
    ``celery``)."""
    if EXECUTOR.read() == "multiprocess":
        return dg.multiprocess_executor
    return celery_executor.configured(
        {
            "broker": CELERY_BROKER.read(),
            "backend": celery_result_backend(),
            "config_source": CELERY_SETTINGS,
            "retries": {"enabled": {}},
        },
        name="celery",
    )


@dg.definitions
def executor_definitions() -> dg.Definitions:
    return dg.Definitions(executor=executor())
