"""Which model plays each market the follower starts: the champion as it stands when the
market's first step arrives (always-HOLD while there is none), in the env config its
lineage gives; a market played before a restart keeps its model."""

from __future__ import annotations

from pathlib import Path

import pytest

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paper.follow_models import ModelSource
from kalshi_pipeline.paper.model_choice import recorded_models
from kalshi_pipeline.paper.records import MarketRecord, Records
from kalshi_pipeline.paper.replay import by_millisecond
from kalshi_pipeline.training.registry import (
    PromotionError,
    Registry,
    RegistryRecord,
    RegistryStatus,
)
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot
from kalshi_pipeline_tests.paper.following import tiny_model


def climbing(ticker: str, start_ms: int, steps: int = 12) -> list[dict]:
    """A market whose first row comes at ``start_ms``, its YES bid climbing a cent a step."""
    rows = [snapshot(ticker, 1, {40: 50}, {58: 50}, ts=start_ms)]
    for k in range(1, steps + 1):
        rows += [
            delta(ticker, 2 * k, "yes", 40 + k, 50, ts=start_ms + 10 * k),
            delta(ticker, 2 * k + 1, "yes", 39 + k, 0, ts=start_ms + 10 * k),
        ]
    return rows


@pytest.fixture(scope="module")
def staggered():
    """Market EARLY starts at once; LATE-A and LATE-B a second later."""
    rows = climbing("EARLY", T0_MS) + climbing("LATE-A", T0_MS + 1000)
    return make_session(*rows, *climbing("LATE-B", T0_MS + 1005))


@pytest.fixture(scope="module")
def models(tmp_path_factory, staggered):
    root, views = tmp_path_factory.mktemp("models"), build_market_views(staggered)
    return {mode: tiny_model(root / mode, mode, views) for mode in ("taker", "maker")}


def champion(registry, model) -> None:
    Registry(registry).append(RegistryRecord(model_path=str(model), status=RegistryStatus.ACTIVE))


def play(trader, session, before_ms: int | None = None, then=None) -> Records:
    """Feed ``session`` a millisecond at a time; ``then()`` once the rows before
    ``before_ms`` are in."""
    records = Records()
    for snapshots, deltas, trades in by_millisecond(session):
        ms = min(t["timestamp_ms"][0].as_py() for t in (snapshots, deltas) if t.num_rows)
        if then is not None and ms >= before_ms:
            then()
            then = None
        records.extend(trader.add(snapshots, deltas, trades))
    records.extend(trader.close())
    return records


def models_played(records: Records) -> dict[str, tuple[str, str]]:
    return {m.market: (m.model, m.model_path) for m in records.markets}


def test_always_hold_plays_while_no_model_has_won(tmp_path, staggered):
    source = ModelSource(registry_path=tmp_path / "registry.json")
    records = play(source.trader(staggered.info, {}), staggered)
    assert set(models_played(records).values()) == {("always-HOLD", "")}
    assert {d.action for d in records.decisions} == {0}
    assert source.current().config == EnvConfig()


def test_a_champion_promoted_mid_session_plays_the_markets_that_start_after_it(
    tmp_path, staggered, models
):
    registry = tmp_path / "registry.json"
    champion(registry, models["taker"])
    source = ModelSource(registry_path=registry)
    trader = source.trader(staggered.info, {})
    records = play(trader, staggered, T0_MS + 1000, lambda: champion(registry, models["maker"]))
    assert models_played(records) == {
        "EARLY": ("model-1", str(models["taker"])),
        "LATE-A": ("model-2", str(models["maker"])),
        "LATE-B": ("model-2", str(models["maker"])),
    }
    # Each plays in its own lineage's execution mode.
    assert trader.episodes["EARLY"].env.config.execution == "taker"
    assert trader.episodes["LATE-A"].env.config.execution == "maker"


def test_a_market_started_before_a_restart_keeps_its_model(tmp_path, staggered, models):
    registry = tmp_path / "registry.json"
    champion(registry, models["taker"])
    champion(registry, models["maker"])  # the champion now
    started = {"EARLY": MarketRecord("EARLY", "model-1", str(models["taker"]))}
    trader = ModelSource(registry_path=registry).trader(staggered.info, started)
    played = models_played(play(trader, staggered))
    assert played["EARLY"] == ("model-1", str(models["taker"]))
    assert played["LATE-A"] == ("model-2", str(models["maker"]))


def test_a_fixed_model_is_named_by_its_file_and_a_broken_one_is_refused(tmp_path, models):
    assert ModelSource(model_path=models["maker"]).current().name == str(models["maker"])
    broken = tmp_path / "broken" / "model.zip"
    broken.parent.mkdir()
    broken.write_bytes(b"not a zip")
    with pytest.raises(PromotionError, match="model.json is missing"):
        ModelSource(model_path=broken).current()


def test_a_fixed_model_given_by_a_relative_path_is_recorded_by_its_absolute_one(
    tmp_path, staggered, models, monkeypatch
):
    """The records name the file; a resumed follower or the session's backtest reading
    them may run in another directory."""
    monkeypatch.chdir(models["maker"].parent.parent)
    relative = Path(models["maker"].parent.name) / models["maker"].name
    records = play(ModelSource(model_path=relative).trader(staggered.info, {}), staggered)
    monkeypatch.chdir(tmp_path)  # elsewhere, the recorded file is the one that played
    assert set(models_played(records).values()) == {(str(models["maker"]), str(models["maker"]))}
    assert recorded_models(records, {})["EARLY"].config.execution == "maker"
