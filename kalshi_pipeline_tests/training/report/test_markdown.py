"""The report's Markdown: results first, lineage last, the first line the verdict.

Written from hand-made episodes whose figures are worked out in the test (no model is
trained: :func:`write_report` only reads episodes, rows and a summary).
"""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from kalshi_pipeline.env import EnvConfig
from kalshi_pipeline.training.evaluation import Episode, per_market_table, summarise
from kalshi_pipeline.training.report import PLOTS, write_report
from kalshi_pipeline_tests.training.evaluation.handmade import full

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SECTIONS = (
    "## The plan's targets",
    "## Aggregates",
    "## Model against baselines",
    "## Action distribution",
    "## By market type",
    "## By difficulty band",
    "## Spearman correlations",
    "## Per market",
    "## Plots",
    "## What was evaluated",
)


def ep(policy, split, market, session, reward, **fields) -> Episode:
    return full(policy, split, market, session, reward, **fields)


def never_trading_episodes() -> list[Episode]:
    """The model holds (or its orders never fill) everywhere; the rule trades."""
    out = []
    for split, markets in (("holdout", ("KXBTC-A", "KXETH-B", "KXETH-C")), ("train", ("KXFED-D",))):
        for market in markets:
            out += [
                ep("model", split, market, 1, 0.0, hold_actions=90, buy_no_actions=10),
                ep("hold", split, market, 1, 0.0, hold_actions=100),
                ep("imbalance_rule", split, market, 1, 0.3, hold_actions=96,
                   buy_yes_actions=2, sell_yes_actions=2, trades=2, contracts_traded=20,
                   fees_cents=36, max_drawdown_cents=40),
            ]  # fmt: skip
    return out


def write(tmp_path, episodes, name="report", **kwargs):
    rows = per_market_table(episodes)
    keys = sorted({e.view_key for e in episodes})
    difficulties = {key: 0.1 * i for i, key in enumerate(keys)}  # in key order
    return write_report(
        tmp_path / name, episodes, rows, summarise(rows, seed=4), model_path=None,
        lineage=None, difficulties=difficulties, **kwargs,
    ).path  # fmt: skip


def test_the_first_line_says_the_model_never_trades_and_results_come_before_lineage(tmp_path):
    report = write(tmp_path, never_trading_episodes())

    text = report.read_text()
    first = text.splitlines()[0]
    assert first.startswith("# Evaluation report: The model never trades on the holdout")
    assert "3 episodes" in first and "90% of its actions were HOLD" in first
    positions = [text.index(heading) for heading in SECTIONS]
    assert positions == sorted(positions), "sections out of order"
    assert "- holdout: 3 views" in text.split("## What was evaluated")[1]
    for name in PLOTS:
        assert (report.parent / name).read_bytes()[:8] == PNG_SIGNATURE, name
        assert f"]({name})" in text


def test_the_first_line_says_the_model_ties_hold(tmp_path):
    episodes = [
        ep("model", "holdout", "A", 1, 0.0, contracts_traded=10, trades=1),
        ep("hold", "holdout", "A", 1, 0.0),
    ]

    first = write(tmp_path, episodes).read_text().splitlines()[0]

    assert first == (
        "# Evaluation report: The model ties always-HOLD on the holdout: model minus HOLD is "
        "0 on every one of its 1 markets."
    )


def test_the_summary_holds_every_finding_and_the_markdown_shows_them(tmp_path):
    episodes = never_trading_episodes()
    report = write(tmp_path, episodes)
    summary = json.loads((report.parent / "summary.json").read_text())
    text = report.read_text()

    assert summary["headline"] in text.splitlines()[0]
    actions = summary["actions"]["imbalance_rule/holdout"]
    assert actions["action_share"]["BUY_YES"] == pytest.approx(0.02)
    assert (
        "| imbalance_rule/holdout | 96.0% | 2.0% | 2.0% | 0.0% | 0.0% | 2.0 | 20.0 | 0.360 "
        "| 100% |" in text
    )
    # By market type: two KXETH markets on the holdout, the rule makes 0.3 on each.
    eth = summary["by_market_type"]["holdout"]["KXETH"]
    assert (eth["markets"], eth["mean_reward"]["imbalance_rule"], eth["model_minus_hold"]) == (
        2, pytest.approx(0.3), 0.0,
    )  # fmt: skip
    assert "| holdout | KXETH | 2 | 0.000 | 0.300 | 0.000 | 0.000 | 0% |" in text
    assert set(summary["by_difficulty_band"]["holdout"]) == {
        "Q1 (0.00-0.00)", "Q2 (0.10-0.10)", "Q3 (0.20-0.20)",
    }  # fmt: skip
    # The model's reward is constant (never trades): its correlations are undefined.
    assert summary["spearman"]["model/holdout"]["length"]["rho"] is None
    # Targets: phase 3 measured (0 of 3 holdout markets positive), phase 2 not.
    phase3 = summary["targets"]["phase3"]["splits"]["holdout"]
    assert (phase3["markets"], phase3["positive_share"], phase3["met"]) == (3, 0.0, False)
    assert "| phase 3 / holdout | 80% | 3 | 0% | [0%, 0%] | no | 0 | n/a | n/a | n/a |" in text
    assert "| phase 2 | 50% | not measured: no phase-2 model was evaluated |" in text
    # The per-market table is the model's on the holdout.
    per_market = text.split("## Per market: model on holdout")[1].split("\n## ")[0]
    assert "| KXBTC-A | KXBTC | 1 | 0.000 |" in per_market
    assert "KXFED-D" not in per_market


