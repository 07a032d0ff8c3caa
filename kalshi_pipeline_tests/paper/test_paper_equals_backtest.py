"""Paper trading records what the backtest records, bit for bit: every decision (its
observation as bytes), outcome and fill, in taker and maker mode."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paper.backtest import backtest
from kalshi_pipeline.paper.records import Records, compare
from kalshi_pipeline.paper.trader import ChosenModel
from kalshi_pipeline.training.evaluation.policies import quote_policy
from kalshi_pipeline_tests.paper.recorded import (
    SEED_PARAMS,
    paper_trade,
    recorded_session,
    untrained_model,
)


@pytest.mark.parametrize("execution", ["taker", "maker"])
@pytest.mark.parametrize("seed", SEED_PARAMS)
def test_paper_trading_records_what_the_backtest_records(seed, execution):
    raw = recorded_session(seed)
    views = build_market_views(raw)
    config = EnvConfig(execution=execution)
    model = untrained_model(views, config)
    paper = paper_trade(raw, config, model)
    expected = backtest(views, config, lambda ticker: model)
    assert compare(paper, expected) == []
    assert paper.counts() == expected.counts()
    assert len(paper.decisions) == sum(len(view) for view in views)
    actions = Counter(decision.action for decision in paper.decisions)
    assert len(actions) > 1  # not a policy that only holds
    if execution == "taker":
        assert sum(outcome.filled != 0 for outcome in paper.outcomes) > 0


def test_resting_orders_fill_alike_in_paper_and_backtest():
    """The quote rule lets its orders rest, so they fill: every fill is equal."""
    raw = recorded_session(0)
    views = build_market_views(raw)
    config = EnvConfig(execution="maker")
    model = ChosenModel(name="quote-rule", path="", policy=quote_policy())
    paper = paper_trade(raw, config, model)
    expected = backtest(views, config, lambda ticker: model)
    assert compare(paper, expected) == []
    assert len(paper.fills) == len(expected.fills) > 0


def test_a_different_observation_is_caught():
    """compare() sees one bit of one observation."""
    raw = recorded_session(0)
    views = build_market_views(raw)
    model = untrained_model(views, EnvConfig())
    records = backtest(views, EnvConfig(), lambda ticker: model)
    changed = bytearray(records.decisions[7].observation)
    changed[0] ^= 1
    altered = dataclasses.replace(records.decisions[7], observation=bytes(changed))
    tampered = Records(decisions=[*records.decisions[:7], altered, *records.decisions[8:]])
    tampered.outcomes, tampered.fills = records.outcomes, records.fills
    problems = compare(tampered, records)
    assert len(problems) == 1 and f"step {altered.step}" in problems[0]
