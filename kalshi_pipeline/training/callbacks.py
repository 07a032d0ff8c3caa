"""SB3 callbacks: curriculum stages, per-view episode statistics, checkpoints at rollout
starts, progress reports. (Validation's callback and score are in
:mod:`kalshi_pipeline.training.validation`; the file helpers the training modules share in
:mod:`kalshi_pipeline.training.files`.)

The curriculum and statistics callbacks talk to the environments only through
``env_method`` (curriculum) or the ``infos`` SB3 hands every callback (statistics), so
they work the same under ``DummyVecEnv`` and ``SubprocVecEnv``.
"""

from __future__ import annotations

import json
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from kalshi_pipeline.training.validation import ValidationCallback


class CurriculumCallback(BaseCallback):
    """Advances the curriculum: stage ``s`` of ``stages`` for the s-th equal share of
    ``total_timesteps``; logs ``curriculum/stage`` to TensorBoard."""

    def __init__(self, total_timesteps: int, stages: int, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.total_timesteps = max(total_timesteps, 1)
        self.stages = stages
        self.stage = -1
        self._rollout_stage = 0

    def _on_training_start(self) -> None:
        # num_timesteps counts this phase only (and survives a resume from a checkpoint).
        self._update()

    def _on_step(self) -> bool:
        self._update()
        return True

    def _on_rollout_start(self) -> None:
        self._rollout_stage = self.stage

    def _on_rollout_end(self) -> None:
        # The stage this rollout was collected in (a switch mid-rollout shows next time).
        self.logger.record("curriculum/stage", self._rollout_stage)

    def _update(self) -> None:
        done = self.model.num_timesteps
        stage = min(done * self.stages // self.total_timesteps, self.stages - 1)
        if stage != self.stage:
            self.stage = stage
            self.training_env.env_method("sampler_call", "set_stage", stage)
            if self.verbose:
                print(f"curriculum: stage {stage + 1}/{self.stages} at {done} timesteps")


class ViewStatsCallback(BaseCallback):
    """Collects every finished episode's reward and length per view.

    Needs ``Monitor``-wrapped envs (their ``info["episode"]``) and the env's
    ``info["view"]``. :meth:`summary` gives per-view count/mean/min/max; with ``path`` the
    summary is written there as JSON when training ends.
    """

    def __init__(self, path: str | Path | None = None, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.path = Path(path) if path else None
        self.rewards: dict[str, list[float]] = defaultdict(list)
        self.lengths: dict[str, list[int]] = defaultdict(list)

    def _on_step(self) -> bool:
        for info in self.locals.get("infos", ()):
            episode = info.get("episode")
            if episode is not None and "view" in info:
                self.rewards[info["view"]].append(float(episode["r"]))
                self.lengths[info["view"]].append(int(episode["l"]))
        return True

    def summary(self) -> dict[str, dict[str, float]]:
        return {
            view: {
                "episodes": len(rewards),
                "mean_reward": float(np.mean(rewards)),
                "min_reward": float(np.min(rewards)),
                "max_reward": float(np.max(rewards)),
                "mean_length": float(np.mean(self.lengths[view])),
            }
            for view, rewards in sorted(self.rewards.items())
        }

    def _on_training_end(self) -> None:
        if self.path is not None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.path.write_text(json.dumps(self.summary(), indent=1, sort_keys=True))


class RolloutCheckpointCallback(BaseCallback):
    """Saves ``<path>/model_<timesteps>_steps.zip`` every ``every`` timesteps, at the start
    of a rollout: the model then includes the update of the rollout just collected
    (SB3's ``CheckpointCallback`` saves before it, so a resume would lose that update)."""

    def __init__(self, every: int, path: str | Path, verbose: int = 0) -> None:
        super().__init__(verbose)
        self.every = max(every, 1)
        self.path = Path(path)
        self._saved_at = 0

    def _on_training_start(self) -> None:
        self._saved_at = self.model.num_timesteps // self.every * self.every

    def _on_rollout_start(self) -> None:
        self._save_if_due()

    def _on_training_end(self) -> None:
        self._save_if_due()

    def _save_if_due(self) -> None:
        done = self.model.num_timesteps
        if done // self.every * self.every > self._saved_at:
            self.path.mkdir(parents=True, exist_ok=True)
            self.model.save(self.path / f"model_{done}_steps.zip")
            self._saved_at = done // self.every * self.every

    def _on_step(self) -> bool:
        return True


class ProgressCallback(BaseCallback):
    """Reports a phase's progress every ``every_seconds`` of wall time, and at its end.

    ``report`` gets one line: the phase, timesteps done of the total, timesteps per second
    and the latest mean episode reward. Dagster logs it (the assets pass ``context.log``),
    so a long phase is never silent; the time between reports is bounded by one
    environment step, not by a rollout.
    """

    def __init__(
        self,
        phase: int,
        total_timesteps: int,
        report: Callable[[str], None],
        every_seconds=5.0,
        validation: ValidationCallback | None = None,
    ) -> None:
        super().__init__()
        self.phase, self.total, self.report = phase, total_timesteps, report
        self.every_seconds = every_seconds
        self.validation = validation  # its latest score is reported too

    def _on_training_start(self) -> None:
        self._started = self._last = time.monotonic()
        self._first_step = self.num_timesteps
        self._say()

    def _on_step(self) -> bool:
        if time.monotonic() - self._last >= self.every_seconds:
            self._say()
        return True

    def _on_training_end(self) -> None:
        self._say()

    def _say(self) -> None:
        now = time.monotonic()
        self._last = now
        done = self.num_timesteps - self._first_step
        rate = done / (now - self._started) if now > self._started else 0.0
        rewards = [e["r"] for e in getattr(self.model, "ep_info_buffer", None) or []]
        reward = f", mean episode reward {np.mean(rewards):+.3f}" if rewards else ""
        latest = self.validation.latest if self.validation is not None else None
        validated = (
            f", validation at {latest.timesteps:,}: model - HOLD {latest.describe()}"
            if latest
            else ""
        )
        self.report(
            f"phase {self.phase}: {self.num_timesteps:,}/{self.total:,} timesteps "
            f"({rate:,.0f}/s){reward}{validated}"
        )
