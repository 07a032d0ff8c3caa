"""A phase directory is reused only for the job that wrote it.

One module-scoped run trains phase 1 (a few hundred timesteps) on the views of store A.
With another store's views, altered view data or another config, training into the same
directory is refused with an error naming the directory and what differs, and nothing
there changes; the same views and config still reuse the model (test_phases and
test_resume rely on that too). Checkpoints of an unfinished run are guarded the same way;
a directory nothing was trained in (a run that failed before its first checkpoint) is
guarded by nothing.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
from stable_baselines3.common.callbacks import BaseCallback

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.training.config import AlgorithmConfig, profile
from kalshi_pipeline.training.execution_choice import execution_settings
from kalshi_pipeline.training.fingerprint import (
    Fingerprint,
    TrainedOnOtherData,
    check_fingerprint,
    training_fingerprint,
    views_digest,
)
from kalshi_pipeline.training.lineage import read_lineage
from kalshi_pipeline.training.phases import train_phase

CONFIG = profile(
    "smoke",
    phase1_timesteps=256,
    checkpoint_every=128,
    hyperparameters=AlgorithmConfig(n_steps=128, batch_size=64, n_epochs=1),
    n_envs=1,
)


def store_views(seed: int) -> list:
    """The trainable views of one simulated session: one store per seed."""
    raw = simulate_session(1, seed=seed, config=SimulatorConfig(markets=8))
    return [v for v in build_market_views(raw) if len(v) >= 50]


def train(views, out: Path, config=CONFIG):
    return train_phase(1, views, [0.5] * len(views), config, out)


def snapshot(root: Path) -> dict[Path, tuple[int, bytes]]:
    return {
        p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.fixture(scope="module")
def views_a():
    return store_views(seed=1)


@pytest.fixture(scope="module")
def trained(views_a, tmp_path_factory):
    """(models directory, result) of phase 1 trained on store A."""
    out = tmp_path_factory.mktemp("models")
    return out, train(views_a, out)


@pytest.fixture
def out(trained, tmp_path):
    """A copy of the trained directory a test may change."""
    copy = tmp_path / "models"
    shutil.copytree(trained[0], copy)
    return copy


def test_another_stores_views_are_refused_and_the_same_job_still_reuses(out, views_a):
    views_b = store_views(seed=3)
    others = {v.key for v in views_a} - {v.key for v in views_b}
    assert others, "store B must lack some of store A's markets"
    before = snapshot(out)

    with pytest.raises(TrainedOnOtherData) as refused:
        train(views_b, out)

    message = str(refused.value)
    assert str(out / "phase1") in message
    assert f"trained on {len(views_a)} views, {len(others)} of them not among these " in message
    assert "new directory (--out)" in message and f"delete {out}" in message
    assert snapshot(out) == before
    # The job that wrote the model finds it done and changes nothing either.
    again = train(views_a, out)
    assert (again.model_path, again.timesteps) == (out / "phase1" / "model.zip", 256)
    assert snapshot(out) == before


def test_the_same_view_keys_with_other_data_are_refused(out, views_a):
    altered = [replace(views_a[0], features=views_a[0].features + 1), *views_a[1:]]

    with pytest.raises(TrainedOnOtherData, match=f"same {len(views_a)} view keys with other"):
        train(altered, out)


def test_more_views_than_the_model_saw_are_refused(out, views_a):
    keys = {v.key for v in views_a}
    extra = next(v for v in store_views(seed=3) if v.key not in keys)

    with pytest.raises(TrainedOnOtherData, match=f"without 1 of these {len(views_a) + 1}"):
        train([*views_a, extra], out)


def test_another_config_is_refused_naming_what_differs(out, views_a):
    before = snapshot(out)

    with pytest.raises(TrainedOnOtherData) as refused:
        train(views_a, out, replace(CONFIG, seed=7))

    assert "config differs: seed 7 here vs 0 there" in str(refused.value)
    assert snapshot(out) == before


def test_checkpoints_of_an_unfinished_run_resume_only_for_the_same_job(out, views_a):
    # As if killed before the final model was saved: checkpoints and fingerprint.json stay.
    (out / "phase1" / "model.zip").unlink()
    (out / "phase1" / "model.json").unlink()
    assert list((out / "phase1" / "checkpoints").glob("model_*_steps.zip"))
    before = snapshot(out)

    with pytest.raises(TrainedOnOtherData, match="trained on other data"):
        train(store_views(seed=3), out)
    assert snapshot(out) == before

    resumed = train(views_a, out)
    assert resumed.resumed_from == out / "phase1" / "checkpoints" / "model_256_steps.zip"


def test_a_model_without_a_fingerprint_is_not_reused(out, views_a):
    """Models written before fingerprints were recorded: their data is unknown."""
    (out / "phase1" / "fingerprint.json").unlink()
    lineage = json.loads((out / "phase1" / "model.json").read_text())
    del lineage["views_sha256"]
    (out / "phase1" / "model.json").write_text(json.dumps(lineage))

    with pytest.raises(TrainedOnOtherData, match="record no fingerprint"):
        train(views_a, out)


def test_the_fingerprint_is_recorded_with_the_checkpoints_and_the_model(trained, views_a):
    out, result = trained
    recorded = json.loads((out / "phase1" / "fingerprint.json").read_text())
    lineage = read_lineage(result.model_path)

    assert recorded["views"] == sorted(v.key for v in views_a)
    assert recorded["views_sha256"] == lineage.views_sha256 == views_digest(views_a)
    assert recorded["config"] == lineage.config == json.loads(json.dumps(CONFIG.to_dict()))


def test_the_views_digest_covers_the_data_not_the_listing_order(views_a):
    digest = views_digest(views_a)
    sizes = views_a[0].yes_bid_sizes.copy()
    sizes[-1, -1] += 1

    assert views_digest(list(reversed(views_a))) == digest
    assert views_digest([replace(views_a[0], yes_bid_sizes=sizes), *views_a[1:]]) != digest
    assert views_digest(views_a[1:]) != digest


def test_a_fingerprint_survives_a_json_round_trip_and_is_the_file(trained, views_a):
    out, _ = trained
    recorded = json.loads((out / "phase1" / "fingerprint.json").read_text())
    fingerprint = training_fingerprint(views_a, CONFIG)

    assert fingerprint.to_json() == recorded  # no validation views: no validation keys
    validated = training_fingerprint(views_a, CONFIG, views_a[:2])
    for record in (fingerprint, validated):
        assert Fingerprint.from_json(json.loads(json.dumps(record.to_json()))) == record
    assert validated.validation == tuple(sorted(v.key for v in views_a[:2]))


class FailAtFirstStep(BaseCallback):
    """A run that fails as soon as it steps (an env or a setting failing mid-phase)."""

    def _on_step(self) -> bool:
        raise RuntimeError("failed at the first step")


def test_a_run_that_failed_before_its_first_checkpoint_leaves_the_directory_free(views_a, tmp_path):
    out = tmp_path / "models"
    with pytest.raises(RuntimeError, match="failed at the first step"):
        train_phase(1, views_a, [0.5] * len(views_a), CONFIG, out, callbacks=[FailAtFirstStep()])
    assert (out / "phase1").is_dir() and not (out / "phase1" / "fingerprint.json").exists()

    # The corrected run (another config) trains there and records its own fingerprint.
    corrected = replace(CONFIG, seed=7)
    assert train(views_a, out, corrected).timesteps == 256
    recorded = json.loads((out / "phase1" / "fingerprint.json").read_text())
    assert recorded["config"]["seed"] == 7


def test_a_fingerprint_left_in_an_untrained_directory_locks_nothing(views_a, tmp_path):
    """An older version wrote fingerprint.json before training: a run that failed then
    left one beside no model and no checkpoint."""
    phase_dir = tmp_path / "models" / "phase1"
    phase_dir.mkdir(parents=True)
    other = training_fingerprint(store_views(seed=3), replace(CONFIG, seed=7))
    (phase_dir / "fingerprint.json").write_text(json.dumps(other.to_json()))

    check_fingerprint(phase_dir, training_fingerprint(views_a, CONFIG))  # not refused


def test_a_phase_whose_seed_candidates_trained_is_guarded_by_its_fingerprint(views_a, tmp_path):
    models = tmp_path / "models"
    (models / "phase1").mkdir(parents=True)
    recorded = training_fingerprint(views_a, CONFIG)
    (models / "phase1" / "fingerprint.json").write_text(json.dumps(recorded.to_json()))
    other = training_fingerprint(views_a, replace(CONFIG, seed=7))
    check_fingerprint(models / "phase1", other)  # no candidate has trained yet

    checkpoints = models / "candidates" / "seed-0" / "phase1" / "checkpoints"
    checkpoints.mkdir(parents=True)
    (checkpoints / "model_128_steps.zip").write_bytes(b"")

    check_fingerprint(models / "phase1", recorded)
    with pytest.raises(TrainedOnOtherData, match="config differs: seed 7 here vs 0 there"):
        check_fingerprint(models / "phase1", other)


def without_execution_settings(config: dict) -> dict:
    """A training config as JSON the way a run recorded it before the env config had its
    execution settings (a taker's, with the default fees)."""
    env = {k: v for k, v in config["env"].items() if k not in execution_settings(EnvConfig())}
    return {**config, "env": env}


def test_a_taker_trained_before_the_execution_settings_is_still_this_job(views_a, tmp_path):
    """Its env config records none of them, and it trained as today's defaults train: the
    same taker job reuses it; a maker job is refused, naming the mode."""
    phase_dir = tmp_path / "models" / "phase1"
    (phase_dir / "checkpoints").mkdir(parents=True)
    (phase_dir / "checkpoints" / "model_128_steps.zip").write_bytes(b"")
    today = training_fingerprint(views_a, CONFIG)
    before = replace(today, config=without_execution_settings(today.config))
    (phase_dir / "fingerprint.json").write_text(json.dumps(before.to_json()))

    check_fingerprint(phase_dir, today)  # not refused
    maker = replace(CONFIG, env=EnvConfig(execution="maker"))
    with pytest.raises(TrainedOnOtherData, match="config differs: env.execution maker here vs "):
        check_fingerprint(phase_dir, training_fingerprint(views_a, maker))


def test_a_model_whose_lineage_predates_the_execution_settings_is_reused(out, views_a):
    """The lineage stands in for a missing fingerprint.json, with the same reading."""
    (out / "phase1" / "fingerprint.json").unlink()
    lineage = json.loads((out / "phase1" / "model.json").read_text())
    lineage["config"] = without_execution_settings(lineage["config"])
    (out / "phase1" / "model.json").write_text(json.dumps(lineage))

    again = train(views_a, out)
    assert (again.model_path, again.timesteps) == (out / "phase1" / "model.zip", 256)
