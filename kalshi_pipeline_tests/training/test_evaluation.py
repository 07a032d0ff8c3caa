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
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from scipy import stats
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
    action_distribution,
    baseline_policies,
    bootstrap_interval,
    difficulty_bands,
    evaluate_policies,
    grouped,
    headline,
    hold_policy,
    imbalance_policy,
    market_type,
    model_policy,
    per_market_table,
    random_policy,
    rollout,
    round_trip_fees_cents,
    spearman,
    spearman_table,
    summarise,
    target_shares,
    wins_needed,
)
from kalshi_pipeline.training.phases import write_lineage
from kalshi_pipeline.training.report import PLOTS
from kalshi_pipeline.workflow import Split, evaluate
from kalshi_pipeline_tests.env.test_env_rules import view_of_books

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


def test_wins_needed_is_the_fewest_wins_whose_interval_clears_zero():
    def low(markets, wins):
        values = np.zeros(markets)
        values[:wins] = 1.0
        return bootstrap_interval(values)[0]

    for markets in (2, 5, 13, 15, 27, 60):
        wins = wins_needed(markets)
        assert low(markets, wins) > 0
        assert low(markets, wins - 1) <= 0
    # The robustness table's thin case: 2 wins of 15 validation markets are not enough.
    assert wins_needed(15) > 2
    assert wins_needed(1) == 1 and wins_needed(0) is None


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


def test_evaluating_reports_its_progress_and_its_end(views):
    policies = {"random": random_policy, "hold": lambda seed: hold_policy()}
    splits = {"train": views[:3], "holdout": views[3:5]}
    lines: list[str] = []

    episodes = evaluate_policies(
        policies, splits, seed=1, on_progress=lines.append, every_seconds=math.inf
    )  # fmt: skip
    assert lines == ["evaluated: 10 episodes (2 policies)"]  # no interval passed: only the end
    assert evaluate_policies(
        policies, splits, seed=1, on_progress=lines.append, every_seconds=0
    ) == episodes  # fmt: skip

    assert lines[1:] == [
        *(f"evaluating: {2 * n}/10 episodes (train views)" for n in (1, 2, 3)),
        *(f"evaluating: {2 * n}/10 episodes (holdout views)" for n in (4, 5)),
        "evaluated: 10 episodes (2 policies)",
    ]


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


# -- trades, turnover, fees and drawdown, from what the steps report --------------------------


def scripted(actions):
    """A policy that plays ``actions`` in order, whatever it observes."""
    moves = iter(actions)
    return lambda obs: next(moves)


def test_a_rollout_counts_trades_turnover_fees_drawdown_and_actions_from_the_steps():
    # The YES bid: 40 (YES ask 45), up to 60, down to 30, back to 50.
    books = [
        ({40: 100}, {55: 100}),
        ({60: 100}, {35: 100}),
        ({30: 100}, {55: 100}),
        ({50: 100}, {45: 100}),
        ({50: 100}, {45: 100}),
    ]
    view = replace(view_of_books(books, ticker="KXBTC-26JAN-S0003"), avg_spread=2.0)
    # Buy 10 YES at 45 (fee ceil(17.3) = 18c), hold through the rise and the fall, sell 10
    # at 50 (fee ceil(17.5) = 18c), then a sell with nothing held: no fill, no fee.
    result = rollout(scripted([BUY_YES, HOLD, HOLD, SELL_YES, SELL_YES]), view)

    assert (result.trades, result.contracts_traded, result.fees_cents) == (2, 20, 36)
    # Cash 10000 - 450 - 18 = 9532: worth 10132 at the bid of 60 (the peak), 9832 at 30.
    # The drawdown is from that peak (300), not from the starting cash (168).
    assert result.max_drawdown_cents == 300
    assert result.final_value_cents == 10_000 - 450 - 18 + 500 - 18
    assert result.total_reward == pytest.approx(0.14)
    assert result.action_counts == (2, 1, 2, 0, 0)
    assert (result.hold_actions, result.buy_yes_actions, result.sell_yes_actions) == (2, 1, 2)
    # The view's statistics ride along: mean mid (42.5 + 62.5 + 37.5 + 52.5 + 52.5) / 5 =
    # 49.5, where a round trip of 10 contracts costs 2 * 18c / 10 = 3.6c a contract.
    assert result.mean_mid_cents == pytest.approx(49.5)
    assert result.round_trip_fees_cents == pytest.approx(3.6)
    assert (result.market_coverage, result.avg_spread_cents) == (1.0, 2.0)
    assert result.liquid  # a 2c spread is under 3.6c of fees
    assert not replace(result, avg_spread_cents=3.6).liquid
    # HOLD on the same view: no trade, no fee, no drawdown.
    held = rollout(hold_policy(), view)
    assert (held.trades, held.contracts_traded, held.fees_cents, held.max_drawdown_cents) == (
        0, 0, 0, 0,
    )  # fmt: skip


