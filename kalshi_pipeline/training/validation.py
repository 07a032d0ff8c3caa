"""Validation: a model's score on markets it was not trained on, and the callback that
keeps a phase's best model by it.

A :class:`ValidationScore` is one evaluation (model minus always-HOLD per validation
market: mean, 95% interval, share above HOLD); :func:`validation_rank` is what a phase's
checkpoints and a phase's seed candidates are ranked by; :class:`ValidationCallback`
scores the model during training and writes ``validation.csv``, ``best.json`` and
``best_model.zip`` (docs/training.md: selection).
"""

from __future__ import annotations

import csv
import dataclasses
import json
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Self

import numpy as np
from stable_baselines3.common.callbacks import BaseCallback

from kalshi_pipeline.training.evaluation import (
    bootstrap_interval,
    hold_policy,
    model_policy,
    rollout,
)
from kalshi_pipeline.training.files import read_csv_rows, write_json_atomically


@dataclass(frozen=True, kw_only=True)
class ValidationScore:
    """One evaluation on the validation markets, of the model at ``timesteps``: ``score``,
    the mean over markets of model minus HOLD (dollars per market); ``low`` and ``high``,
    its 95% BCa bootstrap interval; ``share``, the share of markets where the model beats
    HOLD. ``best.json`` and a lineage's ``selected_by_validation`` hold it as JSON."""

    timesteps: int
    score: float
    low: float
    high: float
    share: float

    def to_json(self) -> dict:
        return {
            "timesteps": self.timesteps,
            "score": self.score,
            "low": self.low,
            "high": self.high,
            "share": self.share,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(
            timesteps=int(data["timesteps"]),
            score=float(data["score"]),
            low=float(data["low"]),
            high=float(data["high"]),
            share=float(data["share"]),
        )

    def describe(self) -> str:
        """The score in words: mean [interval] $/market, share of markets > 0."""
        return (
            f"{self.score:+.3f} [{self.low:+.3f}, {self.high:+.3f}] $/market, "
            f"{self.share:.0%} of markets > 0"
        )


def validation_rank(score: ValidationScore) -> tuple[float, float]:
    """What validation maximises, over a phase's checkpoints and over seed candidates:
    the lower end of the interval of model minus HOLD; of two models equally sure to beat
    HOLD, the one that claims less (at a lower end of 0, never trading beats luck)."""
    return (score.low, -score.score)


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
    FIELDS = tuple(f.name for f in dataclasses.fields(ValidationScore))  # validation.csv
    BOOTSTRAP_SEED = 0

    def __init__(
        self,
        views,
        env_config,
        every: int,
        path: str | Path,
        verbose: int = 0,
        on_validated: Callable[[ValidationScore], None] | None = None,
    ):
        super().__init__(verbose)
        self.on_validated = on_validated  # gets each evaluation's score
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
        self.best: ValidationScore | None = None
        self.latest: ValidationScore | None = None
        self._validated_at = 0
        self._last_row = -1

    def _on_training_start(self) -> None:
        self.hold = np.array(
            [rollout(hold_policy(), view, self.env_config).total_reward for view in self.views]
        )
        self.path.mkdir(parents=True, exist_ok=True)
        best = self.path / self.BEST
        if best.exists() and (self.path / self.BEST_MODEL).exists():
            self.best = ValidationScore.from_json(json.loads(best.read_text()))
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

    def scores(self) -> ValidationScore:
        """The model's score, ``low``, ``high`` and ``share`` on the validation markets."""
        policy = model_policy(self.model)
        model = np.array(
            [rollout(policy, view, self.env_config).total_reward for view in self.views]
        )
        per_market = np.bincount(self._market, weights=model - self.hold) / self._views_per_market
        low, high = bootstrap_interval(per_market, self.BOOTSTRAP_SEED)
        return ValidationScore(
            timesteps=self.model.num_timesteps,
            score=float(per_market.mean()),
            low=low,
            high=high,
            share=float((per_market > 0).mean()),
        )

    def _validate(self) -> None:
        done = self.model.num_timesteps
        self.latest = self.scores()
        self.logger.record("validation/model_minus_hold", self.latest.score)
        self.logger.record("validation/lower_end", self.latest.low)
        self.logger.record("validation/share_positive", self.latest.share)
        self.logger.record("validation/timesteps", done)  # the model scored (see the docstring)
        csv_path = self.path / self.CSV
        new = not csv_path.exists()
        with open(csv_path, "a", newline="") as fh:
            writer = csv.writer(fh)
            if new:
                writer.writerow(self.FIELDS)
            writer.writerow([done] + [repr(getattr(self.latest, n)) for n in self.FIELDS[1:]])
        self._last_row = done
        if self.best is None or validation_rank(self.latest) > validation_rank(self.best):
            partial = self.path / "best_model.partial.zip"
            self.model.save(partial)
            os.replace(partial, self.path / self.BEST_MODEL)
            write_json_atomically(self.path / self.BEST, self.latest.to_json())
            self.best = self.latest
        if self.verbose:
            print(f"validation at {done}: model - HOLD {self.latest.describe()}")
        if self.on_validated is not None:
            self.on_validated(self.latest)
