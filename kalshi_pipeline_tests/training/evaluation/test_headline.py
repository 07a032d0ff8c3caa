"""The report's first line: that the model never trades, ties always-HOLD, or its result."""

from __future__ import annotations

from dataclasses import replace

import numpy as np

from kalshi_pipeline.training.evaluation import bootstrap_interval, headline, per_market_table
from kalshi_pipeline_tests.training.evaluation.handmade import full


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
