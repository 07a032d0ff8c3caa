"""Jobs as Celery workers load them: a module-level function ``dg.reconstructable`` can
point to, importable in a worker process (which rebuilds the job from this pointer)."""

import dagster as dg


def train_and_evaluate() -> dg.JobDefinition:
    from kalshi_pipeline.definitions import defs

    return defs().resolve_job_def("train_and_evaluate")
