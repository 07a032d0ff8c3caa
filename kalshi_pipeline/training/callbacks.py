"""SB3 callbacks: curriculum stages, per-view episode statistics, progress reports.

Both talk to the environments only through ``env_method`` (curriculum) or the ``infos``
SB3 hands every callback (statistics), so they work the same under ``DummyVecEnv`` and
``SubprocVecEnv``.
"""

from __future__ import annotations

import csv
import json
import os
import time
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback


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
            f", validation at {latest['timesteps']:,}: model - HOLD {describe_score(latest)}"
            if latest
            else ""
        )
        self.report(
            f"phase {self.phase}: {self.num_timesteps:,}/{self.total:,} timesteps "
            f"({rate:,.0f}/s){reward}{validated}"
        )


class ValidationCallback(BaseCallback):
    """Scores the model on the validation views every ``every`` timesteps and at the end,
    and keeps the best model so far: a phase's output is then the model that did best on
    markets it was not trained on, not whatever the last update left.

    Each validation view is played once, deterministically (``model.predict`` with
    ``deterministic=True``, the env reset with a fixed seed), next to always-HOLD, whose
    rewards are computed once at training start (HOLD never changes). As in the report,
    the unit is the market: model minus HOLD per view, averaged over each market's views.
    Each evaluation gives ``score``, the mean of that over markets; ``low`` and ``high``,
    its 95% BCa bootstrap interval over markets
    (:func:`~kalshi_pipeline.training.evaluation.bootstrap_interval`, seeded with
    ``BOOTSTRAP_SEED``: every checkpoint and every seed candidate is judged on the same
    resamples); and ``share``, the share of markets where the model beats HOLD. Like
    :class:`RolloutCheckpointCallback` it runs at the start of the rollout after the one
    that crossed the mark (so the model includes that rollout's update), never
    mid-rollout. A fresh phase also scores the model it starts from (timesteps 0: the
    parent, or phase 1's untrained model).

    The best model is the one with the highest ``low``; among equal lower ends, the one
    with the smaller mean (:func:`validation_rank`). Not the highest mean: taking the best
    of many noisy means favours luck, and on a store with no signal a model that happened
    to trade well on the validation markets would win and trade on the holdout
    (docs/learning.md). A model that never trades scores exactly 0 (zero-width interval),
    so it is kept unless a model beats HOLD beyond noise: one that won on a market or two
    and lost on none has a lower end of 0 too, and a larger mean, and loses the tie (with
    the mean preferred instead, such a control model lost money on the holdout). Since the
    start is scored too, a phase whose training did not beat it hands on the model it
    started from.

    In ``path`` it writes ``validation.csv`` (timesteps, score, low, high, share; one row
    per evaluation, appended, so a resumed phase adds to the killed run's rows),
    ``best_model.zip`` and ``best.json`` (the same fields; ties keep the earlier model).
    An existing ``best.json`` is the best so far: a resumed phase keeps the best of the
    whole phase. The scores go to the model's logger as ``validation/...``.
    """

    CSV, BEST_MODEL, BEST = "validation.csv", "best_model.zip", "best.json"
    FIELDS = ("timesteps", "score", "low", "high", "share")
    BOOTSTRAP_SEED = 0

    def __init__(
        self,
        views,
        env_config,
        every: int,
        path: str | Path,
        verbose: int = 0,
        on_validated: Callable[[dict], None] | None = None,
    ):
        super().__init__(verbose)
        self.on_validated = on_validated  # gets each evaluation's FIELDS
        if not views:
            raise ValueError("ValidationCallback needs at least one validation view")
        self.views = list(views)
        # Markets, not views, are the unit: one market's views in several sessions share
        # its liquidity, so an interval over views would take them as independent evidence.
        _, self._market = np.unique([v.market_ticker for v in self.views], return_inverse=True)
        self._views_per_market = np.bincount(self._market)
        self.env_config = env_config
        self.every = max(every, 1)
        self.path = Path(path)
        self.best: dict | None = None
        self.latest: dict | None = None
        self._validated_at = 0
        self._last_row = -1

    def _on_training_start(self) -> None:
        from kalshi_pipeline.training.evaluation import hold_policy, rollout

        self.hold = np.array(
            [rollout(hold_policy(), view, self.env_config).total_reward for view in self.views]
        )
        self.path.mkdir(parents=True, exist_ok=True)
        best = self.path / self.BEST
        if best.exists() and (self.path / self.BEST_MODEL).exists():
            self.best = json.loads(best.read_text())
        rows = read_csv_rows(self.path / self.CSV)
        self._last_row = int(rows[-1]["timesteps"]) if rows else -1
        self._validated_at = self.model.num_timesteps // self.every * self.every
        if self._last_row < 0 and self.model.num_timesteps == 0:  # a fresh phase: its start
            self._validate()

    def _on_rollout_start(self) -> None:
        done = self.model.num_timesteps
        if done // self.every * self.every > self._validated_at:
            self._validate()
            self._validated_at = done // self.every * self.every

    def _on_training_end(self) -> None:
        if self.model.num_timesteps != self._last_row:  # not already scored (a resume at the end)
            self._validate()
        self.logger.dump(self.model.num_timesteps)  # nothing dumps after the last rollout

    def _on_step(self) -> bool:
        return True

    def scores(self) -> dict[str, float]:
        """The model's score, ``low``, ``high`` and ``share`` on the validation markets."""
        from kalshi_pipeline.training.evaluation import bootstrap_interval, model_policy, rollout

        policy = model_policy(self.model)
        model = np.array(
            [rollout(policy, view, self.env_config).total_reward for view in self.views]
        )
        per_market = np.bincount(self._market, weights=model - self.hold) / self._views_per_market
        low, high = bootstrap_interval(per_market, self.BOOTSTRAP_SEED)
        return {
            "score": float(per_market.mean()),
            "low": low,
            "high": high,
            "share": float((per_market > 0).mean()),
        }

    def _validate(self) -> None:
        done = self.model.num_timesteps
        self.latest = {"timesteps": done, **self.scores()}
        self.logger.record("validation/model_minus_hold", self.latest["score"])
        self.logger.record("validation/lower_end", self.latest["low"])
        self.logger.record("validation/share_positive", self.latest["share"])
        self.logger.record("validation/timesteps", done)  # the model scored (see the docstring)
        csv_path = self.path / self.CSV
        new = not csv_path.exists()
        with open(csv_path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(self.FIELDS)
            writer.writerow([done] + [repr(self.latest[name]) for name in self.FIELDS[1:]])
        self._last_row = done
        if self.best is None or validation_rank(self.latest) > validation_rank(self.best):
            partial = self.path / "best_model.partial.zip"
            self.model.save(partial)
            os.replace(partial, self.path / self.BEST_MODEL)
            write_json_atomically(self.path / self.BEST, self.latest)
            self.best = dict(self.latest)
        if self.verbose:
            print(f"validation at {done}: model - HOLD {describe_score(self.latest)}")
        if self.on_validated is not None:
            self.on_validated(dict(self.latest))


def validation_rank(scores: dict) -> tuple[float, float]:
    """What validation maximises, over a phase's checkpoints and over seed candidates:
    the lower end of the interval of model minus HOLD; of two models equally sure to beat
    HOLD, the one that claims less (at a lower end of 0, never trading beats luck)."""
    return (scores["low"], -scores["score"])


def describe_score(scores: dict) -> str:
    """A validation score in words: mean [interval] $/market, share of markets > 0."""
    return (
        f"{scores['score']:+.3f} [{scores['low']:+.3f}, {scores['high']:+.3f}] $/market, "
        f"{scores['share']:.0%} of markets > 0"
    )


def read_csv_rows(path: Path) -> list[dict]:
    """The rows of a CSV file with a header; none if it does not exist."""
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return []


def write_json_atomically(path: Path, value) -> None:
    """Write JSON through a temporary file and ``os.replace``: readers see old or new."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=1, sort_keys=True))
    os.replace(partial, path)
