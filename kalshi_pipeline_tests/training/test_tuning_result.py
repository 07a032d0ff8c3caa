"""The tuning result's records: a hyperparameter file's content, round trip through JSON."""

import json

from kalshi_pipeline.training.config import AlgorithmConfig
from kalshi_pipeline.training.tuning_result import (
    HYPERPARAMETERS_FORMAT,
    ScoredTrial,
    StudySummary,
    TuningResult,
)


def scored(trial: int, ci95=(-0.1, 0.3)) -> ScoredTrial:
    return ScoredTrial(
        trial=trial,
        objective=-0.1,
        model_minus_hold=0.05,
        ci95=ci95,
        share_above_hold=0.4,
        params={"gamma": 0.99, "net_arch": "32x32"},
    )


def result(profile_as_set: ScoredTrial | None) -> TuningResult:
    return TuningResult(
        hyperparameters=AlgorithmConfig(net_arch=(32, 32), initial_action_probabilities=None),
        best=scored(2),
        profile_as_set=profile_as_set,
        study=StudySummary(
            name="s",
            storage="journal j",
            trials=3,
            complete=2,
            pruned=1,
            profile="smoke",
            timesteps_per_phase=(1024, 1024, 1024),
        ),
    )


def test_every_record_reads_back_from_json_equal():
    for record in (
        scored(1),
        scored(1, ci95=None),
        result(None).study,
        result(None),
        result(scored(0)),
    ):
        assert type(record).from_json(json.loads(json.dumps(record.to_json()))) == record


def test_the_file_keeps_its_keys_and_the_hyperparameters_as_plain_json():
    data = result(scored(0)).to_json()
    assert list(data) == [
        "format", "hyperparameters", "objective", "best", "profile_as_set", "study"
    ]  # fmt: skip
    assert data["format"] == HYPERPARAMETERS_FORMAT == 1
    assert data["hyperparameters"]["net_arch"] == [32, 32]
    assert data["best"]["ci95"] == [-0.1, 0.3]
    assert data["study"]["timesteps_per_phase"] == [1024, 1024, 1024]
    assert result(None).to_json()["profile_as_set"] is None
