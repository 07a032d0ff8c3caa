"""The Definitions ``dagster dev`` loads: they load, and hold the graph of docs/architecture.md."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from kalshi_pipeline.definitions import defs

REPO_ROOT = Path(__file__).resolve().parents[2]
ASSET_KEYS = {
    "raw_sessions",
    "market_views",
    "difficulty_scores",
    "train_holdout_split",
    "phase1_model",
    "phase2_model",
    "phase3_model",
    "evaluation_report",
    "production_model",
    "tuned_hyperparameters",
    "paper_trading",
}
PER_SESSION = ("raw_sessions", "market_views", "paper_trading")
VIEW_CHECKS = {"min_episode_length", "min_coverage", "data_quality"}


def test_the_definitions_are_loadable():
    dg.Definitions.validate_loadable(defs())


def test_the_asset_keys_are_the_contract(definitions):
    keys = {key.to_user_string() for key in definitions.resolve_all_asset_keys()}
    assert keys == ASSET_KEYS


def test_per_session_assets_are_partitioned_by_the_dynamic_sessions_partitions(definitions):
    for name in ASSET_KEYS:
        partitions = definitions.resolve_assets_def(name).partitions_def
        if name in PER_SESSION:
            assert isinstance(partitions, dg.DynamicPartitionsDefinition), name
            assert partitions.name == "sessions"
        else:
            assert partitions is None, f"{name} should span all sessions"


def test_market_views_carries_the_three_blocking_checks(definitions):
    specs = list(definitions.resolve_assets_def("market_views").check_specs)
    assert {spec.name for spec in specs} == VIEW_CHECKS
    assert all(spec.blocking for spec in specs)
    assert all(spec.asset_key == dg.AssetKey("market_views") for spec in specs)


def test_the_jobs_select_ingest_and_training(definitions):
    ingest = definitions.resolve_job_def("ingest_session")
    train = definitions.resolve_job_def("train_and_evaluate")
    assert {k.to_user_string() for k in ingest.asset_layer.executable_asset_keys} == {
        "raw_sessions",
        "market_views",
    }
    assert {k.to_user_string() for k in train.asset_layer.executable_asset_keys} == (
        ASSET_KEYS - {*PER_SESSION, "tuned_hyperparameters"}
    )
    tune = definitions.resolve_job_def("tune_hyperparameters")  # never part of a retrain
    assert {k.to_user_string() for k in tune.asset_layer.executable_asset_keys} == {
        "tuned_hyperparameters"
    }
    assert ingest.partitions_def is not None and ingest.partitions_def.name == "sessions"
    paper = definitions.resolve_job_def("paper_trade_session")  # a session's paper trading
    assert {k.to_user_string() for k in paper.asset_layer.executable_asset_keys} == {
        "paper_trading"
    }
    assert paper.partitions_def is not None and paper.partitions_def.name == "sessions"
