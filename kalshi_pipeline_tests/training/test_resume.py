"""Resuming a phase after a kill: from the newest readable checkpoint, to the exact budget.

The main test starts a real training process, kills it with SIGKILL once a checkpoint is
on disk, and runs the same phase again here. A counting wrapper around the vectorised env
tells how many timesteps the second run trained. Smaller tests fake the other kills that
can happen: mid-way through writing the newest checkpoint, and between saving the final
model and writing its lineage.
"""

from __future__ import annotations

import csv
import logging
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest
from stable_baselines3 import PPO
from stable_baselines3.common.vec_env import VecEnvWrapper

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.training import phases
from kalshi_pipeline.training.algorithms import latest_checkpoint
from kalshi_pipeline.training.config import AlgorithmConfig, profile
from kalshi_pipeline.training.jobs import PhaseResult
from kalshi_pipeline.training.lineage import read_lineage
from kalshi_pipeline.training.phases import train_phase

REPO = Path(__file__).resolve().parents[2]
N_STEPS = 256
CONFIG = profile(
    "smoke",
    phase1_timesteps=8192,  # plenty left to train when the first checkpoint is seen
    checkpoint_every=512,  # a multiple of n_steps: checkpoints fall on rollout boundaries
    hyperparameters=AlgorithmConfig(n_steps=N_STEPS, batch_size=64, n_epochs=2),
    n_envs=1,
)
STARTUP_LIMIT_S = 300  # only a guard against waiting forever on a broken child process


def trainable_views():
    return [
        view
        for session_id in (1, 2)
        for view in build_market_views(
            simulate_session(session_id, seed=session_id, config=SimulatorConfig(markets=6))
        )
        if len(view) >= 50
    ]


def train_phase_one(out_dir, config=CONFIG) -> PhaseResult:
    """The job both runs do (the first one in a child process)."""
    views = trainable_views()
    return train_phase(1, views, [0.5] * len(views), config, out_dir)


class CountingVecEnv(VecEnvWrapper):
    """Counts the timesteps stepped through it."""

    timesteps = 0

    def reset(self):
        return self.venv.reset()

    def step_wait(self):
        CountingVecEnv.timesteps += self.num_envs
        return self.venv.step_wait()


@pytest.fixture
def counted(monkeypatch):
    """Every env the phases build counts its timesteps in ``CountingVecEnv.timesteps``."""
    make = phases.make_vec_env
    monkeypatch.setattr(phases, "make_vec_env", lambda *a, **k: CountingVecEnv(make(*a, **k)))
    CountingVecEnv.timesteps = 0
    return CountingVecEnv


def checkpoint_steps(path: Path) -> int:
    return int(path.name.split("_")[1])


def loads(path: Path) -> bool:
    """Whether SB3 loads the checkpoint (the test's own judge of a readable one)."""
    try:
        PPO.load(path, device="cpu")
    except Exception:
        return False
    return True


def complete(path: Path) -> bool:
    """A quick look, cheap enough to poll: the archive's directory (written last) is there."""
    try:
        with zipfile.ZipFile(path) as archive:
            return "data" in archive.namelist()
    except (zipfile.BadZipFile, OSError):
        return False


def wait_for_a_checkpoint(process: subprocess.Popen, directory: Path, log: Path) -> None:
    deadline = time.monotonic() + STARTUP_LIMIT_S
    while not any(complete(p) for p in directory.glob("model_*_steps.zip")):
        if process.poll() is not None:
            pytest.fail(f"training ended before its first checkpoint:\n{log.read_text()}")
        if time.monotonic() > deadline:
            pytest.fail(f"no checkpoint in {directory} after {STARTUP_LIMIT_S} s")
        time.sleep(0.02)


