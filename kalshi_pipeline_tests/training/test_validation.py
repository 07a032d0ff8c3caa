"""Periodic validation during training: scores at the start and the expected timesteps,
the model with the highest lower end kept as the phase's output (the last one too), the
start handed on when training only made things worse, determinism, and nothing changed
without validation views.

One phase of 256 timesteps (4 rollouts of 64 steps, one env) on the trainable views of
two simulated sessions, scored every 64 timesteps on three views of another session.
"""

from __future__ import annotations

import csv
import json
import shutil
from dataclasses import replace

import pytest
import torch
from stable_baselines3 import PPO

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session
from kalshi_pipeline.training.config import AlgorithmConfig, profile
from kalshi_pipeline.training.fingerprint import TrainedOnOtherData
from kalshi_pipeline.training.lineage import read_lineage
from kalshi_pipeline.training.phases import train_phase
from kalshi_pipeline.training.validation import ValidationScore
from kalshi_pipeline_tests.training.test_phases import scalars

TIMESTEPS, EVERY = 256, 64
CONFIG = profile(
    "smoke",
    phase1_timesteps=TIMESTEPS,
    checkpoint_every=128,
    validate_every=EVERY,
    # A start that trades (argmax BUY_YES) and a fast learning rate: scores that differ
    # between evaluations, so that picking the best one is exercised.
    hyperparameters=AlgorithmConfig(
        n_steps=64,
        batch_size=64,
        n_epochs=4,
        learning_rate=1e-2,
        initial_action_probabilities=(0.2, 0.35, 0.15, 0.15, 0.15),
    ),
    n_envs=1,
)


def _trainable(session_id: int) -> list:
    return [
        view
        for view in build_market_views(
            simulate_session(
                session_id,
                seed=session_id,
                config=SimulatorConfig(population=Population.TWO_CLASS, markets=4),
            )
        )
        if len(view) >= 50
    ]


@pytest.fixture(scope="module")
def views():
    found = _trainable(1) + _trainable(2)
    assert len(found) >= 4
    return found


@pytest.fixture(scope="module")
def validation():
    found = _trainable(4)[:3]
    assert len(found) >= 2
    return found


@pytest.fixture(scope="module")
def trained(views, validation, tmp_path_factory):
    out = tmp_path_factory.mktemp("validated")
    result = train_phase(1, views, [0.5] * len(views), CONFIG, out, validation=validation)
    return out / "phase1", result


def weights(path) -> dict[str, torch.Tensor]:
    return PPO.load(path, device="cpu").policy.state_dict()


