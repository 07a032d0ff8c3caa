"""Seed candidates: each phase trains K seeds in parallel processes and keeps the best
on the validation views; the lineage names every candidate and why the winner won."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import zipfile
from dataclasses import replace
from pathlib import Path

import pytest

from kalshi_pipeline.pipeline_config import PipelineConfig, SplitConfig, TrainingChoice
from kalshi_pipeline.sources import ParquetSessionStore
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.training.candidates import candidate_dir, select_candidate
from kalshi_pipeline.training.config import profile
from kalshi_pipeline.training.jobs import PhaseResult
from kalshi_pipeline.training.lineage import Lineage, save_lineage
from kalshi_pipeline.training.validation import ValidationScore
from kalshi_pipeline.workflow import run

SPLIT = SplitConfig(holdout_fraction=0.3, validation_fraction=0.3)


def choice(**changes) -> TrainingChoice:
    settings = {"profile": "smoke", "timesteps_per_phase": 2048, "n_envs": 2, "seed": 1}
    return TrainingChoice(**{**settings, **changes})


def weights(model) -> bytes:
    with zipfile.ZipFile(model) as archive:
        return archive.read("policy.pth")


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    store = ParquetSessionStore(tmp_path_factory.mktemp("candidates") / "store")
    for i in (1, 2):
        store.write_session(simulate_session(i, i, SimulatorConfig(markets=10)))
    return store


@pytest.fixture(scope="module")
def three_seeds(store, tmp_path_factory):
    out = tmp_path_factory.mktemp("three-seeds")
    lines: list[str] = []
    config = PipelineConfig(split=SPLIT, training=choice(candidates=3))
    run(store, out, config, phases=(1, 2), on_progress=lines.append)
    return out / "models", lines


def test_each_phase_keeps_the_candidate_best_on_validation(three_seeds):
    models, _ = three_seeds
    for phase in (1, 2):
        lineage = json.loads((models / f"phase{phase}" / "model.json").read_text())
        candidates = lineage["candidates"]
        assert [c["seed"] for c in candidates] == [1, 2, 3]
        best = max(candidates, key=lambda c: (c["low"], -c["score"], -c["seed"]))
        assert lineage["seed"] == best["seed"]
        assert f"seed {best['seed']}:" in lineage["selection"]
        for other in candidates:
            if other is not best:
                shown = f"seed {other['seed']} {other['score']:+.3f} [{other['low']:+.3f}, "
                assert shown in lineage["selection"]
        chosen = candidate_dir(models, best["seed"]) / f"phase{phase}" / "model.zip"
        assert weights(models / f"phase{phase}" / "model.zip") == weights(chosen)
        # The candidates trained differently: selection had something to choose between.
        trained = {weights(Path(c["model"]).parent / "last_model.zip") for c in candidates}
        assert len(trained) == 3
    # Every phase-2 candidate warm-starts from phase 1's winner.
    winner = str(models / "phase1" / "model.zip")
    for seed in (1, 2, 3):
        phase2 = candidate_dir(models, seed) / "phase2" / "model.json"
        assert json.loads(phase2.read_text())["parent_model"] == winner


def test_progress_names_each_phase_and_candidate(three_seeds):
    _, lines = three_seeds
    for phase in (1, 2):
        for seed in (1, 2, 3):
            assert any(line.startswith(f"seed {seed}, phase {phase}: ") for line in lines), (
                phase,
                seed,
            )


def test_a_candidate_trains_as_a_one_seed_run_of_its_seed(store, three_seeds, tmp_path):
    """Parallel processes change nothing: candidate seed 2 is the run with seed 2."""
    models, _ = three_seeds
    alone = PipelineConfig(split=SPLIT, training=choice(seed=2))
    run(store, tmp_path, alone, phases=(1,))
    candidate = candidate_dir(models, 2) / "phase1" / "model.zip"
    assert weights(tmp_path / "models" / "phase1" / "model.zip") == weights(candidate)


def test_a_finished_run_is_not_trained_again(store, three_seeds):
    models, _ = three_seeds
    before = {p: p.stat().st_mtime_ns for p in models.rglob("*.zip")}
    config = PipelineConfig(split=SPLIT, training=choice(candidates=3))
    run(store, models.parent, config, phases=(1, 2))
    assert {p: p.stat().st_mtime_ns for p in models.rglob("*.zip")} == before


def test_candidates_without_validation_views_are_refused(store, tmp_path):
    config = PipelineConfig(
        split=SplitConfig(holdout_fraction=0.3, validation_fraction=0),
        training=choice(candidates=2),
    )
    with pytest.raises(ValueError, match="2 seed candidates need validation views"):
        run(store, tmp_path, config, phases=(1,))
    assert not (tmp_path / "models" / "phase1" / "model.zip").exists()


def _finished_candidate(out, seed: int, scores: dict) -> PhaseResult:
    """A candidate's phase-1 output as train_phase leaves it: a model and its lineage."""
    phase_dir = candidate_dir(out, seed) / "phase1"
    phase_dir.mkdir(parents=True)
    (phase_dir / "model.zip").write_bytes(f"weights of seed {seed}".encode())
    lineage = Lineage(
        phase=1,
        algorithm="ppo",
        timesteps=2048,
        seed=seed,
        feature_layout="layout",
        feature_layout_version=1,
        sessions=(1,),
        views=("1/A",),
        config=profile("smoke", seed=seed).to_json(),
        selected_by_validation=ValidationScore.from_json({"timesteps": 1024, **scores}),
    )
    save_lineage(phase_dir / "model.json", lineage)
    return PhaseResult(phase=1, model_path=phase_dir / "model.zip", timesteps=2048)


