"""What the report states on top of the summary: actions, groups, bands, correlations and
the plan's targets."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from kalshi_pipeline.training.evaluation import (
    action_distribution,
    bootstrap_interval,
    difficulty_bands,
    grouped,
    spearman_table,
    target_shares,
)
from kalshi_pipeline_tests.training.evaluation.handmade import episode, full, row


def test_the_action_distribution_shares_steps_and_counts_fills():
    episodes = [
        full("model", "holdout", "A", 1, 0.0, hold_actions=6, buy_yes_actions=2,
             sell_yes_actions=2, trades=2, contracts_traded=20, fees_cents=36),
        full("model", "holdout", "B", 1, 0.0, hold_actions=10),
    ]  # fmt: skip

    actions = action_distribution(episodes)["model/holdout"]

    assert actions["steps"] == 20
    assert actions["action_share"] == {
        "HOLD": 0.8, "BUY_YES": 0.1, "SELL_YES": 0.1, "BUY_NO": 0.0, "SELL_NO": 0.0,
    }  # fmt: skip
    assert actions["trades_per_episode"] == 1.0
    assert actions["contracts_per_episode"] == 10.0
    assert actions["fees_per_episode"] == pytest.approx(0.18)
    assert actions["episodes_with_a_fill"] == 0.5


def test_spearman_table_correlates_reward_with_length_coverage_and_difficulty():
    rewards = [1.0, 2.0, 3.0, 4.0]
    episodes = [
        replace(episode("model", "holdout", f"M{i}", 1, r, length=10 * (i + 1)),
                market_coverage=1.0 - 0.2 * i)
        for i, r in enumerate(rewards)
    ] + [episode("hold", "holdout", f"M{i}", 1, 0.0) for i in range(4)]  # fmt: skip
    difficulties = {"1/M0": 0.3, "1/M1": 0.1, "1/M2": 0.4, "1/M3": 0.2}

    table = spearman_table(episodes, difficulties)

    model = table["model/holdout"]
    assert model["length"]["rho"] == pytest.approx(1.0)
    assert model["coverage"]["rho"] == pytest.approx(-1.0)
    # Difficulty ranks 3 1 4 2 against 1 2 3 4: d^2 = 4 + 1 + 1 + 4 -> 1 - 60 / 60 = 0.
    assert model["difficulty"]["rho"] == pytest.approx(0.0)
    assert model["difficulty"]["n"] == 4
    assert table["hold/holdout"]["length"]["rho"] is None  # HOLD's reward is constant


def test_difficulty_bands_are_equal_sized_quintiles_per_split_easiest_first():
    difficulty = {("holdout", f"M{i}"): d for i, d in enumerate(
        [0.9, 0.1, 0.5, 0.3, 0.7, 0.2, 0.8, 0.4, 0.6, 0.0]
    )}  # fmt: skip
    difficulty[("train", "T1")] = 0.5
    difficulty[("train", "T2")] = 0.1

    bands = difficulty_bands(difficulty)

    assert bands[("holdout", "M9")] == bands[("holdout", "M1")] == "Q1 (0.00-0.10)"
    assert bands[("holdout", "M5")] == bands[("holdout", "M3")] == "Q2 (0.20-0.30)"
    assert bands[("holdout", "M0")] == bands[("holdout", "M6")] == "Q5 (0.80-0.90)"
    assert len(set(v for (s, _), v in bands.items() if s == "holdout")) == 5
    # Two training markets: two bands, not five, ranked within their own split.
    assert (bands[("train", "T2")], bands[("train", "T1")]) == ("Q1 (0.10-0.10)", "Q2 (0.50-0.50)")


def test_grouping_by_market_type_averages_markets_and_pairs_model_with_hold():
    rows = [
        row("model", "holdout", "KXBTC-A", 1.0, market_type="KXBTC"),
        row("model", "holdout", "KXBTC-B", -0.5, market_type="KXBTC"),
        row("model", "holdout", "KXETH-C", 2.0, market_type="KXETH"),
        row("hold", "holdout", "KXBTC-A", 0.0, market_type="KXBTC"),
        row("hold", "holdout", "KXBTC-B", 0.5, market_type="KXBTC"),
        row("model", "train", "KXETH-D", -1.0, market_type="KXETH"),
    ]

    groups = grouped(rows, lambda r: r.market_type)

    btc = groups["holdout"]["KXBTC"]
    assert btc["markets"] == 2
    assert btc["mean_reward"] == {"model": 0.25, "hold": 0.25}
    assert btc["positive_share"]["model"] == 0.5
    assert btc["model_minus_hold"] == pytest.approx(0.0)  # (1 - 0) and (-0.5 - 0.5)
    assert groups["holdout"]["KXETH"]["mean_reward"] == {"model": 2.0}
    assert "model_minus_hold" not in groups["holdout"]["KXETH"]
    assert groups["train"]["KXETH"]["positive_share"] == {"model": 0.0}
    # A group of None (no difficulty known) is left out.
    assert grouped(rows, lambda r: None) == {}


def test_target_shares_over_all_and_liquid_markets_phase_two_only_when_given():
    rewards = {"A": 1.0, "B": 0.5, "C": -1.0, "D": 0.2, "E": 0.0}
    liquid = {"A": True, "B": True, "C": True, "D": False, "E": False}
    rows = [row("model", "holdout", m, r, liquid=liquid[m]) for m, r in rewards.items()]

    targets = target_shares(rows, seed=2)

    phase3 = targets["phase3"]
    assert (phase3["target"], phase3["measured"]) == (0.8, True)
    holdout = phase3["splits"]["holdout"]
    assert (holdout["markets"], holdout["positive_share"], holdout["met"]) == (5, 0.6, False)
    assert holdout["positive_share_ci95"] == bootstrap_interval(
        np.array([1.0, 1.0, 0.0, 1.0, 0.0]), 2
    )
    assert holdout["liquid_markets"] == 3
    assert holdout["liquid_positive_share"] == pytest.approx(2 / 3)
    assert holdout["liquid_met"] is False
    assert targets["phase2"]["measured"] is False
    # With the phase-2 model evaluated, its share is measured against 50%.
    rows += [row("phase2", "holdout", m, r, liquid=liquid[m]) for m, r in rewards.items()]
    phase2 = target_shares(rows)["phase2"]
    assert (phase2["measured"], phase2["target"]) == (True, 0.5)
    assert phase2["splits"]["holdout"]["met"] is True
