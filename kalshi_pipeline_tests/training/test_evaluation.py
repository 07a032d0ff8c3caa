"""Evaluation: policies played deterministically, per-market statistics, the report.

The statistics are checked on hand-made episodes and rows whose numbers are worked out in
the test; the policies and the report run on simulated views, with an untrained (but
saved and reloaded) PPO model standing in for a trained one.
"""

from __future__ import annotations

import csv
import json
import math
import statistics
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO

from kalshi_pipeline.env import MarketAgnosticKalshiEnv
from kalshi_pipeline.env.execution import BUY_NO, BUY_YES, HOLD, SELL_NO, SELL_YES
from kalshi_pipeline.env.trading_env import EnvConfig
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.market.features import FEATURE_NAMES
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.training.config import profile
from kalshi_pipeline.training.evaluation import (
    Episode,
    bootstrap_interval,
    evaluate_policies,
    hold_policy,
    imbalance_policy,
    model_policy,
    per_market_table,
    random_policy,
    rollout,
    summarise,
)
from kalshi_pipeline.training.phases import write_lineage
from kalshi_pipeline.training.report import PLOTS
from kalshi_pipeline.workflow import Split, evaluate

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
IMBALANCE = FEATURE_NAMES.index("top_imbalance")
SPREAD = FEATURE_NAMES.index("spread")
SIGNED_POSITION = len(FEATURE_NAMES) + 2


@pytest.fixture(scope="module")
def views():
    """Views of two simulated sessions, short ones included (evaluation plays them all)."""
    return [
        view
        for session_id in (1, 2)
        for view in build_market_views(
            simulate_session(session_id, seed=session_id, config=SimulatorConfig(markets=6))
        )
    ]


@pytest.fixture(scope="module")
def untrained_model(views, tmp_path_factory):
    """A PPO model as the phases save it (``model.save``), loaded back the way users do."""
    path = tmp_path_factory.mktemp("model") / "model.zip"
    PPO("MlpPolicy", MarketAgnosticKalshiEnv(views), n_steps=64, seed=0, device="cpu").save(path)
    return PPO.load(path, device="cpu")


def episode(policy, split, market, session, reward, length=100, final=10_000):
    return Episode(policy, split, f"{session}/{market}", market, session, reward, length, final)


# -- statistics ---------------------------------------------------------------------------


def test_per_market_table_groups_a_markets_episodes_across_sessions():
    episodes = [
        episode("model", "holdout", "MKT-A", 1, 2.0, length=100, final=10_200),
        episode("model", "holdout", "MKT-A", 2, -1.0, length=50, final=9_900),
        episode("model", "holdout", "MKT-A", 3, 0.0, length=60, final=10_000),
        episode("model", "holdout", "MKT-B", 1, 0.5),
        episode("model", "train", "MKT-A", 4, 1.0),  # another split: its own row
        episode("hold", "holdout", "MKT-A", 1, 0.0),
    ]

    rows = per_market_table(episodes)

    keys = [(r["policy"], r["split"], r["market_ticker"]) for r in rows]
    assert keys == [
        ("hold", "holdout", "MKT-A"),
        ("model", "holdout", "MKT-A"),
        ("model", "holdout", "MKT-B"),
        ("model", "train", "MKT-A"),
    ]
    a = rows[1]
    assert a["episodes"] == 3
    assert a["mean_reward"] == pytest.approx(1 / 3)
    assert a["std_reward"] == pytest.approx(statistics.pstdev([2.0, -1.0, 0.0]))  # ddof=0
    assert (a["min_reward"], a["max_reward"]) == (-1.0, 2.0)
    assert a["mean_length"] == pytest.approx(70.0)
    assert a["success_rate"] == pytest.approx(1 / 3)  # a reward of exactly 0 is no success
    assert a["mean_final_value_cents"] == pytest.approx((10_200 + 9_900 + 10_000) / 3)
    b = rows[2]
    assert (b["episodes"], b["mean_reward"], b["std_reward"], b["success_rate"]) == (
        1,
        0.5,
        0.0,
        1.0,
    )
    assert rows[0]["success_rate"] == 0.0


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(42)
    few, many = rng.normal(1.0, 2.0, 20), rng.normal(1.0, 2.0, 2000)

    low, high = bootstrap_interval(few, seed=3)

    assert low < few.mean() < high
    assert bootstrap_interval(few, seed=3) == (low, high)
    assert bootstrap_interval(few, seed=4) != (low, high)
    many_low, many_high = bootstrap_interval(many, seed=3)
    assert many_low < many.mean() < many_high
    assert many_high - many_low < (high - low) / 3
    assert bootstrap_interval(np.array([2.5, 2.5, 2.5])) == (2.5, 2.5)
    assert all(math.isnan(x) for x in bootstrap_interval(np.array([])))


def row(policy, split, market, mean_reward):
    return {"policy": policy, "split": split, "market_ticker": market, "mean_reward": mean_reward}


