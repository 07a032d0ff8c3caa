"""The stages of a training phase before and around ``learn()``.

As rl_zoo3's experiment manager does it: setup (:func:`open_phase`), envs
(:func:`phase_sampler`), load or warm-start (:func:`load_or_warm_start`), callbacks
(:func:`phase_callbacks`; :class:`FingerprintCallback` records the phase's fingerprint
once a rollout is trained, before the first checkpoint: :func:`record_fingerprint`).
:func:`kalshi_pipeline.training.phases.run_phase` runs them in that order, then learns and
saves; seed candidates share the setup (:mod:`kalshi_pipeline.training.candidates`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from stable_baselines3.common.vec_env import VecEnv

from kalshi_pipeline.env.samplers import BalancedSampler, CurriculumSampler, ViewSampler
from kalshi_pipeline.market.views import MarketSessionView
from kalshi_pipeline.training.algorithms import MODEL_FILE, load_model, new_model
from kalshi_pipeline.training.callbacks import (
    CurriculumCallback,
    ProgressCallback,
    RolloutCheckpointCallback,
    ViewStatsCallback,
)
from kalshi_pipeline.training.config import TrainingConfig
from kalshi_pipeline.training.evaluation import model_policy, rollout
from kalshi_pipeline.training.files import write_json_atomically
from kalshi_pipeline.training.fingerprint import (
    FINGERPRINT_FILE,
    Fingerprint,
    check_fingerprint,
    check_parent,
)
from kalshi_pipeline.training.jobs import PhaseJob, PhaseResult
from kalshi_pipeline.training.lineage import read_lineage
from kalshi_pipeline.training.validation import ValidationCallback, ValidationScore


def open_phase(
    phase: int,
    directory: Path,
    config: TrainingConfig,
    parent: Path | None,
    fingerprint: Fingerprint,
) -> PhaseResult | None:
    """Setup, before anything in ``directory`` is reused or written: refuse a directory
    of another job (:func:`~kalshi_pipeline.training.fingerprint.check_fingerprint`) or a
    parent of other hyperparameters; the finished phase if it is done already."""
    check_fingerprint(directory, fingerprint)
    final = directory / MODEL_FILE
    if final.exists():
        lineage = read_lineage(final)
        # With validation, model.zip is the best, not the last, model: the phase's count
        # is the lineage's.
        timesteps = (
            lineage.timesteps
            if lineage.selected_by_validation is not None
            else load_model(config, final).num_timesteps
        )
        return PhaseResult(phase=phase, model_path=final, timesteps=timesteps)
    check_parent(parent, config)
    return None


def record_fingerprint(directory: Path, fingerprint: Fingerprint) -> None:
    """``fingerprint.json``, replacing any there: :func:`open_phase` has found the
    directory either untrained (a fingerprint there is a failed run's) or this job's."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json_atomically(directory / FINGERPRINT_FILE, fingerprint.to_json())


class FingerprintCallback(BaseCallback):
    """Records the phase's fingerprint once it has trained: at the first rollout start or
    training end after a timestep, the moments a checkpoint is saved, and before the
    checkpoint callback (it comes first). A run that fails before then leaves none."""

    def __init__(self, directory: Path, fingerprint: Fingerprint) -> None:
        super().__init__()
        self.directory, self.fingerprint, self.recorded = directory, fingerprint, False

    def _on_rollout_start(self) -> None:
        self._record()

    def _on_training_end(self) -> None:
        self._record()

    def _record(self) -> None:
        if not self.recorded and self.model.num_timesteps > 0:
            record_fingerprint(self.directory, self.fingerprint)
            self.recorded = True

    def _on_step(self) -> bool:
        return True


def phase_sampler(job: PhaseJob) -> Callable[[], ViewSampler]:
    """A new view sampler per env: phase 2's curriculum, else balanced sampling (with
    phase 3's extra weight where the parent does worst)."""
    config = job.config
    if job.phase == 2:
        return lambda: CurriculumSampler(
            job.difficulties, config.curriculum_stages, config.revisit_fraction
        )
    weights = None
    if job.phase == 3:
        weights = struggle_weights(load_model(config, job.parent), job.views, config)
    return lambda: BalancedSampler(len(job.views), extra_weight=weights)


def load_or_warm_start(job: PhaseJob, env: VecEnv, checkpoint: Path | None) -> BaseAlgorithm:
    """The model to train: the newest checkpoint of a killed run, else the parent (its
    count reset, reseeded), else a new model."""
    config = job.config
    if checkpoint is not None:
        return load_model(config, checkpoint, env)
    if job.parent is not None:
        model = load_model(config, job.parent, env)
        model.num_timesteps = 0
        # Loading seeds with the parent's seed: a phase (or seed candidate) of another
        # seed would otherwise train exactly as one of the parent's seed.
        model.seed = config.seed
        model.set_random_seed(config.seed)
        return model
    return new_model(config, env)


def phase_callbacks(
    job: PhaseJob,
    fresh: bool,
    on_progress: Callable[[str], None] | None,
    on_validation: Callable[[ValidationScore], None] | None,
    extra: Sequence[BaseCallback] = (),
    *,
    fingerprint: Fingerprint,
) -> CallbackList:
    """Validation (with validation views), the fingerprint, checkpoints, view statistics,
    the curriculum (phase 2), progress lines (with ``on_progress``), then ``extra``."""
    callbacks: list[BaseCallback] = []
    validating = None
    if job.validation:
        validating = validation_callback(job, fresh, on_validation)
        # Before the checkpoint callback: a checkpoint on disk means its score is recorded.
        callbacks.append(validating)
    callbacks += [
        FingerprintCallback(job.directory, fingerprint),
        RolloutCheckpointCallback(job.config.checkpoint_every, job.directory / "checkpoints"),
        ViewStatsCallback(job.directory / "view_stats.json"),
    ]
    if job.phase == 2:
        callbacks.append(CurriculumCallback(job.total_timesteps, job.config.curriculum_stages))
    if on_progress is not None:
        # The total it reports is what the phase trains: its budget in whole rollouts.
        trained = job.config.trained_timesteps(job.phase)
        callbacks.append(ProgressCallback(job.phase, trained, on_progress, validation=validating))
    return CallbackList(callbacks + list(extra))


def validation_callback(
    job: PhaseJob, fresh: bool, on_validation: Callable[[ValidationScore], None] | None
) -> ValidationCallback:
    """The phase's validation; a fresh start first drops a killed run's scores, which
    are not this run's."""
    if fresh:
        for name in (
            ValidationCallback.CSV,
            ValidationCallback.BEST_MODEL,
            ValidationCallback.BEST,
        ):
            (job.directory / name).unlink(missing_ok=True)
    return ValidationCallback(
        job.validation,
        job.config.env,
        job.config.validation_interval,
        job.directory,
        on_validated=on_validation,
    )


def struggle_weights(
    model: BaseAlgorithm, views: Sequence[MarketSessionView], config: TrainingConfig
) -> np.ndarray:
    """Extra sampling weight for the ``struggle_fraction`` of views the model does worst on."""
    rewards = np.array(
        [rollout(model_policy(model), view, config.env).total_reward for view in views]
    )
    count = int(len(views) * config.struggle_fraction + 1e-9)  # 100 x 0.29 is 29, not 28
    worst = np.argsort(rewards, kind="stable")[: max(count, 1 if config.struggle_fraction else 0)]
    weights = np.zeros(len(views))
    weights[worst] = config.struggle_weight
    return weights