def test_round_trip_fees_follow_kalshis_fee_at_the_mid():
    assert round_trip_fees_cents(50, 10) == pytest.approx(3.6)  # 2 * ceil(17.5) / 10
    assert round_trip_fees_cents(10, 10) == pytest.approx(1.4)  # 2 * ceil(6.3) / 10
    assert round_trip_fees_cents(50, 100) == pytest.approx(3.5)  # 2 * 175 / 100
    assert math.isnan(round_trip_fees_cents(math.nan, 10))


def full(policy, split, market, session, reward, **fields):
    """A hand-made episode with the fields the report reads."""
    return replace(episode(policy, split, market, session, reward), **fields)


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

    assert a["market_ticker"] == "KXBTC-A" and a["market_type"] == "KXBTC"
    assert a["max_drawdown"] == 3.0  # the worst episode's, in dollars
    assert a["mean_trades"] == 3.0
    assert a["mean_contracts_traded"] == 25.0
    assert a["mean_fees"] == pytest.approx(0.43)
    assert a["market_coverage"] == 0.75
    assert (a["avg_spread_cents"], a["liquid"]) == (2.5, True)
    assert (b["market_type"], b["liquid"], b["mean_trades"], b["max_drawdown"]) == (
        "KXETH", False, 0.0, 0.0,
    )  # fmt: skip
    assert not c["liquid"]  # a spread equal to the fees is not under them


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


# -- the first line ---------------------------------------------------------------------------


def test_the_first_line_says_when_the_model_never_trades():
    episodes = [
        full("model", "holdout", "A", 1, 0.0, hold_actions=30, buy_yes_actions=10),
        full("model", "holdout", "B", 1, 0.0, hold_actions=60),
        full("hold", "holdout", "A", 1, 0.0, hold_actions=40),
        full("hold", "holdout", "B", 1, 0.0, hold_actions=60),
        full("model", "train", "C", 1, 2.0, contracts_traded=10),  # it trades on train only
    ]

    line = headline(episodes, per_market_table(episodes))

    assert line.startswith("The model never trades on the holdout")
    assert "2 episodes" in line and "90% of its actions were HOLD" in line


def test_the_first_line_says_when_the_model_ties_hold_on_every_market():
    # It trades, but its mean reward is HOLD's on every market (a gain and a loss cancel).
    episodes = [
        full("model", "holdout", "A", 1, 1.0, contracts_traded=10),
        full("model", "holdout", "A", 2, -1.0, contracts_traded=10),
        full("model", "holdout", "B", 1, 0.0, contracts_traded=10),
        full("hold", "holdout", "A", 1, 0.0),
        full("hold", "holdout", "A", 2, 0.0),
        full("hold", "holdout", "B", 1, 0.0),
    ]

    line = headline(episodes, per_market_table(episodes))

    assert line.startswith("The model ties always-HOLD on the holdout")
    assert "every one of its 2 markets" in line
    # One cent of difference on one market and it no longer ties: the line gives the result.
    episodes[2] = replace(episodes[2], total_reward=0.01)
    line = headline(episodes, per_market_table(episodes), seed=3)
    assert line.startswith("Model minus always-HOLD on the holdout: +0.005 dollars per market")
    low, high = bootstrap_interval(np.array([0.0, 0.01]), 3)
    assert f"[{low:+.3f}, {high:+.3f}] over 2 markets" in line
    assert "positive on 50% of them" in line


