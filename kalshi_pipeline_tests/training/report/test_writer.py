"""The report of a real evaluation: every number traces to the model and the data.

A PPO model is evaluated through :func:`kalshi_pipeline.workflow.evaluate` on simulated
views; the Markdown, CSV and JSON it writes are read back and checked against each other.
A model is evaluated in its own execution mode (its lineage's), unless a setting given
overrides it, which the report then says.
"""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO

from kalshi_pipeline.env import EnvConfig, MarketAgnosticKalshiEnv
from kalshi_pipeline.market.split import Split
from kalshi_pipeline.training.config import profile
from kalshi_pipeline.training.execution_choice import ExecutionChoice
from kalshi_pipeline.training.phases import write_lineage
from kalshi_pipeline.training.report import PLOTS, WrittenReport
from kalshi_pipeline.workflow import evaluate
from kalshi_pipeline_tests.training.evaluation.simulated import simulated_views

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def views():
    return simulated_views()


def markdown_table(text: str, heading: str) -> dict[str, list[str]]:
    """The rows of the table under ``heading``, keyed by their first cell."""
    section = text.split(heading, 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| ")][1:]  # no header
    cells = [[c.strip() for c in line.strip("|").split("|")] for line in rows]
    return {c[0]: c[1:] for c in cells}


def dollars(value: float) -> str:
    return f"{value:.3f}"


def dollar_interval(bounds) -> str:
    low, high = bounds
    return f"[{dollars(low)}, {dollars(high)}]"


def test_the_report_traces_every_number_to_the_model_and_the_data(views, tmp_path):
    config = profile("smoke")
    trainable = [v for v in views if len(v) >= 20]
    holdout_markets = set(sorted({v.market_ticker for v in trainable})[:2])
    holdout = [v for v in trainable if v.market_ticker in holdout_markets]
    train = [v for v in trainable if v.market_ticker not in holdout_markets]
    assert holdout and train
    # The model's lineage: trained on session 1 only, a child of a phase-2 model.
    lineage_views = [v for v in train if v.session_id == 1]
    assert lineage_views
    model_path = tmp_path / "models" / "phase3" / "model.zip"
    model_path.parent.mkdir(parents=True)
    PPO("MlpPolicy", MarketAgnosticKalshiEnv(train), n_steps=64, seed=0, device="cpu").save(
        model_path
    )
    parent = tmp_path / "models" / "phase2" / "model.zip"
    write_lineage(model_path.parent / "model.json", 3, lineage_views, config, parent, 4096)
    progress = tmp_path / "progress.csv"
    progress.write_text(
        "time/total_timesteps,rollout/ep_rew_mean\n512,-3.5\n1024,-1.25\n1536,0.5\n"
    )
    difficulty = {v.key: i / len(views) for i, v in enumerate(views)}

    written = evaluate(
        model_path, config, train, holdout, scored(difficulty), tmp_path / "report", [progress]
    )

    report, out = written.path, written.path.parent
    assert report == tmp_path / "report" / "report.md"
    # The results Dagster shows are report.md up to its plots, and the summary is the file's.
    text = report.read_text()
    assert text.startswith(written.results_markdown)
    assert text[len(written.results_markdown) :].startswith("## Plots")
    assert WrittenReport.from_json(json.loads(json.dumps(written.to_json()))) == written
    for name in PLOTS:
        assert (out / name).read_bytes()[:8] == PNG_SIGNATURE, name
    with open(out / "episodes.csv") as fh:
        episodes = list(csv.DictReader(fh))
    assert len(episodes) == 4 * (len(train) + len(holdout))  # model and three baselines
    assert {e["policy"] for e in episodes} == {"model", "random", "hold", "imbalance_rule"}
    with open(out / "per_market.csv") as fh:
        per_market = list(csv.DictReader(fh))
    markets = {v.market_ticker for v in train} | {v.market_ticker for v in holdout}
    assert len(per_market) == 4 * len(markets)
    summary = json.loads((out / "summary.json").read_text())

    text = report.read_text()
    # What was evaluated, and on which data.
    assert f"`{model_path}`" in text
    assert f"`{parent}`" in text
    assert "sessions [1]" in text  # the lineage's sessions
    for view in train + holdout:
        assert view.key in text, view.key
    assert "learning_rate" in text  # the lineage's config
    # Every aggregate in the Markdown is the one in summary.json, rounded to 3 decimals.
    aggregates = markdown_table(text, "## Aggregates")
    assert set(aggregates) == set(summary["aggregates"])
    for key, (count, mean, ci, share) in aggregates.items():
        expected = summary["aggregates"][key]
        assert int(count) == expected["markets"], key
        assert mean == dollars(expected["mean_reward"]), key
        assert ci == dollar_interval(expected["mean_reward_ci95"]), key
        assert share == f"{round(100 * expected['positive_market_share'])}%", key
    differences = markdown_table(text, "## Model against baselines")
    assert set(differences) == set(summary["differences"])
    assert len(differences) == 3 * 2  # three baselines, two splits
    for key, (count, mean, ci) in differences.items():
        expected = summary["differences"][key]
        assert int(count) == expected["markets"], key
        assert mean == dollars(expected["mean_difference"]), key
        assert ci == dollar_interval(expected["ci95"]), key
    gap = f"Generalisation gap (model, train - holdout): {dollars(summary['generalisation_gap'])}"
    assert gap in text
    assert written.summary.generalisation_gap == summary["generalisation_gap"]
    # And the summary is the one the episodes give: each holdout market counts once.
    by_market = defaultdict(list)
    for e in episodes:
        if e["policy"] == "model" and e["split"] == "holdout":
            by_market[e["market_ticker"]].append(float(e["total_reward"]))
    assert sum(len(r) for r in by_market.values()) == len(holdout)
    assert summary["aggregates"]["model/holdout"]["markets"] == len(by_market) == 2
    assert summary["aggregates"]["model/holdout"]["mean_reward"] == pytest.approx(
        np.mean([np.mean(r) for r in by_market.values()])
    )


def test_a_model_of_another_feature_layout_is_refused(views, tmp_path):
    config = profile("smoke")
    model_path = tmp_path / "model.zip"
    PPO("MlpPolicy", MarketAgnosticKalshiEnv(views), n_steps=64, device="cpu").save(model_path)
    write_lineage(model_path.parent / "model.json", 1, views, config, None, 0)
    lineage = json.loads((tmp_path / "model.json").read_text())
    lineage["feature_layout_version"] += 1
    (tmp_path / "model.json").write_text(json.dumps(lineage))

    with pytest.raises(ValueError, match="feature layout"):
        evaluate(model_path, config, views, [], scored({}), tmp_path / "report")
    assert not Path(tmp_path / "report").exists()


def scored(difficulty: dict[str, float]) -> Split:
    """A split that only carries the views' difficulty (what the report plots)."""
    return Split(train=(), holdout=(), difficulty=difficulty, train_markets=0, holdout_markets=0)


def model_trained_with(env: EnvConfig, views, path: Path) -> Path:
    """An untrained model whose lineage says it was trained with ``env``."""
    path.parent.mkdir(parents=True)
    PPO("MlpPolicy", MarketAgnosticKalshiEnv(views), n_steps=64, seed=0, device="cpu").save(path)
    config = replace(profile("smoke"), env=env)
    write_lineage(path.parent / "model.json", 1, views, config, None, 0)
    return path


def policies_and_first_lines(written: WrittenReport) -> tuple[set[str], list[str]]:
    with open(written.path.parent / "episodes.csv") as fh:
        policies = {e["policy"] for e in csv.DictReader(fh)}
    return policies, written.path.read_text().splitlines()[:6]


def test_a_model_is_evaluated_in_its_own_execution_mode_unless_told_otherwise(views, tmp_path):
    """Its lineage's mode, whatever the training config handed to the evaluation says; in
    maker mode the quote rule is a baseline; a setting given overrides the lineage's and
    the report names it with the model's own value."""
    few = [v for v in views if len(v) >= 20][:3]
    maker = EnvConfig(execution="maker", latency_ms=250)
    model = model_trained_with(maker, few, tmp_path / "maker" / "model.zip")
    taker_training = profile("smoke")  # its env is a taker's: not what the model was

    own = evaluate(model, taker_training, few, few, scored({}), tmp_path / "own")
    policies, lines = policies_and_first_lines(own)
    assert "quote_rule" in policies
    assert lines[2] == (
        "Execution: maker (resting limit orders at the touch; post-only; expire after 20 "
        "steps), latency 250 ms constant (cancels 250 ms), risk_averse queue, a trade through "
        "fills its contracts, fees quadratic_with_maker_fees x1 (series overrides: none)."
    )
    assert lines[3] == ""  # nothing was set for this evaluation
    summary = json.loads((own.path.parent / "summary.json").read_text())
    assert summary["execution"]["settings"]["latency_ms"] == 250
    assert summary["execution"]["changed_from_model"] == {}
    assert "model-vs-quote_rule/holdout" in summary["differences"]
    assert "model-vs-quote_rule/holdout" in own.results_markdown

    given = ExecutionChoice(execution="taker", latency_ms=100)
    told = evaluate(model, taker_training, few, few, scored({}), tmp_path / "told", execution=given)
    policies, lines = policies_and_first_lines(told)
    assert "quote_rule" not in policies
    assert lines[2].startswith("Execution: taker (orders cross the spread at once")
    assert lines[3] == (
        "Set for this evaluation, not the model's own (it was trained with the values in "
        "brackets): execution taker (maker); latency_ms 100 (250)."
    )
    assert lines[4].startswith("The mode changes the observation: the model learned the maker")
    assert "resting-orders-v1" in lines[4] and "last-order-v1" in lines[4]
    summary = json.loads((told.path.parent / "summary.json").read_text())
    assert summary["execution"]["changed_from_model"] == {
        "execution": {"evaluated": "taker", "model": "maker"},
        "latency_ms": {"evaluated": 100, "model": 250},
    }


def test_a_model_whose_lineage_predates_the_execution_settings_is_evaluated_as_a_taker(
    views, tmp_path
):
    few = [v for v in views if len(v) >= 20][:2]
    model = model_trained_with(EnvConfig(), few, tmp_path / "old" / "model.zip")
    lineage = json.loads((model.parent / "model.json").read_text())
    env = lineage["config"]["env"]
    for key in ("execution", "latency_ms", "queue_model", "fee_type", "series_fees"):
        del env[key]
    (model.parent / "model.json").write_text(json.dumps(lineage))
    maker_training = replace(profile("smoke"), env=EnvConfig(execution="maker"))

    written = evaluate(model, maker_training, few, few, scored({}), tmp_path / "report")

    policies, lines = policies_and_first_lines(written)
    assert "quote_rule" not in policies
    assert lines[2].startswith("Execution: taker")
