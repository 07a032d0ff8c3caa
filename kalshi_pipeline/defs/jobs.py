"""The jobs: ``ingest_session`` (one session partition), ``train_and_evaluate``,
``tune_hyperparameters`` (an Optuna study, run on demand, never by a sensor) and
``paper_trade_session`` (one session partition's ``paper_trading``).

``train_and_evaluate`` ends with ``production_model``: the only way a model reaches
production is this job's promotion decision (the retrain sensor and the schedule run it).

``DEMO_RUN_CONFIG`` is :data:`kalshi_pipeline.pipeline_config.DEMO` as run config: the demo
profile on every training asset.
"""

import dagster as dg

from kalshi_pipeline.defs.assets.data_assets import market_views, raw_sessions
from kalshi_pipeline.defs.assets.model_assets import (
    difficulty_scores,
    evaluation_report,
    phase1_model,
    phase2_model,
    phase3_model,
    train_holdout_split,
)
from kalshi_pipeline.defs.assets.paper_assets import paper_trading
from kalshi_pipeline.defs.assets.production_assets import production_model
from kalshi_pipeline.defs.assets.tuning_assets import tuned_hyperparameters
from kalshi_pipeline.defs.config import run_config
from kalshi_pipeline.pipeline_config import DEMO

# An ingest of a large recorded session takes minutes; one still running after this long
# is taken for dead (run monitoring ends it) and its session becomes missing again.
INGEST_MAX_RUNTIME_SECONDS = 1800
INGEST_JOB = "ingest_session"
MAX_RUNTIME_SECONDS_TAG = "dagster/max_runtime"  # Dagster's public run tag
TRAINING_ASSETS = [
    difficulty_scores, train_holdout_split, phase1_model, phase2_model, phase3_model,
    evaluation_report, production_model,
]  # fmt: skip

ingest_session_job = dg.define_asset_job(
    INGEST_JOB,
    selection=[raw_sessions, market_views],  # partitioned by sessions, as they are
    tags={MAX_RUNTIME_SECONDS_TAG: str(INGEST_MAX_RUNTIME_SECONDS)},
)
train_and_evaluate_job = dg.define_asset_job("train_and_evaluate", selection=TRAINING_ASSETS)
tune_hyperparameters_job = dg.define_asset_job(
    "tune_hyperparameters", selection=[tuned_hyperparameters]
)
# A session's paper trading and its backtest, checked (paper_trading_sensor runs it).
PAPER_TRADING_JOB = "paper_trade_session"
paper_trading_job = dg.define_asset_job(PAPER_TRADING_JOB, selection=[paper_trading])

DEMO_RUN_CONFIG = run_config(DEMO)
