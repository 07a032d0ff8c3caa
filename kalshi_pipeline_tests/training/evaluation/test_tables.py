"""The per-market table and the summary over markets, from hand-made episodes and rows."""

from __future__ import annotations

import json
import statistics

import numpy as np
import pytest

from kalshi_pipeline.market.split import SplitName
from kalshi_pipeline.training.evaluation import (
    EvaluationSummary,
    PerMarketRow,
    bootstrap_interval,
    market_type,
    per_market_table,
    summarise,
)
from kalshi_pipeline_tests.training.evaluation.handmade import episode, full, row


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

    keys = [(r.policy, r.split, r.market_ticker) for r in rows]
    assert keys == [
        ("hold", "holdout", "MKT-A"),
        ("model", "holdout", "MKT-A"),
        ("model", "holdout", "MKT-B"),
        ("model", "train", "MKT-A"),
    ]
    a = rows[1]
    assert a.episodes == 3
    assert a.mean_reward == pytest.approx(1 / 3)
    assert a.std_reward == pytest.approx(statistics.pstdev([2.0, -1.0, 0.0]))  # ddof=0
    assert (a.min_reward, a.max_reward) == (-1.0, 2.0)
    assert a.mean_length == pytest.approx(70.0)
    assert a.success_rate == pytest.approx(1 / 3)  # a reward of exactly 0 is no success
    assert a.mean_final_value_cents == pytest.approx((10_200 + 9_900 + 10_000) / 3)
    b = rows[2]
    assert (b.episodes, b.mean_reward, b.std_reward, b.success_rate) == (
        1,
        0.5,
        0.0,
        1.0,
    )
    assert rows[0].success_rate == 0.0


def test_per_market_rows_carry_drawdown_trades_turnover_fees_type_and_liquidity():
    episodes = [
        full("model", "holdout", "KXBTC-A", 1, 1.0, trades=2, contracts_traded=20,
             fees_cents=36, max_drawdown_cents=168, avg_spread_cents=2.0,
             round_trip_fees_cents=3.6, market_coverage=0.5),
        full("model", "holdout", "KXBTC-A", 2, -1.0, trades=4, contracts_traded=30,
             fees_cents=50, max_drawdown_cents=300, avg_spread_cents=3.0,
             round_trip_fees_cents=3.6, market_coverage=1.0),
        full("model", "holdout", "KXETH-B", 1, 0.0, avg_spread_cents=9.0,
             round_trip_fees_cents=3.6),
        full("model", "holdout", "KXETH-C", 1, 0.0, avg_spread_cents=3.6,
             round_trip_fees_cents=3.6),
    ]  # fmt: skip

    a, b, c = per_market_table(episodes)

    assert a.market_ticker == "KXBTC-A" and a.market_type == "KXBTC"
    assert a.max_drawdown == 3.0  # the worst episode's, in dollars
    assert a.mean_trades == 3.0
    assert a.mean_contracts_traded == 25.0
    assert a.mean_fees == pytest.approx(0.43)
    assert a.market_coverage == 0.75
    assert (a.avg_spread_cents, a.liquid) == (2.5, True)
    assert (b.market_type, b.liquid, b.mean_trades, b.max_drawdown) == (
        "KXETH", False, 0.0, 0.0,
    )  # fmt: skip
    assert not c.liquid  # a spread equal to the fees is not under them


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

    aggregates = summary.aggregates
    assert list(aggregates) == [
        ("hold", "holdout"), ("hold", "train"), ("model", "holdout"), ("model", "train"),
        ("random", "holdout"), ("random", "train"),
    ]  # fmt: skip
    assert aggregates[("model", "train")].markets == 2
    assert aggregates[("model", "train")].mean_reward == pytest.approx(2.0)
    assert aggregates[("model", "train")].positive_market_share == 1.0
    assert aggregates[("model", "holdout")].mean_reward == pytest.approx(-0.25)
    assert aggregates[("model", "holdout")].positive_market_share == 0.5
    assert aggregates[("model", "holdout")].mean_reward_ci95 == bootstrap_interval(
        np.array([-1.0, 0.5]), 5
    )

    differences = summary.differences
    assert list(differences) == [
        ("hold", "holdout"), ("hold", "train"), ("random", "holdout"), ("random", "train"),
    ]  # fmt: skip
    assert differences[("hold", "train")].mean_difference == pytest.approx(2.0)
    # (1 - -2) and (3 - 1): the model's gain on each market, averaged.
    assert differences[("random", "train")].mean_difference == pytest.approx(2.5)
    assert differences[("random", "train")].ci95 == bootstrap_interval(np.array([3.0, 2.0]), 5)
    assert differences[("random", "holdout")].markets == 1
    assert differences[("random", "holdout")].mean_difference == pytest.approx(2.0)

    # Train minus holdout: (1 + 3) / 2 - (-1 + 0.5) / 2.
    assert summary.generalisation_gap == pytest.approx(2.25)
    assert summarise([r for r in rows if r.split == "train"]).generalisation_gap is None


def test_market_type_is_the_series_prefix():
    assert market_type("KXBTC-26JAN-S0003") == "KXBTC"
    assert market_type("KXFED-26JAN") == "KXFED"
    assert market_type("PLAIN") == "PLAIN"


def summary_of_two_splits() -> EvaluationSummary:
    rows = [
        row("model", "train", "A", 1.0),
        row("model", "holdout", "C", -1.0),
        row("model", "holdout", "D", 0.5),
        row("hold", "holdout", "C", 0.0),
        row("hold", "holdout", "D", 0.25),
    ]
    return summarise(rows, seed=5)


def test_summary_json_names_results_by_policy_and_split_and_differences_by_baseline():
    summary = summary_of_two_splits()

    file = summary.summary_file_json()

    assert list(file) == ["aggregates", "differences", "generalisation_gap", "seed", "intervals"]
    assert list(file["aggregates"]) == ["hold/holdout", "model/holdout", "model/train"]
    assert file["aggregates"]["model/holdout"] == {
        "markets": 2,
        "mean_reward": -0.25,
        "mean_reward_ci95": list(bootstrap_interval(np.array([-1.0, 0.5]), 5)),
        "positive_market_share": 0.5,
    }
    assert list(file["differences"]) == ["model-vs-hold/holdout"]
    assert file["differences"]["model-vs-hold/holdout"]["mean_difference"] == pytest.approx(-0.375)
    assert (file["generalisation_gap"], file["seed"]) == (pytest.approx(1.25), 5)
    assert file["intervals"] == "95% BCa bootstrap of the mean over markets, 2000 resamples, seed 5"


def test_a_summary_and_a_per_market_row_read_back_from_their_json():
    summary = summary_of_two_splits()
    assert EvaluationSummary.from_json(json.loads(json.dumps(summary.to_json()))) == summary
    assert summarise([]).generalisation_gap is None
    empty = summarise([])
    assert EvaluationSummary.from_json(json.loads(json.dumps(empty.to_json()))) == empty

    row_of_table = per_market_table([full("model", "holdout", "KXBTC-A", 1, 1.5,
                                          avg_spread_cents=2.0, round_trip_fees_cents=3.6,
                                          market_coverage=0.5)])[0]  # fmt: skip
    again = PerMarketRow.from_json(json.loads(json.dumps(row_of_table.to_json())))
    assert again == row_of_table
    assert again.split is SplitName.HOLDOUT
    assert list(row_of_table.to_json())[:4] == ["policy", "split", "market_ticker", "market_type"]
