"""The three training phases on Stable-Baselines3 (docs/training.md), each run in stages.

* Phase 1: all training views, balanced sampling: a baseline.
* Phase 2: curriculum by difficulty (easiest 20% first, then the next 20%, ...,
  revisiting easy views), warm-started from phase 1. A :class:`CurriculumCallback`
  moves the stage through ``env_method``.
* Phase 3: balanced over all views plus extra episodes on the views where the phase-2
  model does worst (a deterministic rollout per view picks the worst
  ``struggle_fraction``), warm-started from phase 2.

A phase (:func:`run_phase`, one :class:`PhaseJob`) runs in the stages rl_zoo3's
experiment manager uses: setup (:func:`open_phase`: refuse another job's directory or a
parent of other hyperparameters, skip a finished phase), envs (:func:`phase_sampler`,
:func:`~kalshi_pipeline.training.algorithms.make_vec_env`), load or warm-start
(:func:`load_or_warm_start`), callbacks (:func:`phase_callbacks`), learn, save
(:func:`save_phase`). The envs close however the phase ends.

Each phase writes into ``<out>/phase<N>/``: ``model.zip`` (``model.save()``: any SB3 user
can ``PPO.load()`` it), ``model.json`` (its :class:`~kalshi_pipeline.training.lineage.Lineage`),
``fingerprint.json`` (:mod:`kalshi_pipeline.training.fingerprint`: written once a rollout
is trained, before the first checkpoint), ``checkpoints/`` every
``checkpoint_every`` timesteps, ``view_stats.json`` (per-view episode statistics),
``progress.csv`` and TensorBoard event files (episode reward, entropy, value loss,
curriculum stage: ``tensorboard --logdir <out>``). A phase that finds checkpoints of an
unfinished run resumes from the newest readable one with its timestep count; a phase
whose ``model.zip`` exists is done and is not trained again (``model.zip`` appears last,
complete, after its ``model.json``).

Given validation views, a phase also scores its model on them every ``validate_every``
timesteps (``validation.csv``, ``validation/...`` in TensorBoard) and keeps the best one
(``best_model.zip``, ``best.json``): ``model.zip`` is then that best model, the phase's
output, and ``last_model.zip`` the last one.
"""

from __future__ import annotations

import csv
import json
import logging
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path

import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import configure

from kalshi_pipeline.market.features import FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION
from kalshi_pipeline.market.views import MarketSessionView
from kalshi_pipeline.training.algorithms import (
    LAST_MODEL_FILE,
    MODEL_FILE,
    checkpoint_steps,
    latest_checkpoint,
    make_vec_env,
)
from kalshi_pipeline.training.config import TrainingConfig
from kalshi_pipeline.training.files import read_csv_rows
from kalshi_pipeline.training.fingerprint import training_fingerprint, views_digest
from kalshi_pipeline.training.jobs import PhaseJob, PhaseResult, TrainingStopped
from kalshi_pipeline.training.lineage import LINEAGE_FILE, Lineage, save_lineage
from kalshi_pipeline.training.stages import (
    load_or_warm_start,
    open_phase,
    phase_callbacks,
    phase_sampler,
    record_fingerprint,
)
from kalshi_pipeline.training.validation import ValidationCallback, ValidationScore

log = logging.getLogger(__name__)


def train_phases(
    views: Sequence[MarketSessionView],
    difficulties: Sequence[float],
    config: TrainingConfig,
    out_dir: str | Path,
    *,
    progress: bool = False,
    phases: Sequence[int] = (1, 2, 3),
    validation: Sequence[MarketSessionView] = (),
) -> list[PhaseResult]:
    """Run the requested phases in order, each warm-started from the one before (with
    ``validation`` views, from the one before's best model by validation)."""
    results = []
    for phase in phases:
        parent = Path(out_dir) / f"phase{phase - 1}" / MODEL_FILE if phase > 1 else None
        results.append(
            train_phase(
                phase,
                views,
                difficulties,
                config,
                out_dir,
                parent,
                progress=progress,
                validation=validation,
            )
        )
    return results


def train_phase(
    phase: int,
    views: Sequence[MarketSessionView],
    difficulties: Sequence[float],
    config: TrainingConfig,
    out_dir: str | Path,
    parent: Path | None = None,
    *,
    progress: bool = False,
    on_progress: Callable[[str], None] | None = None,
    validation: Sequence[MarketSessionView] = (),
    on_validation: Callable[[ValidationScore], None] | None = None,
    callbacks: Sequence[BaseCallback] = (),
) -> PhaseResult:
    """Train one phase (1, 2 or 3) into ``<out_dir>/phase<N>/``: :func:`run_phase` of
    this :class:`PhaseJob`.

    ``progress`` shows SB3's progress bar; ``on_progress`` gets a line on the phase's
    progress every few seconds (:class:`~kalshi_pipeline.training.callbacks.ProgressCallback`).

    With ``validation`` views, a :class:`~kalshi_pipeline.training.validation.ValidationCallback`
    scores the model on them at the start, every ``config.validate_every`` timesteps (0:
    every checkpoint) and at the end; ``model.zip`` is then the best model by
    :func:`~kalshi_pipeline.training.validation.validation_rank` (its lineage says so in
    ``selected_by_validation``), and the last one is ``last_model.zip``. Without them,
    ``model.zip`` is the last model. ``on_validation`` gets each evaluation's
    :class:`~kalshi_pipeline.training.validation.ValidationScore`. ``callbacks`` run
    after the phase's own; one that stops ``learn()`` early makes the phase raise
    :class:`TrainingStopped` once its envs are closed.
    """
    job = PhaseJob(
        phase=phase,
        views=views,
        difficulties=difficulties,
        config=config,
        out_dir=Path(out_dir),
        parent=parent,
        validation=validation,
    )
    return run_phase(
        job,
        progress=progress,
        on_progress=on_progress,
        on_validation=on_validation,
        callbacks=callbacks,
    )


