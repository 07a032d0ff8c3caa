"""Playing episodes: what a rollout records from the steps, and that evaluation repeats."""

from __future__ import annotations

import json
import math
from dataclasses import replace

import pytest

from kalshi_pipeline.env.execution import BUY_NO, BUY_YES, HOLD, SELL_YES
from kalshi_pipeline.env.trading_env import EnvConfig
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.market.split import SplitName
from kalshi_pipeline.training.evaluation import (
    Episode,
    evaluate_policies,
    hold_policy,
    model_policy,
    random_policy,
    rollout,
    round_trip_fees_cents,
)
from kalshi_pipeline_tests.env.test_env_rules import view_of_books
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot, trade, with_tape


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


def test_an_episode_reads_back_from_its_json_and_is_a_row_of_episodes_csv(views):
    policies = {"random": random_policy}
    (played,) = evaluate_policies(policies, {"walk_forward": views[:1]}, seed=2)

    data = played.to_json()
    again = Episode.from_json(json.loads(json.dumps(data)))

    assert again == played
    assert again.split is SplitName.WALK_FORWARD and again.policy == "random"
    assert list(data)[:5] == ["policy", "split", "view_key", "market_ticker", "session_id"]
    assert list(data)[-1] == "round_trip_fees_cents"
    # Played outside an evaluation, an episode has no policy or split (empty in a file).
    alone = rollout(hold_policy(), views[0])
    assert (alone.to_json()["policy"], alone.to_json()["split"]) == ("", "")
    assert Episode.from_json(json.loads(json.dumps(alone.to_json()))) == alone


def test_a_maker_step_that_fills_both_books_counts_every_contract():
    """Resting orders on both books, each filled by a trade before the same step: the
    env's signed ``filled`` nets them to 0, its ``fills`` list both; the episode counts
    one step with a fill and the ten contracts (five a side) that traded."""
    ticker = "KXTEST-A"
    raw = make_session(
        snapshot(ticker, seq=1, yes_bids={40: 5, 39: 5}, no_bids={55: 5, 54: 5}, ts=T0_MS + 1000),
        *(delta(ticker, seq=s, side="yes", price=39, new_size=4 + s, ts=T0_MS + 1000 * s)
          for s in (2, 3, 4)),
    )  # fmt: skip
    # Before step 2: a taker sells YES into the YES bid at 40 and one buys YES from the
    # NO bid at 55, ten each: five beyond each order's queue of five.
    raw = with_tape(
        raw,
        trade(ticker, "t1", 40, 10, "no", ts=T0_MS + 2500),
        trade(ticker, "t2", 45, 10, "yes", ts=T0_MS + 2600),
    )
    (view,) = build_market_views(raw)
    actions = iter([BUY_YES, BUY_NO, HOLD, HOLD])
    maker = EnvConfig(execution="maker", latency_ms=0)

    episode = rollout(lambda obs: next(actions), view, maker)

    assert (episode.trades, episode.contracts_traded) == (1, 10)
    assert episode.fees_cents == 6  # the maker fee of five contracts at 40 and at 55