def test_the_winner_beats_hold_beyond_noise_not_on_the_luckiest_mean(tmp_path):
    """Seed 1 has the best mean but an interval reaching below 0 (noise, as on a store
    with no signal); seed 2 never trades (exactly 0); seed 3 loses. Seed 2 wins, and the
    selection says no candidate beat HOLD beyond noise. Then: the lower end decides, and
    among equal lower ends the smaller mean."""
    (tmp_path / "phase1").mkdir()
    scores = {
        1: {"score": 0.9, "low": -0.2, "high": 2.5, "share": 0.3},
        2: {"score": 0.0, "low": 0.0, "high": 0.0, "share": 0.0},
        3: {"score": -1.0, "low": -2.0, "high": -0.1, "share": 0.1},
    }
    results = {seed: _finished_candidate(tmp_path, seed, s) for seed, s in scores.items()}
    config = replace(profile("smoke", seed=1), candidates=3)

    chosen = select_candidate(1, config, tmp_path, None, results)

    lineage = json.loads((tmp_path / "phase1" / "model.json").read_text())
    assert lineage["seed"] == 2
    assert chosen.model_path.read_bytes() == b"weights of seed 2"
    assert "no candidate beat always-HOLD beyond noise" in lineage["selection"]
    # With a candidate above HOLD beyond noise, it wins however small its mean.
    scores[3] = {"score": 0.2, "low": 0.05, "high": 0.4, "share": 0.2}
    again = tmp_path / "again"
    (again / "phase1").mkdir(parents=True)
    results = {seed: _finished_candidate(again, seed, s) for seed, s in scores.items()}
    select_candidate(1, config, again, None, results)
    lineage = json.loads((again / "phase1" / "model.json").read_text())
    assert lineage["seed"] == 3
    assert "beyond noise" not in lineage["selection"]
    # Equal lower ends: the smaller mean. Seed 1 won on a market and lost on none (lower
    # end 0 too): luck, as far as validation can tell; seed 3, never trading, is kept.
    scores[3] = {"score": 0.0, "low": 0.0, "high": 0.0, "share": 0.0}
    scores[1] = {"score": 0.4, "low": 0.0, "high": 1.1, "share": 0.05}
    tied = tmp_path / "tied"
    (tied / "phase1").mkdir(parents=True)
    results = {seed: _finished_candidate(tied, seed, s) for seed, s in scores.items()}
    select_candidate(1, config, tied, None, results)
    assert json.loads((tied / "phase1" / "model.json").read_text())["seed"] == 2


def stat(pid: int | str) -> list[str]:
    """The fields of ``/proc/<pid>/stat`` after the command's name: state, parent, ..."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def descendants(pid: int) -> set[int]:
    """Every process started by ``pid``, by its children, and so on."""
    parents = {}
    for proc in Path("/proc").iterdir():
        try:
            parents[int(proc.name)] = int(stat(proc.name)[1])
        except (ValueError, OSError):
            continue
    found, frontier = set(), {pid}
    while frontier:
        frontier = {child for child, parent in parents.items() if parent in frontier}
        found |= frontier
    return found


def processes_writing(directory: Path, besides: int) -> set[int]:
    """The processes other than ``besides`` with a file under ``directory`` open."""
    found = set()
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit() or int(proc.name) == besides:
            continue
        try:
            targets = [os.readlink(fd) for fd in (proc / "fd").iterdir()]
        except OSError:  # ended, or not ours to read
            continue
        if any(t.startswith(str(directory)) for t in targets):
            found.add(int(proc.name))
    return found


def running(pid: int) -> bool:
    """Read here, not by the code under test: its own check could be wrong."""
    try:
        return stat(pid)[0] != "Z"
    except FileNotFoundError:
        return False


@pytest.mark.skipif(not Path("/proc/self/fd").exists(), reason="finds workers through procfs")
def test_killing_the_run_ends_its_candidate_processes(store, tmp_path):
    """SIGKILL gives the run no chance to stop its workers: they must see it gone and end,
    or they would go on writing their directories beside a resumed run."""
    out = tmp_path / "out"
    run = subprocess.Popen(
        [sys.executable, "-m", "kalshi_pipeline.cli", "train", "--store", str(store.path),
         "--out", str(out), "--profile", "smoke", "--candidates", "2", "--timesteps", "400000",
         "--holdout-fraction", "0.3", "--validation-fraction", "0.3"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    workers: set[int] = set()
    started: set[int] = set()
    try:
        for line in run.stdout:  # the candidates report progress once they train
            if line.startswith("seed "):
                break
        deadline = time.monotonic() + 60
        while len(workers) < 2 and time.monotonic() < deadline:
            workers = processes_writing(out / "models" / "candidates", besides=run.pid)
            time.sleep(0.2)
        assert len(workers) == 2, workers
        # The candidates, the server of their progress queue, multiprocessing's forkserver.
        started = descendants(run.pid)
        assert workers < started and len(started) >= 4, (workers, started)

        run.send_signal(signal.SIGKILL)
        run.wait()
        deadline = time.monotonic() + 30  # a liveness bound: the processes poll every 0.5 s
        while any(running(p) for p in started) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert not [p for p in started if running(p)]
    finally:
        run.kill()
        for pid in started | workers:
            if running(pid):
                os.kill(pid, signal.SIGKILL)