# -- intervals and correlations ------------------------------------------------------------


def test_bootstrap_interval_is_scipys_bca_interval_with_the_seed():
    values = np.random.default_rng(7).normal(0.5, 1.0, 40)

    direct = stats.bootstrap(
        (values,), np.mean, confidence_level=0.95, n_resamples=2000, method="BCa",
        rng=np.random.default_rng(11),
    ).confidence_interval  # fmt: skip

    assert bootstrap_interval(values, seed=11) == pytest.approx((direct.low, direct.high))
    assert bootstrap_interval(values, seed=11) == bootstrap_interval(values, seed=11)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's own one-resample call
def test_bootstrap_interval_falls_back_on_constant_data_and_undefined_bca():
    # Constant data (one value included): BCa is undefined; every resample has that mean.
    assert bootstrap_interval(np.array([0.7, 0.7, 0.7, 0.7])) == (0.7, 0.7)
    assert bootstrap_interval(np.array([-2.0])) == (-2.0, -2.0)
    # One resample: BCa comes out NaN, the percentile interval of the same resample stands.
    values = np.array([0.0, 1.0, 5.0])
    percentile = stats.bootstrap(
        (values,), np.mean, n_resamples=1, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval
    assert bootstrap_interval(values, seed=0, samples=1) == pytest.approx(
        (percentile.low, percentile.high)
    )
    assert all(math.isfinite(x) for x in bootstrap_interval(values, seed=0, samples=1))


def test_spearman_on_a_known_ranking():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # Ranks of y: 2 1 4 3 5 -> sum of squared rank differences 4 -> 1 - 6 * 4 / 120 = 0.8
    # (ranks, not values: Pearson's r of these is 0.72).
    y = np.array([2.0, 1.0, 400.0, 30.0, 5000.0])
    assert spearman(x, y)["rho"] == pytest.approx(0.8)
    assert spearman(x, y)["p_value"] == pytest.approx(stats.spearmanr(x, y).pvalue)
    assert spearman(x, -x)["rho"] == pytest.approx(-1.0)
    # Unknown values are dropped pairwise; a constant series or under 3 pairs is undefined.
    assert spearman(np.array([1.0, math.nan, 3.0, 4.0]), np.array([1.0, 9.0, 2.0, 3.0]))["n"] == 3
    assert spearman(x, np.zeros(5)) == {"rho": None, "p_value": None, "n": 5}
    assert spearman(x[:2], x[:2])["rho"] is None


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


# -- market type, difficulty band, the plan's targets ----------------------------------------


def test_market_type_is_the_series_prefix():
    assert market_type("KXBTC-26JAN-S0003") == "KXBTC"
    assert market_type("KXFED-26JAN") == "KXFED"
    assert market_type("PLAIN") == "PLAIN"


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
        {**row("model", "holdout", "KXBTC-A", 1.0), "market_type": "KXBTC"},
        {**row("model", "holdout", "KXBTC-B", -0.5), "market_type": "KXBTC"},
        {**row("model", "holdout", "KXETH-C", 2.0), "market_type": "KXETH"},
        {**row("hold", "holdout", "KXBTC-A", 0.0), "market_type": "KXBTC"},
        {**row("hold", "holdout", "KXBTC-B", 0.5), "market_type": "KXBTC"},
        {**row("model", "train", "KXETH-D", -1.0), "market_type": "KXETH"},
    ]

    groups = grouped(rows, lambda r: r["market_type"])

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
    rows = [{**row("model", "holdout", m, r), "liquid": liquid[m]} for m, r in rewards.items()]

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
    rows += [{**row("phase2", "holdout", m, r), "liquid": liquid[m]} for m, r in rewards.items()]
    phase2 = target_shares(rows)["phase2"]
    assert (phase2["measured"], phase2["target"]) == (True, 0.5)
    assert phase2["splits"]["holdout"]["met"] is True


def test_baseline_policies_add_the_phase_two_model_when_given(untrained_model):
    assert "phase2" not in baseline_policies(untrained_model)
    policies = baseline_policies(untrained_model, phase2_model=untrained_model)
    assert list(policies) == ["model", "phase2", "random", "hold", "imbalance_rule"]
