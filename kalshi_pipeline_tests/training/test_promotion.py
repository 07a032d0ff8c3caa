"""Promotion: a challenger replaces the champion only when it plays better on the holdout.

The models are real SB3 models, saved with their lineage and loaded back the way the
pipeline does, whose deterministic policy is fixed by hand: the action layer's weights are
zeroed and its bias picks one action, so "always buys" and "always holds" are exact. On
the simulated markets buying on every step pays the spread and fees again and again; on
hand-made markets whose price climbs all session, buying wins.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from stable_baselines3 import PPO

from kalshi_pipeline.cli import main
from kalshi_pipeline.env import EnvConfig, MarketAgnosticKalshiEnv
from kalshi_pipeline.env.execution import BUY_YES, HOLD
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.training.config import profile
from kalshi_pipeline.training.evaluation import bootstrap_interval, model_policy, rollout
from kalshi_pipeline.training.model_loading import champion_warning
from kalshi_pipeline.training.phases import write_lineage
from kalshi_pipeline.training.promotion import (
    ALWAYS_HOLD,
    MIN_MARKETS,
    Comparison,
    Decision,
    Outcome,
    PromotionError,
    candidate_record,
    champion_problems,
    difference_interval,
)
from kalshi_pipeline.training.registry import Registry, RegistryStatus
from kalshi_pipeline.training.registry_display import history_markdown
from kalshi_pipeline.workflow import promote
from kalshi_pipeline_tests.factories import delta, make_session, snapshot

ACTIVE, RETIRED, LOST = RegistryStatus.ACTIVE, RegistryStatus.RETIRED, RegistryStatus.LOST
REFUSED, FAILED = RegistryStatus.REFUSED, RegistryStatus.FAILED


@pytest.fixture(scope="module")
def holdout():
    """Views of two simulated sessions (the markets the models never trained on)."""
    return [
        view
        for session_id in (1, 2)
        for view in build_market_views(
            simulate_session(session_id, seed=session_id, config=SimulatorConfig(markets=6))
        )
        if len(view) >= 20
    ]


def rising_market(ticker: str, start: int, steps: int = 30) -> list[dict]:
    """A market whose YES bid climbs a cent a step, the spread staying at 2 cents."""
    rows = [snapshot(ticker, seq=1, yes_bids={start: 500}, no_bids={98 - start: 500})]
    seq = 2
    for k in range(1, steps + 1):
        yes, no = start + k, 98 - start - k
        rows += [
            delta(ticker, seq, "yes", yes, 500),
            delta(ticker, seq + 1, "yes", yes - 1, 0),
            delta(ticker, seq + 2, "no", no, 500),
            delta(ticker, seq + 3, "no", no + 1, 0),
        ]
        seq += 4
    return rows


@pytest.fixture(scope="module")
def rising():
    """Three markets that only go up: a model that always buys beats always-HOLD there."""
    rows = [r for i, t in enumerate(("UP-A", "UP-B", "UP-C")) for r in rising_market(t, 30 + i)]
    return build_market_views(make_session(*rows, session_id=9))


def fixed_model(
    path: Path, action: int, views, seed: int = 0, env: EnvConfig | None = None
) -> Path:
    """A saved model (with lineage) whose deterministic policy always plays ``action``;
    its lineage says it was trained with ``env`` (default: the profile's)."""
    model = PPO("MlpPolicy", MarketAgnosticKalshiEnv(views), n_steps=64, seed=seed, device="cpu")
    with torch.no_grad():
        model.policy.action_net.weight.zero_()
        bias = torch.full((5,), -10.0)
        bias[action] = 10.0
        model.policy.action_net.bias.copy_(bias)
    path.parent.mkdir(parents=True, exist_ok=True)
    model.save(path)
    config = profile("smoke", seed=seed, **({} if env is None else {"env": env}))
    write_lineage(path.parent / "model.json", 3, views[:3], config, None, 0)
    return path


@pytest.fixture(scope="module")
def models(tmp_path_factory, holdout):
    root = tmp_path_factory.mktemp("models")
    return {
        "buys": fixed_model(root / "buys" / "model.zip", BUY_YES, holdout),
        "buys_again": fixed_model(root / "buys_again" / "model.zip", BUY_YES, holdout, seed=1),
        "holds": fixed_model(root / "holds" / "model.zip", HOLD, holdout),
    }


# -- the decision ---------------------------------------------------------------------------


def test_the_first_champion_must_beat_hold(tmp_path, holdout, models):
    registry = tmp_path / "registry.json"

    buys = promote(models["buys"], holdout, registry, profile="smoke", run="r1")
    # Holding exactly as HOLD does is no improvement: the interval is [0, 0].
    holds = promote(models["holds"], holdout, registry, profile="smoke", run="r2")

    assert (buys.status, holds.status) == (REFUSED, REFUSED)
    assert buys.champion is None and holds.champion is None
    low, high = buys.comparison.interval
    assert high < 0 and buys.comparison.against == "always-HOLD"
    assert buys.comparison.markets == len({v.market_ticker for v in holdout})
    assert holds.comparison.interval == (0.0, 0.0)
    records = Registry(registry).read()
    assert [r.status for r in records] == [REFUSED, REFUSED]
    first = records[0]
    assert first.model_path == str(models["buys"])
    assert (first.profile, first.run, first.seed, first.views) == ("smoke", "r1", 0, 3)
    assert list(first.sessions) == sorted({v.session_id for v in holdout[:3]})
    assert first.interval == (low, high) and first.markets == buys.comparison.markets
    assert "always-HOLD" in first.reason and "not above 0: refused" in first.reason
    assert f"over {first.markets} holdout markets" in first.reason


def test_a_better_challenger_is_promoted_and_a_worse_one_refused(tmp_path, holdout, rising, models):
    registry = tmp_path / "registry.json"
    # While the markets rose, always-buying beat HOLD: the first champion.
    first = promote(models["buys"], rising, registry)
    assert first.promoted and first.champion.model_path == str(models["buys"])
    assert first.comparison.interval[0] > 0

    # On today's holdout holding beats buying on every step: the challenger wins.
    better = promote(models["holds"], holdout, registry, run="r2")

    assert better.promoted
    assert better.comparison.against == str(models["buys"])
    assert better.comparison.interval[0] > 0
    assert better.champion.model_path == str(models["holds"])
    records = {r.id: r for r in Registry(registry).read()}
    assert records[1].status == RETIRED and records[1].retired_by == 2
    assert records[1].retired_at == records[2].at
    assert records[2].status == ACTIVE

    # A model that buys again is worse than the champion that holds: refused, kept.
    worse = promote(models["buys_again"], holdout, registry, run="r3")

    assert worse.status == REFUSED and not worse.promoted
    assert worse.champion.model_path == str(models["holds"])
    assert worse.comparison.interval[1] < 0
    assert worse.record.against == str(models["holds"])
    assert "refused" in worse.record.reason
    assert [r.status for r in Registry(registry).read()] == [RETIRED, ACTIVE, REFUSED]
    assert champion_problems(Registry(registry).read()) == []
    for decision in (first, better, worse):
        assert Decision.from_json(json.loads(json.dumps(decision.to_json()))) == decision
        shown = json.loads(json.dumps(decision.comparison.to_json()))
        assert Comparison.from_json(shown) == decision.comparison

    # The champion itself again (a run that retrains nothing new) changes nothing.
    again = promote(models["holds"], holdout, registry)
    assert again.status == "unchanged" and len(Registry(registry).read()) == 3
    assert again.status == Outcome.UNCHANGED and again.record == again.champion
    assert Decision.from_json(json.loads(json.dumps(again.to_json()))) == again


def test_each_model_plays_in_its_own_env_config(tmp_path, rising):
    """The champion was trained with orders of one contract: it is judged buying one at a
    time, as it would trade in production, not with the challenger's orders of ten."""
    registry = tmp_path / "registry.json"
    one = EnvConfig(order_size=1)
    small = fixed_model(tmp_path / "small" / "model.zip", BUY_YES, rising, env=one)
    holds = fixed_model(tmp_path / "holds" / "model.zip", HOLD, rising)  # the default env

    first = promote(small, rising, registry)
    challenged = promote(holds, rising, registry)

    buying = model_policy(PPO.load(small, device="cpu"))
    own = [rollout(buying, view, one).total_reward for view in rising]  # one market each
    tens = [rollout(buying, view, EnvConfig()).total_reward for view in rising]
    assert first.promoted and first.comparison.mean_difference == pytest.approx(np.mean(own))
    assert challenged.comparison.against == str(small)
    assert challenged.comparison.mean_difference == pytest.approx(-np.mean(own))
    assert np.mean(tens) != pytest.approx(np.mean(own))


def test_the_champion_is_judged_in_the_challengers_reward_units(tmp_path, rising):
    """Each plays in its own env config, but the rewards compared are in one unit: a
    champion trained with rewards scaled by 10 is judged by its dollars, not ten times
    them (its scale changes nothing it does)."""
    registry = tmp_path / "registry.json"
    scaled = EnvConfig(reward_scale=10.0)
    buys = fixed_model(tmp_path / "buys" / "model.zip", BUY_YES, rising, env=scaled)
    holds = fixed_model(tmp_path / "holds" / "model.zip", HOLD, rising)  # the default env

    first = promote(buys, rising, registry)
    challenged = promote(holds, rising, registry)

    buying = model_policy(PPO.load(buys, device="cpu"))
    dollars = [rollout(buying, view).total_reward for view in rising]  # one market each
    assert first.comparison.mean_difference == pytest.approx(10 * np.mean(dollars))
    assert challenged.comparison.against == str(buys)
    assert challenged.comparison.mean_difference == pytest.approx(-np.mean(dollars))


def test_too_few_holdout_markets_refuse_a_winner(tmp_path, rising, models):
    one_market = [v for v in rising if v.market_ticker == "UP-A"]
    assert len(one_market) < MIN_MARKETS

    decision = promote(models["buys"], one_market, tmp_path / "registry.json")

    assert decision.status == REFUSED and decision.champion is None
    assert decision.comparison.interval[0] > 0  # it did earn more, on one market
    assert "too few markets" in decision.record.reason


def test_a_comparison_that_cannot_run_fails_loudly_and_changes_nothing(
    tmp_path, holdout, rising, models
):
    registry = tmp_path / "registry.json"
    with pytest.raises(PromotionError, match="no holdout view"):
        promote(models["buys"], [], registry)
    gone = tmp_path / "gone" / "model.zip"
    with pytest.raises(PromotionError, match=f"model {gone}: the file"):
        promote(gone, holdout, registry)
    assert [r.status for r in Registry(registry).read()] == [FAILED, FAILED]
    assert "no holdout view" in Registry(registry).read()[0].reason


@pytest.mark.parametrize("damage", ["deleted", "truncated", "lineage damaged"])
def test_a_champion_that_no_longer_loads_is_recorded_lost_and_the_challenger_faces_hold(
    damage, tmp_path, holdout, rising, models, capsys
):
    registry = tmp_path / "home" / "artifacts" / "models" / "registry.json"
    champion = fixed_model(tmp_path / "champion" / "model.zip", BUY_YES, holdout)
    assert promote(champion, rising, registry).promoted
    if damage == "deleted":
        champion.unlink()
        assert champion_problems(Registry(registry).read()) == [
            f"champion model {champion} is missing"
        ]
        # `models` still exits 0 (the history is readable) but warns on stderr.
        assert main(["models", "--home", str(tmp_path / "home")]) == 0
        warning = capsys.readouterr().err.strip()
        assert warning == champion_warning(Registry(registry).champion())
        assert str(champion) in warning and "lost" in warning
    elif damage == "truncated":
        champion.write_bytes(champion.read_bytes()[:100])
        assert "is not a readable zip archive" in champion_warning(Registry(registry).champion())
    else:
        (champion.parent / "model.json").write_text("{not json")
        assert main(["models", "--home", str(tmp_path / "home")]) == 0
        warning = capsys.readouterr().err.strip()
        assert "has no readable model.json beside it (JSONDecodeError)" in warning

    # The next promotion does not fail on it: the champion is recorded lost, and the
    # challenger must beat always-HOLD, as the first champion had to.
    decision = promote(models["buys_again"], rising, registry)
    records = Registry(registry).read()
    assert [r.status for r in records] == [LOST, ACTIVE]
    assert decision.promoted and decision.record.against == ALWAYS_HOLD
    assert decision.lost == records[0]
    assert records[0].retired_by == records[1].id and records[0].retired_at == records[1].at
    assert str(champion) in records[0].reason and "promoted" in records[0].reason
    assert champion_problems(records) == []


def test_a_candidates_record_summarises_its_lineage(tmp_path, holdout, models):
    record = candidate_record(models["buys"], "smoke", "r1")
    unread = candidate_record(tmp_path / "gone" / "model.zip")

    assert (record.model_path, record.profile, record.run) == (str(models["buys"]), "smoke", "r1")
    assert record.sessions == tuple(sorted({v.session_id for v in holdout[:3]}))
    assert (record.views, record.seed, record.algorithm, record.timesteps) == (3, 0, "ppo", 0)
    assert unread.to_json() == {
        "model_path": str(tmp_path / "gone" / "model.zip"), "profile": None, "run": "",
        "at": unread.at, "sessions": [], "views": 0, "seed": None, "algorithm": None,
        "id": None, "status": None,
    }  # fmt: skip


# -- the interval ---------------------------------------------------------------------------


def test_the_interval_is_the_reports_own():
    differences = [0.5, 1.5, -0.25, 2.0, 0.75, 1.0]

    low, high = difference_interval(differences, seed=3)

    assert (low, high) == bootstrap_interval(np.array(differences), seed=3)
    assert low < np.mean(differences) < high
    assert difference_interval([0.0, 0.0, 0.0]) == (0.0, 0.0)


# -- the history ----------------------------------------------------------------------------


def test_the_history_round_trips_and_shows_the_champion_first(tmp_path, holdout, rising, models):
    registry = tmp_path / "models" / "registry.json"
    promote(models["buys"], rising, registry, profile="smoke", run="a")
    promote(models["buys_again"], holdout, registry, profile="smoke", run="b")
    written = json.loads(registry.read_text())["models"]

    records = Registry(registry).read()

    assert [r.to_json() for r in records] == written and [r.id for r in records] == [1, 2]
    table = history_markdown(records).splitlines()
    assert table[0].startswith("| id | status |")
    assert table[2].startswith("| 1 | active |") and str(models["buys"]) in table[2]
    assert table[3].startswith("| 2 | refused |")
    assert not list(registry.parent.glob(".registry.json.*"))  # no temporary file left


def test_models_warns_when_the_history_holds_two_champions(tmp_path, rising, models, capsys):
    """A history edited by hand with a second active record: ``models`` says production
    is not a tested model, naming both, rather than pick one silently."""
    registry = tmp_path / "home" / "artifacts" / "models" / "registry.json"
    assert promote(models["buys"], rising, registry).promoted
    history = json.loads(registry.read_text())
    history["models"].append({**history["models"][0], "id": 2})
    registry.write_text(json.dumps(history))

    assert main(["models", "--home", str(tmp_path / "home")]) == 0

    [warning] = capsys.readouterr().err.strip().splitlines()
    assert warning == "warning: production is not a tested model: 2 active models (ids [1, 2])"