def test_summarise_pairs_the_model_with_each_baseline_by_market():
    rows = [
        row("model", "train", "A", 1.0),
        row("model", "train", "B", 3.0),
        row("model", "holdout", "C", -1.0),
        row("model", "holdout", "D", 0.5),
        row("hold", "train", "A", 0.0),
        row("hold", "train", "B", 0.0),
        row("hold", "holdout", "C", 0.0),
        row("hold", "holdout", "D", 0.0),
        row("random", "train", "A", -2.0),
        row("random", "train", "B", 1.0),
        row("random", "holdout", "C", -3.0),  # no random row for D: pairs only C
    ]

    summary = summarise(rows, seed=5)

    aggregates = summary["aggregates"]
    assert set(aggregates) == {
        "model/train", "model/holdout", "hold/train", "hold/holdout", "random/train",
        "random/holdout",
    }  # fmt: skip
    assert aggregates["model/train"]["markets"] == 2
    assert aggregates["model/train"]["mean_reward"] == pytest.approx(2.0)
    assert aggregates["model/train"]["positive_market_share"] == 1.0
    assert aggregates["model/holdout"]["mean_reward"] == pytest.approx(-0.25)
    assert aggregates["model/holdout"]["positive_market_share"] == 0.5
    assert aggregates["model/holdout"]["mean_reward_ci95"] == bootstrap_interval(
        np.array([-1.0, 0.5]), 5
    )

    differences = summary["differences"]
    assert set(differences) == {
        "model-vs-hold/train", "model-vs-hold/holdout", "model-vs-random/train",
        "model-vs-random/holdout",
    }  # fmt: skip
    assert differences["model-vs-hold/train"]["mean_difference"] == pytest.approx(2.0)
    # (1 - -2) and (3 - 1): the model's gain on each market, averaged.
    assert differences["model-vs-random/train"]["mean_difference"] == pytest.approx(2.5)
    assert differences["model-vs-random/train"]["ci95"] == bootstrap_interval(
        np.array([3.0, 2.0]), 5
    )
    assert differences["model-vs-random/holdout"]["markets"] == 1
    assert differences["model-vs-random/holdout"]["mean_difference"] == pytest.approx(2.0)

    # Train minus holdout: (1 + 3) / 2 - (-1 + 0.5) / 2.
    assert summary["generalisation_gap"] == pytest.approx(2.25)
    assert summarise([r for r in rows if r["split"] == "train"])["generalisation_gap"] is None


# -- policies ------------------------------------------------------------------------------


def test_always_hold_earns_exactly_nothing_on_every_view(views):
    for view in views:
        result = rollout(hold_policy(), view)

        assert result.total_reward == 0.0, view.key
        assert result.final_value_cents == EnvConfig().starting_cash_cents
        assert result.length == len(view)
        assert (result.view_key, result.market_ticker, result.session_id) == (
            view.key,
            view.market_ticker,
            view.session_id,
        )


def test_rollouts_of_the_model_and_the_random_policy_repeat_exactly(views, untrained_model):
    view = max(views, key=len)

    first = rollout(model_policy(untrained_model), view)
    assert rollout(model_policy(untrained_model), view) == first

    random_first = rollout(random_policy(seed=7), view)
    assert rollout(random_policy(seed=7), view) == random_first
    assert rollout(random_policy(seed=8), view) != random_first


def observation(imbalance: float, spread_cents: float, signed_position: float = 0.0):
    obs = np.zeros(len(FEATURE_NAMES) + 16, dtype=np.float32)
    obs[IMBALANCE] = imbalance
    obs[SPREAD] = spread_cents / 100
    obs[SIGNED_POSITION] = signed_position
    return obs


def test_the_imbalance_rule_trades_strong_imbalances_on_tight_books():
    rule = imbalance_policy(threshold=0.5, max_spread_cents=3)

    # Flat: buy the side the top of the book leans to, only when the lean is strong.
    assert rule(observation(0.8, spread_cents=2)) == BUY_YES
    assert rule(observation(-0.8, spread_cents=2)) == BUY_NO
    assert rule(observation(0.8, spread_cents=3)) == BUY_YES  # 3c is still tight
    assert rule(observation(0.3, spread_cents=1)) == HOLD
    assert rule(observation(-0.3, spread_cents=1)) == HOLD
    # A wide spread would eat the edge.
    assert rule(observation(0.8, spread_cents=10)) == HOLD
    assert rule(observation(-0.8, spread_cents=4)) == HOLD
    # Holding: get out once the imbalance turns against the position, else keep it.
    assert rule(observation(-0.2, spread_cents=2, signed_position=0.1)) == SELL_YES
    assert rule(observation(0.9, spread_cents=2, signed_position=0.1)) == HOLD
    assert rule(observation(0.2, spread_cents=2, signed_position=-0.1)) == SELL_NO
    assert rule(observation(-0.9, spread_cents=2, signed_position=-0.1)) == HOLD
    assert rule(observation(-0.9, spread_cents=20, signed_position=0.1)) == SELL_YES


def test_evaluate_policies_plays_every_policy_on_every_view_reproducibly(views):
    policies = {"random": random_policy, "hold": lambda seed: hold_policy()}
    splits = {"train": views[:3], "holdout": views[3:5]}

    episodes = evaluate_policies(policies, splits, seed=1)

    assert len(episodes) == 2 * 5
    assert {(e.policy, e.split, e.view_key) for e in episodes} == {
        (policy, split, view.key) for policy in policies for split in splits
        for view in splits[split]
    }  # fmt: skip
    assert evaluate_policies(policies, splits, seed=1) == episodes
    assert all(e.total_reward == 0.0 for e in episodes if e.policy == "hold")


# -- the report ----------------------------------------------------------------------------


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
    config = profile("demo")
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

    report = evaluate(
        model_path, config, train, holdout, scored(difficulty), tmp_path / "report", [progress]
    )

    out = report.parent
    assert report == tmp_path / "report" / "report.md"
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
    config = profile("demo")
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