def test_a_killed_phase_resumes_from_its_newest_checkpoint(tmp_path, counted, caplog):
    checkpoints = tmp_path / "phase1" / "checkpoints"
    log = tmp_path / "first-run.log"
    with open(log, "w") as log_file:
        first = subprocess.Popen(
            [
                sys.executable,
                "-c",
                "import sys\n"
                "from kalshi_pipeline_tests.training.test_resume import train_phase_one\n"
                "train_phase_one(sys.argv[1])\n",
                str(tmp_path),
            ],
            cwd=REPO,
            stdout=subprocess.DEVNULL,
            stderr=log_file,
        )
    try:
        wait_for_a_checkpoint(first, checkpoints, log)
        first.send_signal(signal.SIGKILL)
    finally:
        if first.poll() is None:
            first.kill()
        first.wait()
    assert first.returncode == -signal.SIGKILL, "the first run finished before the kill"
    assert not (tmp_path / "phase1" / "model.zip").exists()
    # The newest checkpoint that loads (the kill may have cut a newer one short).
    newest = max(
        (p for p in checkpoints.glob("model_*_steps.zip") if loads(p)), key=checkpoint_steps
    )
    resumed_at = PPO.load(newest, device="cpu").num_timesteps
    assert resumed_at == checkpoint_steps(newest) < CONFIG.phase1_timesteps

    with caplog.at_level(logging.INFO, logger="kalshi_pipeline.training.phases"):
        second = train_phase_one(tmp_path)

    assert second.resumed_from == newest
    assert f"resuming from {newest} at {resumed_at} timesteps" in caplog.text
    final = PPO.load(second.model_path, device="cpu")
    assert final.num_timesteps == second.timesteps == CONFIG.phase1_timesteps
    # The second run trained only what was missing.
    assert counted.timesteps == CONFIG.phase1_timesteps - resumed_at
    assert counted.timesteps < CONFIG.phase1_timesteps
    # Its checkpoints carry on from the first run's count.
    every = CONFIG.checkpoint_every
    assert sorted(checkpoint_steps(p) for p in checkpoints.iterdir()) == list(
        range(every, CONFIG.phase1_timesteps + 1, every)
    )
    # The learning curve keeps the killed run's rows up to the resume point, then the rest.
    with open(tmp_path / "phase1" / "progress.csv") as fh:
        logged = [float(row["time/total_timesteps"]) for row in csv.DictReader(fh)]
    assert logged == sorted(logged) and len(set(logged)) == len(logged)
    assert logged[0] <= resumed_at < logged[-1] == CONFIG.phase1_timesteps


def test_a_half_written_newest_checkpoint_is_skipped(tmp_path, counted):
    config = replace(CONFIG, phase1_timesteps=1024, checkpoint_every=N_STEPS)
    train_phase_one(tmp_path, config)
    phase = tmp_path / "phase1"
    checkpoints = phase / "checkpoints"
    # As if killed while writing the last checkpoint, before the final model was saved.
    (phase / "model.zip").unlink()
    (phase / "model.json").unlink()
    newest, older = checkpoints / "model_1024_steps.zip", checkpoints / "model_768_steps.zip"
    whole = newest.read_bytes()
    for share in (0.1, 0.5, 0.9, 0.999):  # wherever the kill cut it
        newest.write_bytes(whole[: int(len(whole) * share)])
        assert not loads(newest)
        assert latest_checkpoint(checkpoints) == older, share
    newest.write_bytes(whole[: len(whole) // 2])
    counted.timesteps = 0

    result = train_phase_one(tmp_path, config)

    assert result.resumed_from == older
    assert counted.timesteps == 1024 - 768
    assert PPO.load(result.model_path, device="cpu").num_timesteps == 1024
    assert loads(newest)  # written again by the resumed run


def test_without_a_readable_checkpoint_there_is_nothing_to_resume(tmp_path):
    checkpoints = tmp_path / "checkpoints"
    checkpoints.mkdir()
    (checkpoints / "model_512_steps.zip").write_bytes(b"PK\x03\x04 cut short")
    (checkpoints / "notes.txt").write_text("not a checkpoint")

    assert latest_checkpoint(checkpoints) is None
    assert latest_checkpoint(tmp_path / "missing") is None


def test_a_kill_before_the_lineage_is_written_leaves_the_phase_unfinished(tmp_path, monkeypatch):
    config = replace(CONFIG, phase1_timesteps=512)

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed between saving the model and writing its lineage")

    with monkeypatch.context() as patch:
        patch.setattr(phases, "write_lineage", killed)
        with pytest.raises(KeyboardInterrupt):
            train_phase_one(tmp_path, config)

    # A model.zip here would mark the phase done, and it would never get its lineage.
    assert not (tmp_path / "phase1" / "model.zip").exists()
    result = train_phase_one(tmp_path, config)
    assert result.resumed_from == tmp_path / "phase1" / "checkpoints" / "model_512_steps.zip"
    assert read_lineage(result.model_path).timesteps == 512
