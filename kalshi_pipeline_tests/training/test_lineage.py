"""A model's lineage as a record: it reads and writes model.json exactly as the file has
always been, older files (without the keys added since) included."""

from __future__ import annotations

import json
from pathlib import Path

from kalshi_pipeline.env import EnvConfig
from kalshi_pipeline.training.config import profile
from kalshi_pipeline.training.lineage import CandidateResult, Lineage, read_lineage, save_lineage
from kalshi_pipeline.training.validation import ValidationScore

SCORE = ValidationScore(timesteps=1024, score=0.25, low=-0.5, high=1.0, share=0.4)


def one_seed_lineage(**changes) -> Lineage:
    values = dict(
        phase=2,
        algorithm="ppo",
        timesteps=2048,
        seed=3,
        feature_layout="kalshi-market-agnostic-36",
        feature_layout_version=2,
        sessions=(1, 2),
        views=("1/B", "1/A", "2/A"),
        views_sha256="ab" * 32,
        parent_model="out/models/phase1/model.zip",
        config=profile("smoke", seed=3).to_json(),
        selected_by_validation=SCORE,
    )
    return Lineage(**values | changes)


def with_candidates() -> Lineage:
    candidates = (
        CandidateResult(seed=3, validation=SCORE, model=Path("c/seed-3/phase2/model.zip")),
        CandidateResult(
            seed=4,
            validation=ValidationScore(timesteps=0, score=0.0, low=0.0, high=0.0, share=0.0),
            model=Path("c/seed-4/phase2/model.zip"),
        ),
    )
    return one_seed_lineage(candidates=candidates, selection="seed 4: the highest lower end")


def test_records_survive_a_json_round_trip():
    for record in (SCORE, with_candidates().candidates[0], one_seed_lineage(), with_candidates()):
        assert type(record).from_json(json.loads(json.dumps(record.to_json()))) == record


def test_a_candidate_is_listed_flat_as_model_json_always_had_it():
    (first, _) = with_candidates().candidates
    assert first.to_json() == {
        "seed": 3,
        "timesteps": 1024,
        "score": 0.25,
        "low": -0.5,
        "high": 1.0,
        "share": 0.4,
        "model": "c/seed-3/phase2/model.zip",
    }


def test_a_file_of_an_older_version_reads_and_writes_back_the_same(tmp_path):
    """Written before fingerprints and validation: no views_sha256, no
    selected_by_validation, candidates or selection. Nothing is added when it is written
    again, and a file with every key is rewritten byte for byte."""
    older = one_seed_lineage().to_json()
    del older["views_sha256"], older["selected_by_validation"]
    for data in (older, with_candidates().to_json()):
        text = json.dumps(data, indent=1, sort_keys=True)
        (tmp_path / "model.json").write_text(text)

        lineage = read_lineage(tmp_path / "model.zip")
        save_lineage(tmp_path / "again.json", lineage)

        assert (tmp_path / "again.json").read_text() == text
    assert lineage.candidates[1].seed == 4
    assert Lineage.from_json(older).views_sha256 is None
    assert Lineage.from_json(older).selected_by_validation is None


def test_a_lineage_gives_the_env_config_its_model_was_trained_with(tmp_path):
    """Its execution settings included (a tuple back from its JSON list); a file written
    before the execution settings existed has none of their keys and reads as a taker."""
    maker = EnvConfig(execution="maker", latency_ms=300, series_fees=("KXBTC:quadratic",))
    config = profile("smoke", env=maker).to_json()
    save_lineage(tmp_path / "model.json", one_seed_lineage(config=config))
    assert read_lineage(tmp_path / "model.zip").env_config() == maker

    older = one_seed_lineage().to_json()
    older["config"]["env"] = {
        "starting_cash_cents": 5_000, "order_size": 10, "max_position": 100,
        "limit_slippage_cents": 2, "reward_scale": 1.0,
    }  # fmt: skip
    env = Lineage.from_json(older).env_config()
    assert env == EnvConfig(starting_cash_cents=5_000)
    assert env.execution == "taker"
