"""The schedule: ``weekly_retrain`` runs ``train_and_evaluate`` every Sunday at 03:00 UTC,
whether or not new sessions arrived (the retrain sensor covers new data)."""

import dagster as dg

from kalshi_pipeline.defs.jobs import train_and_evaluate_job

weekly_retrain = dg.ScheduleDefinition(
    name="weekly_retrain",
    job=train_and_evaluate_job,
    cron_schedule="0 3 * * 0",
    execution_timezone="UTC",
)
