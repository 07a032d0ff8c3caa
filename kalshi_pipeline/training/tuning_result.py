"""What a tuning study found, as typed records: the content of a hyperparameter file.

:func:`~kalshi_pipeline.training.tuning.write_result` writes a :class:`TuningResult` as
JSON (its :meth:`TuningResult.to_json`), and the CLI and the Dagster tuning op read its
fields to report the study: the chosen :class:`AlgorithmConfig`, the best trial and the
profile's own trial (each a :class:`ScoredTrial`) and the study's counts
(:class:`StudySummary`). Training reads only the file's ``hyperparameters``
(:func:`~kalshi_pipeline.training.config.read_hyperparameters`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from kalshi_pipeline.training.config import AlgorithmConfig

HYPERPARAMETERS_FORMAT = 1
OBJECTIVE = "lower end of the 95% BCa interval of model - HOLD on validation markets"


@dataclass(frozen=True, kw_only=True)
class ScoredTrial:
    """A complete trial: its number, objective and validation figures (model minus HOLD,
    its 95% interval, the share of markets above HOLD; None where the trial recorded
    none) and the parameters Optuna suggested."""

    trial: int
    objective: float
    model_minus_hold: float | None
    ci95: tuple[float, float] | None
    share_above_hold: float | None
    params: Mapping[str, Any]

    def to_json(self) -> dict:
        return {
            "trial": self.trial,
            "objective": self.objective,
            "model_minus_hold": self.model_minus_hold,
            "ci95": None if self.ci95 is None else list(self.ci95),
            "share_above_hold": self.share_above_hold,
            "params": dict(self.params),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        ci95 = data.get("ci95")
        return cls(
            trial=data["trial"],
            objective=data["objective"],
            model_minus_hold=data.get("model_minus_hold"),
            ci95=None if ci95 is None else (ci95[0], ci95[1]),
            share_above_hold=data.get("share_above_hold"),
            params=dict(data["params"]),
        )


@dataclass(frozen=True, kw_only=True)
class StudySummary:
    """The study a result comes from: its name, its storage as shown (credentials
    hidden), its trials (all; complete, pruned, failed, and still running in another
    process; the rest are waiting), the profile it was run for and that profile's
    timesteps per phase. A trial whose process died counts as failed. ``execution`` holds
    the execution settings the trials trained with (EnvConfig's, by name, as JSON:
    hyperparameters found for a maker may not suit a taker); a file written before they
    existed has none (its trials were takers')."""

    name: str
    storage: str
    trials: int
    complete: int
    pruned: int
    profile: str
    timesteps_per_phase: tuple[int, ...]
    failed: int = 0
    running: int = 0
    execution: Mapping[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict:
        return {
            "name": self.name,
            "storage": self.storage,
            "trials": self.trials,
            "complete": self.complete,
            "pruned": self.pruned,
            "failed": self.failed,
            "running": self.running,
            "profile": self.profile,
            "timesteps_per_phase": list(self.timesteps_per_phase),
            "execution": dict(self.execution),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(
            name=data["name"],
            storage=data["storage"],
            trials=data["trials"],
            complete=data["complete"],
            pruned=data["pruned"],
            failed=data.get("failed", 0),  # absent in files written before they were counted
            running=data.get("running", 0),
            profile=data["profile"],
            timesteps_per_phase=tuple(data["timesteps_per_phase"]),
            execution=dict(data.get("execution", {})),
        )


@dataclass(frozen=True, kw_only=True)
class TuningResult:
    """A hyperparameter file: the chosen ``hyperparameters`` (the best trial's, or the
    profile's own on a tie), the ``best`` trial, the profile's own trial
    (``profile_as_set``; None when the study did not run it) and the ``study``."""

    hyperparameters: AlgorithmConfig
    best: ScoredTrial
    profile_as_set: ScoredTrial | None
    study: StudySummary

    def to_json(self) -> dict:
        return {
            "format": HYPERPARAMETERS_FORMAT,
            "hyperparameters": self.hyperparameters.to_json(),
            "objective": OBJECTIVE,
            "best": self.best.to_json(),
            "profile_as_set": None
            if self.profile_as_set is None
            else self.profile_as_set.to_json(),
            "study": self.study.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        as_set = data.get("profile_as_set")
        return cls(
            hyperparameters=AlgorithmConfig.from_json(data["hyperparameters"]),
            best=ScoredTrial.from_json(data["best"]),
            profile_as_set=None if as_set is None else ScoredTrial.from_json(as_set),
            study=StudySummary.from_json(data["study"]),
        )