def run_phase(
    job: PhaseJob,
    *,
    progress: bool = False,
    on_progress: Callable[[str], None] | None = None,
    on_validation: Callable[[ValidationScore], None] | None = None,
    callbacks: Sequence[BaseCallback] = (),
) -> PhaseResult:
    """Setup, envs, load or warm-start, callbacks, learn, save (see :func:`train_phase`)."""
    if len(job.views) != len(job.difficulties):
        raise ValueError("one difficulty per view is needed")
    fingerprint = training_fingerprint(job.views, job.config, job.validation)
    done = open_phase(job.phase, job.directory, job.config, job.parent, fingerprint)
    if done is not None:
        log.info("phase %d already trained: %s", job.phase, done.model_path)
        return done
    torch.set_num_threads(job.config.torch_threads)
    sampler = phase_sampler(job)
    env = make_vec_env(job.views, job.config, sampler)
    try:
        checkpoint = latest_checkpoint(job.directory / "checkpoints")
        model = load_or_warm_start(job, env, checkpoint)
        if checkpoint is not None:
            log.info(
                "phase %d: resuming from %s at %d timesteps",
                job.phase, checkpoint, model.num_timesteps,
            )  # fmt: skip
        # SB3 rewrites progress.csv from scratch: keep the killed run's rows to merge back.
        earlier = read_csv_rows(job.directory / "progress.csv") if checkpoint else []
        outputs = ["csv", "tensorboard"] + (["stdout"] if progress else [])
        model.set_logger(configure(str(job.directory), outputs))
        model.learn(
            max(job.total_timesteps - model.num_timesteps, 0),
            callback=phase_callbacks(
                job,
                checkpoint is None,
                on_progress,
                on_validation,
                callbacks,
                fingerprint=fingerprint,
            ),  # fmt: skip
            reset_num_timesteps=False,
            progress_bar=progress,
            tb_log_name=f"phase{job.phase}",
        )
        if model.num_timesteps < job.total_timesteps:  # learn() only ends early if told to
            raise TrainingStopped(
                f"phase {job.phase} stopped at {model.num_timesteps:,} of "
                f"{job.total_timesteps:,} timesteps"
            )
        earlier_until = checkpoint_steps(checkpoint) if checkpoint else 0
        record_fingerprint(job.directory, fingerprint)  # a phase of 0 timesteps has none yet
        return save_phase(job, model, fingerprint.views_sha256, earlier, earlier_until, checkpoint)
    finally:
        env.close()


def save_phase(
    job: PhaseJob,
    model: BaseAlgorithm,
    views_sha256: str,
    earlier_progress: list[dict],
    earlier_until: int,
    resumed_from: Path | None,
) -> PhaseResult:
    """The phase's output: ``model.zip`` (with validation views, the best model; the last
    is ``last_model.zip``) and its lineage; a resumed run's earlier progress rows."""
    out = job.directory
    if earlier_progress:
        _prepend_progress(out / "progress.csv", earlier_progress, earlier_until)
    # Renamed into place last: a kill while saving leaves no model.zip (the phase is then
    # unfinished and resumes), never a partial one or one without its lineage.
    partial = out / "model.partial.zip"
    model.save(partial)
    selected = None
    if job.validation:  # the output is the best model by validation; the last one stays beside it
        os.replace(partial, out / LAST_MODEL_FILE)
        shutil.copyfile(out / ValidationCallback.BEST_MODEL, partial)
        best = json.loads((out / ValidationCallback.BEST).read_text())
        selected = ValidationScore.from_json(best)
    write_lineage(
        out / LINEAGE_FILE, job.phase, job.views, job.config, job.parent, model.num_timesteps,
        views_sha256=views_sha256, selected_by_validation=selected,
    )  # fmt: skip
    partial.replace(out / MODEL_FILE)
    return PhaseResult(
        phase=job.phase,
        model_path=out / MODEL_FILE,
        timesteps=model.num_timesteps,
        resumed_from=resumed_from,
    )


def _prepend_progress(path: Path, earlier: list[dict], up_to_timesteps: int) -> None:
    """Put the rows logged before the resume point back in front of the new ones."""
    kept = [r for r in earlier if float(r.get("time/total_timesteps") or 0) <= up_to_timesteps]
    rows = kept + read_csv_rows(path)
    fields = list(dict.fromkeys(name for row in rows for name in row))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def write_lineage(
    path: Path,
    phase: int,
    views: Sequence[MarketSessionView],
    config: TrainingConfig,
    parent: Path | None,
    timesteps: int,
    *,
    views_sha256: str | None = None,
    selected_by_validation: ValidationScore | None = None,
) -> None:
    """The lineage of a model a phase trained on ``views`` as ``model.json`` at ``path``.

    ``views``, ``views_sha256`` and ``config`` are also the model's fingerprint
    (:func:`~kalshi_pipeline.training.fingerprint.training_fingerprint`; the digest is
    computed here unless given). ``timesteps`` is the phase's last count; a model picked
    by validation records its own (``selected_by_validation``).
    """
    lineage = Lineage(
        phase=phase,
        algorithm=config.algorithm,
        timesteps=timesteps,
        seed=config.seed,
        feature_layout=FEATURE_LAYOUT,
        feature_layout_version=FEATURE_LAYOUT_VERSION,
        sessions=tuple(sorted({v.session_id for v in views})),
        views=tuple(v.key for v in views),
        views_sha256=views_sha256 or views_digest(views),
        parent_model=str(parent) if parent else None,
        config=config.to_json(),
        selected_by_validation=selected_by_validation,
    )
    save_lineage(path, lineage)
