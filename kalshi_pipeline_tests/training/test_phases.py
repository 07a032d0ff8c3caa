"""The three training phases on tiny budgets: what each phase leaves on disk.

One module-scoped run trains phases 1-3 (1024 timesteps each) on the trainable views of
two simulated sessions; most tests read what it wrote: models any SB3 user can load,
their lineage, per-view episode statistics, progress.csv and TensorBoard events. Warm
starts are checked by training later phases for zero timesteps: their parameters must
then be their parent's.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from dataclasses import replace

import pytest
import torch
from stable_baselines3 import A2C, PPO
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from kalshi_pipeline.env import MarketAgnosticKalshiEnv
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.market.features import FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.training.config import AlgorithmConfig, profile
from kalshi_pipeline.training.lineage import read_lineage
from kalshi_pipeline.training.phases import train_phase, train_phases

TIMESTEPS = 1024
CONFIG = profile(
    "smoke",
    phase1_timesteps=TIMESTEPS,
    phase2_timesteps=TIMESTEPS,
    phase3_timesteps=TIMESTEPS,
    checkpoint_every=512,
    hyperparameters=AlgorithmConfig(n_steps=128, batch_size=64, n_epochs=2),
    n_envs=1,
)


@pytest.fixture(scope="module")
def views():
    return trainable_views()


def trainable_views() -> list:
    """The trainable views (50+ steps) of two simulated sessions."""
    found = [
        view
        for session_id in (1, 2)
        for view in build_market_views(
            simulate_session(session_id, seed=session_id, config=SimulatorConfig(markets=6))
        )
        if len(view) >= 50
    ]
    assert {v.session_id for v in found} == {1, 2} and len(found) >= 4
    return found


@pytest.fixture(scope="module")
def difficulties(views):
    """Made-up difficulties, in no particular order of the views."""
    return [((3 * i) % len(views) + 0.5) / len(views) for i in range(len(views))]


@pytest.fixture(scope="module")
def trained(views, difficulties, tmp_path_factory):
    """(output directory, phase results) of one run of the three phases."""
    out = tmp_path_factory.mktemp("models")
    return out, train_phases(views, difficulties, CONFIG, out)


def parameters(path) -> dict[str, torch.Tensor]:
    return PPO.load(path, device="cpu").policy.state_dict()


def same_parameters(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_each_phase_saves_a_model_plain_sb3_loads_and_runs(trained):
    out, results = trained

    assert [(r.phase, r.timesteps, r.resumed_from) for r in results] == [
        (1, TIMESTEPS, None),
        (2, TIMESTEPS, None),
        (3, TIMESTEPS, None),
    ]
    assert [r.model_path for r in results] == [out / f"phase{p}" / "model.zip" for p in (1, 2, 3)]
    # A user with Stable-Baselines3 and nothing of this project loads and runs each model.
    script = (
        "import sys, numpy as np\n"
        "from stable_baselines3 import PPO\n"
        "for path in sys.argv[1:]:\n"
        "    model = PPO.load(path, device='cpu')\n"
        "    action, _ = model.predict(np.zeros(52, dtype=np.float32), deterministic=True)\n"
        "    print(model.num_timesteps, int(action))\n"
        "assert not any(m.startswith('kalshi_pipeline') for m in sys.modules)\n"
    )
    paths = [str(r.model_path) for r in results]
    done = subprocess.run(
        [sys.executable, "-c", script, *paths], capture_output=True, text=True, cwd=out
    )
    assert done.returncode == 0, done.stderr
    lines = [line.split() for line in done.stdout.splitlines()]
    assert [int(steps) for steps, _ in lines] == [TIMESTEPS] * 3
    assert all(0 <= int(action) < 5 for _, action in lines)


def test_each_model_records_its_lineage(trained, views):
    out, results = trained
    config = json.loads(json.dumps(CONFIG.to_dict()))

    lineages = [read_lineage(r.model_path) for r in results]

    assert [lineage.parent_model for lineage in lineages] == [
        None,
        str(out / "phase1" / "model.zip"),
        str(out / "phase2" / "model.zip"),
    ]
    for phase, lineage in enumerate(lineages, start=1):
        assert lineage.phase == phase
        assert lineage.algorithm == "ppo"
        assert lineage.timesteps == TIMESTEPS
        assert lineage.seed == CONFIG.seed
        assert lineage.sessions == (1, 2)
        assert lineage.views == tuple(v.key for v in views)
        assert lineage.feature_layout == FEATURE_LAYOUT
        assert lineage.feature_layout_version == FEATURE_LAYOUT_VERSION
        assert lineage.config == config


def test_later_phases_start_from_their_parents_parameters(trained, views, difficulties, tmp_path):
    out, _ = trained
    (tmp_path / "phase1").mkdir()
    for name in ("model.zip", "model.json"):
        shutil.copy(out / "phase1" / name, tmp_path / "phase1" / name)
    no_training = replace(CONFIG, phase2_timesteps=0, phase3_timesteps=0)

    train_phases(views, difficulties, no_training, tmp_path, phases=(2, 3))

    phase1 = parameters(out / "phase1" / "model.zip")
    # Untrained, phases 2 and 3 are exactly the model they were warm-started from ...
    assert same_parameters(parameters(tmp_path / "phase2" / "model.zip"), phase1)
    assert same_parameters(parameters(tmp_path / "phase3" / "model.zip"), phase1)
    # ... which is neither a fresh model (phase 1 did learn) nor phase 2 after training.
    fresh = PPO("MlpPolicy", MarketAgnosticKalshiEnv(views), seed=CONFIG.seed, device="cpu")
    assert not same_parameters(fresh.policy.state_dict(), phase1)
    assert not same_parameters(parameters(out / "phase2" / "model.zip"), phase1)


def test_a2c_can_be_chosen_instead_of_ppo(views, difficulties, tmp_path):
    config = replace(CONFIG, algorithm="a2c", phase1_timesteps=512)

    (result,) = train_phases(views, difficulties, config, tmp_path, phases=(1,))

    model = A2C.load(result.model_path, device="cpu")
    assert model.num_timesteps == 512
    # Trained by A2C itself (its RMSprop optimiser, no PPO epochs), not merely readable by it.
    assert isinstance(model.policy.optimizer, torch.optim.RMSprop)
    assert not hasattr(model, "n_epochs")
    assert read_lineage(result.model_path).algorithm == "a2c"


def test_phases_train_on_several_envs(views, difficulties, tmp_path):
    config = replace(CONFIG, n_envs=4, phase1_timesteps=2 * 4 * 128)

    (result,) = train_phases(views, difficulties, config, tmp_path, phases=(1,))

    model = PPO.load(result.model_path, device="cpu")
    assert model.num_timesteps == 2 * 4 * 128  # two rollouts of 4 envs x n_steps
    stats = json.loads((tmp_path / "phase1" / "view_stats.json").read_text())
    played = sum(s["episodes"] * s["mean_length"] for s in stats.values())
    assert 0 < played <= model.num_timesteps


def test_view_stats_count_the_episodes_each_view_played(trained, views):
    out, _ = trained
    length = {v.key: len(v) for v in views}

    for phase in (1, 2, 3):
        stats = json.loads((out / f"phase{phase}" / "view_stats.json").read_text())

        assert stats, f"phase {phase} finished no episode"
        assert set(stats) <= set(length)
        for key, s in stats.items():
            assert s["episodes"] >= 1
            assert s["min_reward"] <= s["mean_reward"] <= s["max_reward"]
            assert 0 < s["mean_length"] <= length[key]
        played = sum(s["episodes"] * s["mean_length"] for s in stats.values())
        assert played <= TIMESTEPS


def scalars(directory) -> dict[str, list[tuple[int, float]]]:
    events = EventAccumulator(str(directory))
    events.Reload()
    return {
        tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]
    }


def test_training_writes_progress_csv_and_tensorboard_events(trained):
    out, _ = trained

    for phase in (1, 2, 3):
        directory = out / f"phase{phase}"
        progress = (directory / "progress.csv").read_text().splitlines()
        assert "rollout/ep_rew_mean" in progress[0].split(",")
        assert len(progress) - 1 == TIMESTEPS // CONFIG.hyperparameters.n_steps
        assert list(directory.glob("events.out.tfevents.*"))
        tags = scalars(directory)
        for tag in ("rollout/ep_rew_mean", "train/entropy_loss", "train/value_loss"):
            assert tags.get(tag), f"phase {phase}: no {tag}"
        assert ("curriculum/stage" in tags) == (phase == 2)


def test_the_curriculum_stage_rises_from_easiest_to_hardest_during_phase_2(trained):
    out, _ = trained

    stages = [value for _, value in sorted(scalars(out / "phase2")["curriculum/stage"])]

    assert stages[0] == 0
    assert stages[-1] == CONFIG.curriculum_stages - 1
    assert stages == sorted(stages)
    assert set(stages) == set(range(CONFIG.curriculum_stages))


def test_a_finished_phase_is_not_trained_again(trained, views, difficulties):
    out, first = trained
    before = {
        p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(out.rglob("*")) if p.is_file()
    }

    again = train_phases(views, difficulties, CONFIG, out)

    assert again == first
    after = {
        p: (p.stat().st_mtime_ns, p.read_bytes()) for p in sorted(out.rglob("*")) if p.is_file()
    }
    assert after == before


def test_a_checkpoint_holds_the_update_of_the_rollout_before_it(trained):
    """Resuming from the last checkpoint must not lose a rollout's worth of learning."""
    out, _ = trained
    final = PPO.load(out / "phase1" / "model.zip")
    checkpoint = PPO.load(out / "phase1" / "checkpoints" / f"model_{TIMESTEPS}_steps.zip")

    assert checkpoint.num_timesteps == final.num_timesteps == TIMESTEPS
    assert checkpoint._n_updates == final._n_updates
    assert same_parameters(dict(checkpoint.policy.state_dict()), dict(final.policy.state_dict()))


def test_rollouts_aligned_with_stage_switches_still_log_every_stage(views, difficulties, tmp_path):
    # 1024 timesteps, rollouts of 256: four rollouts, five stages. The stage each rollout
    # was collected in is logged, so stage 0 shows too.
    config = profile(
        "smoke", phase2_timesteps=1024, checkpoint_every=1024,
        hyperparameters=AlgorithmConfig(n_steps=256, batch_size=64, n_epochs=1),
    )  # fmt: skip
    train_phases(views, difficulties, config, tmp_path, phases=(1, 2))

    stages = [value for _, value in sorted(scalars(tmp_path / "phase2")["curriculum/stage"])]
    assert stages[0] == 0 and stages == sorted(stages)


def test_a_phase_reports_its_progress_from_start_to_end(views, difficulties, tmp_path):
    lines: list[str] = []
    train_phase(1, views, difficulties, CONFIG, tmp_path, on_progress=lines.append)

    assert lines[0].startswith(f"phase 1: 0/{TIMESTEPS:,} timesteps")
    assert lines[-1].startswith(f"phase 1: {TIMESTEPS:,}/{TIMESTEPS:,} timesteps")
    assert "/s)" in lines[-1] and "mean episode reward" in lines[-1]
