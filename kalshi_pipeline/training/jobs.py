"""What a training phase is asked to do and what it gives back.

A :class:`PhaseJob` is one phase to train (:func:`kalshi_pipeline.training.phases.run_phase`
runs it; seed candidates run one each); a :class:`PhaseResult` is a trained phase's
model and timesteps. :class:`TrainingStopped` is a phase a callback stopped before its
budget.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Self

from kalshi_pipeline.market.views import MarketSessionView
from kalshi_pipeline.training.config import TrainingConfig


@dataclass(frozen=True, kw_only=True)
class PhaseResult:
    """A trained phase: its model (``model.zip``), the phase's timesteps, and the
    checkpoint it resumed from (None for a fresh start or a phase already done)."""

    phase: int
    model_path: Path
    timesteps: int
    resumed_from: Path | None = None

    def to_json(self) -> dict:
        return {
            "phase": self.phase,
            "model_path": str(self.model_path),
            "timesteps": self.timesteps,
            "resumed_from": str(self.resumed_from) if self.resumed_from else None,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        resumed = data.get("resumed_from")
        return cls(
            phase=int(data["phase"]),
            model_path=Path(data["model_path"]),
            timesteps=int(data["timesteps"]),
            resumed_from=Path(resumed) if resumed else None,
        )


@dataclass(frozen=True, kw_only=True)
class PhaseJob:
    """One phase to train: the phase, its views and their difficulties, the config, the
    models directory (the phase writes ``<out_dir>/phase<N>/``), the parent model and
    the validation views.

    It holds the views themselves (their step arrays), so it travels to a candidate's
    process pickled, never as JSON: it is not a record on disk.
    """

    phase: int
    views: Sequence[MarketSessionView]
    difficulties: Sequence[float]
    config: TrainingConfig
    out_dir: Path
    parent: Path | None = None
    validation: Sequence[MarketSessionView] = ()

    @property
    def directory(self) -> Path:
        return Path(self.out_dir) / f"phase{self.phase}"

    @property
    def total_timesteps(self) -> int:
        return self.config.phase_timesteps(self.phase)


class TrainingStopped(RuntimeError):
    """A callback stopped ``learn()`` before the phase's budget (a pruned tuning trial):
    the phase saved no model and stays unfinished, its checkpoints on disk."""