def same_weights(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def rows(phase_dir) -> list[dict]:
    with open(phase_dir / "validation.csv", newline="") as fh:
        return list(csv.DictReader(fh))


def test_validation_is_scored_every_validate_every_timesteps_and_at_the_end(trained):
    phase_dir, result = trained

    assert result.timesteps == TIMESTEPS
    assert [int(r["timesteps"]) for r in rows(phase_dir)] == [0, 64, 128, 192, 256]
    assert all(0.0 <= float(r["share"]) <= 1.0 for r in rows(phase_dir))
    assert all(float(r["low"]) <= float(r["score"]) <= float(r["high"]) for r in rows(phase_dir))
    # Logged through the model's logger: progress.csv has the scores of each evaluation.
    with open(phase_dir / "progress.csv", newline="") as fh:
        logged = [r for r in csv.DictReader(fh) if r.get("validation/timesteps")]
    assert [int(float(r["validation/timesteps"])) for r in logged] == [0, 64, 128, 192, 256]
    assert [float(r["validation/model_minus_hold"]) for r in logged] == [
        float(r["score"]) for r in rows(phase_dir)
    ]
    assert [float(r["validation/lower_end"]) for r in logged] == [
        float(r["low"]) for r in rows(phase_dir)
    ]
    assert all("validation/share_positive" in r for r in logged)
    # And to TensorBoard, under validation/ (each scalar's step is when it was written; the
    # timesteps of the model scored are the validation/timesteps value).
    tensorboard = {
        tag: [value for _, value in points]
        for tag, points in scalars(phase_dir).items()
        if tag.startswith("validation/")
    }
    assert tensorboard["validation/timesteps"] == [0, 64, 128, 192, 256]
    assert tensorboard["validation/lower_end"] == pytest.approx(
        [float(r["low"]) for r in rows(phase_dir)]
    )
    assert set(tensorboard) == {
        "validation/model_minus_hold", "validation/lower_end", "validation/share_positive",
        "validation/timesteps",
    }  # fmt: skip


def test_the_phase_output_is_the_best_model_and_the_last_is_kept(trained, views, validation):
    phase_dir, result = trained
    ranks = [((float(r["low"]), -float(r["score"])), int(r["timesteps"])) for r in rows(phase_dir)]
    best_rank = max(rank for rank, _ in ranks)
    first_best = next(steps for rank, steps in ranks if rank == best_rank)  # ties: earlier

    assert first_best not in (0, TIMESTEPS)  # neither start nor last: selection is exercised
    best = json.loads((phase_dir / "best.json").read_text())
    assert ((best["low"], -best["score"]), best["timesteps"]) == (best_rank, first_best)
    assert result.model_path == phase_dir / "model.zip"
    assert same_weights(weights(phase_dir / "model.zip"), weights(phase_dir / "best_model.zip"))
    assert PPO.load(phase_dir / "model.zip", device="cpu").num_timesteps == first_best
    assert PPO.load(phase_dir / "last_model.zip", device="cpu").num_timesteps == TIMESTEPS
    lineage = read_lineage(phase_dir / "model.zip")
    assert lineage.selected_by_validation == ValidationScore.from_json(best)
    assert lineage.timesteps == TIMESTEPS
    assert lineage.config["validate_every"] == EVERY
    # Done phases are not trained again, and report the phase's timesteps, not the best's.
    again = train_phase(
        1, views, [0.5] * len(views), CONFIG, phase_dir.parent, validation=validation
    )
    assert again.timesteps == TIMESTEPS


def test_the_unit_of_validation_is_the_market(trained, views, validation, tmp_path):
    """Each market's views are averaged before the interval: scoring every view twice
    (as a market recorded in two sessions alike) changes no score, interval or share."""
    phase_dir, _ = trained
    twice = list(validation) * 2
    train_phase(1, views, [0.5] * len(views), CONFIG, tmp_path, validation=twice)

    assert rows(tmp_path / "phase1") == rows(phase_dir)


def test_validation_is_deterministic_given_the_seed(trained, views, validation, tmp_path):
    phase_dir, _ = trained
    train_phase(1, views, [0.5] * len(views), CONFIG, tmp_path, validation=validation)

    assert rows(tmp_path / "phase1") == rows(phase_dir)
    for name in ("model.zip", "last_model.zip"):
        assert same_weights(weights(tmp_path / "phase1" / name), weights(phase_dir / name))


def test_without_validation_views_the_phase_output_is_the_last_model(views, tmp_path):
    result = train_phase(1, views, [0.5] * len(views), CONFIG, tmp_path)
    phase_dir = tmp_path / "phase1"

    assert PPO.load(result.model_path, device="cpu").num_timesteps == TIMESTEPS
    for name in ("validation.csv", "best.json", "best_model.zip", "last_model.zip"):
        assert not (phase_dir / name).exists()
    assert read_lineage(result.model_path).selected_by_validation is None
    assert "selected_by_validation" not in json.loads((phase_dir / "model.json").read_text())


def test_a_resumed_phase_keeps_the_best_of_the_whole_phase(trained, views, validation, tmp_path):
    """As if killed after scoring (and keeping) the model at 192 timesteps but before the
    checkpoint at 256: the resumed run starts at checkpoint 128 and must not lose it."""
    phase_dir, _ = trained
    killed = tmp_path / "phase1"
    shutil.copytree(phase_dir, killed)
    for name in ("model.zip", "model.json", "last_model.zip", "checkpoints/model_256_steps.zip"):
        (killed / name).unlink()
    best_before = json.loads((killed / "best.json").read_text())
    assert best_before["timesteps"] == 192

    result = train_phase(1, views, [0.5] * len(views), CONFIG, tmp_path, validation=validation)

    assert result.resumed_from == killed / "checkpoints" / "model_128_steps.zip"
    resumed_rows = rows(killed)[len(rows(phase_dir)) :]
    assert [int(r["timesteps"]) for r in resumed_rows] == [192, 256]
    best = json.loads((killed / "best.json").read_text())
    ranked = [(float(r["low"]), -float(r["score"])) for r in rows(killed)]
    assert (best["low"], -best["score"]) == max(ranked)
    assert (best["low"], -best["score"]) >= (best_before["low"], -best_before["score"])
    assert read_lineage(result.model_path).selected_by_validation == ValidationScore.from_json(best)
    assert same_weights(weights(result.model_path), weights(killed / "best_model.zip"))


def test_a_phase_validated_on_other_views_is_not_reused(trained, views, validation):
    """Validation picks the phase's output, so other validation views are other data."""
    phase_dir, _ = trained

    with pytest.raises(TrainedOnOtherData, match="validated on"):
        train_phase(
            1, views, [0.5] * len(views), CONFIG, phase_dir.parent, validation=validation[:-1]
        )


def test_progress_lines_carry_the_latest_validation_score(views, validation, tmp_path):
    lines: list[str] = []
    train_phase(
        1, views, [0.5] * len(views), CONFIG, tmp_path, validation=validation,
        on_progress=lines.append,
    )  # fmt: skip

    with open(tmp_path / "phase1" / "validation.csv") as fh:
        last = list(csv.DictReader(fh))[-1]
    assert f"validation at {int(last['timesteps']):,}: model - HOLD" in lines[-1]
    assert "validation at 0: model - HOLD" in lines[0]  # the start, scored before training


def test_a_phase_that_only_gets_worse_hands_on_the_model_it_started_from(
    views, validation, tmp_path
):
    """A start that never trades (HOLD the likeliest action, but not by much) ties HOLD
    exactly (interval [0, 0]); training at this learning rate makes it trade, at a loss,
    so no later model beats the start and the phase's output is the model it started
    from."""
    never_trades = replace(
        CONFIG.hyperparameters, initial_action_probabilities=(0.38, 0.3, 0.02, 0.28, 0.02)
    )
    config = replace(CONFIG, hyperparameters=never_trades)
    result = train_phase(1, views, [0.5] * len(views), config, tmp_path, validation=validation)

    scored = rows(tmp_path / "phase1")
    assert (scored[0]["timesteps"], float(scored[0]["low"]), float(scored[0]["high"])) == (
        "0",
        0.0,
        0.0,
    )
    assert all(float(r["low"]) < 0 for r in scored[1:])  # training traded, at a loss
    assert PPO.load(result.model_path, device="cpu").num_timesteps == 0
    assert PPO.load(tmp_path / "phase1" / "last_model.zip", device="cpu").num_timesteps == 256