def test_the_phase_two_target_is_reported_when_that_model_was_evaluated(tmp_path):
    episodes = never_trading_episodes()
    episodes += [
        replace(e, policy="phase2", total_reward=0.1 if e.market_ticker != "KXBTC-A" else -0.1)
        for e in episodes
        if e.policy == "model"
    ]

    text = write(tmp_path, episodes).read_text()

    assert "| phase 2 / holdout | 50% | 3 | 67% |" in text
    assert "not measured" not in text


def test_the_report_is_the_same_for_the_same_episodes_and_seed(tmp_path):
    episodes = never_trading_episodes()
    first = write(tmp_path, episodes, "one").parent
    second = write(tmp_path, episodes, "two").parent

    for name in ("report.md", "summary.json", "per_market.csv", "episodes.csv", *PLOTS):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_after_the_execution_the_walk_forward_result_or_that_there_is_none(tmp_path):
    # Session 2 was recorded after training's session 1: the model earns 1.0 more than
    # HOLD on each of its two markets there.
    episodes = never_trading_episodes() + [
        ep(policy, "walk_forward", market, 2, reward, contracts_traded=10 * (policy == "model"))
        for market in ("KXBTC-A", "KXFED-D")
        for policy, reward in (("model", 1.0), ("hold", 0.0))
    ]

    lines = write(tmp_path, episodes).read_text().splitlines()
    without = write(tmp_path, never_trading_episodes(), name="flat").read_text().splitlines()

    assert lines[2].startswith("Execution: taker") and not lines[3]
    assert lines[4].startswith(
        "Walk-forward, on the 2 views of session(s) 2, recorded after every training session: "
        "Model minus always-HOLD on the walk-forward views: +1.000 dollars per market"
    )
    assert "over 2 markets" in lines[4] and "positive on 100% of them" in lines[4]
    assert without[4].startswith("No walk-forward evaluation")


@pytest.mark.parametrize(
    ("env", "line"),
    [
        (
            EnvConfig(),
            "Execution: taker (orders cross the spread at once, up to 2 cents of slippage; "
            "taker fee). The quote_rule baseline rests limit orders: it is played in maker "
            "mode only.",
        ),
        (
            EnvConfig(limit_slippage_cents=1, fee_multiplier=0.5, series_fees=("KXBTC:quadratic",)),
            "Execution: taker (orders cross the spread at once, up to 1 cent of slippage; "
            "taker fee x0.5 (series overrides: KXBTC:quadratic)). The quote_rule baseline "
            "rests limit orders: it is played in maker mode only.",
        ),
        (
            EnvConfig(execution="maker"),
            "Execution: maker (resting limit orders at the touch; post-only; expire after 20 "
            "steps), latency 100 ms constant (cancels 100 ms), risk_averse queue, a trade "
            "through fills its contracts, fees quadratic_with_maker_fees x1 (series "
            "overrides: none).",
        ),
        (
            EnvConfig(
                execution="maker", order_expiry_steps=5, latency_ms=40, cancel_latency_ms=10,
                latency_distribution="lognormal", latency_sigma=0.3, queue_model="power_prob",
                queue_power=3.0, fee_type="quadratic", fee_multiplier=2.0,
                series_fees=("KXBTC:quadratic_with_maker_fees", "KXETH:quadratic:0.5"),
            ),
            "Execution: maker (resting limit orders at the touch; post-only; expire after 5 "
            "steps), latency 40 ms lognormal (sigma 0.3) (cancels 10 ms), power_prob queue "
            "(power 3), a trade through fills its contracts, fees quadratic x2 (series overrides: "
            "KXBTC:quadratic_with_maker_fees, KXETH:quadratic:0.5).",
        ),
    ],
)  # fmt: skip
def test_the_line_under_the_first_names_the_execution_assumptions(tmp_path, env, line):
    report = write(tmp_path, never_trading_episodes(), env=env)
    lines = report.read_text().splitlines()
    summary = json.loads((report.parent / "summary.json").read_text())

    assert lines[1:4] == ["", line, ""]
    assert summary["execution"]["description"] == line
    assert summary["execution"]["settings"]["execution"] == env.execution
    assert summary["execution"]["settings"]["series_fees"] == list(env.series_fees)
