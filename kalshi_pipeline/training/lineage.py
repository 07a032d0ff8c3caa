"""A model's lineage: what produced it, as ``model.json`` beside its ``model.zip``.

:class:`Lineage` is that file as a record: the phase, algorithm, timesteps and seed, the
feature layout, the training views (and their sessions and digest), the parent model and
the training config; a model picked by validation adds its score, and a phase trained
as seed candidates adds every candidate's result (:class:`CandidateResult`) and why the
winner won. The file is JSON with sorted keys (docs/training.md, docs/contracts.md);
keys that a record does not have (an older file's ``views_sha256``, a one-seed phase's
``candidates``) are left out, so files written before these records read back as they
were and new ones are the same bytes as before.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

from kalshi_pipeline.env.trading_env import EnvConfig
from kalshi_pipeline.training.config import TrainingConfig
from kalshi_pipeline.training.validation import ValidationScore

LINEAGE_FILE = "model.json"


@dataclass(frozen=True, kw_only=True)
class CandidateResult:
    """One seed candidate of a phase: its seed, the validation score of its output (the
    checkpoint its own validation kept) and where that model is."""

    seed: int
    validation: ValidationScore
    model: Path

    def to_json(self) -> dict:
        # Flat, as model.json has always listed candidates: seed, the score's five
        # fields, and the model's path.
        return {"seed": self.seed, **self.validation.to_json(), "model": str(self.model)}

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(
            seed=int(data["seed"]),
            validation=ValidationScore.from_json(data),
            model=Path(data["model"]),
        )


@dataclass(frozen=True, kw_only=True)
class Lineage:
    """What produced a model. ``config`` is the training config as JSON data (a file
    written by an older version may hold fields today's config lacks, so it is not read
    back into a :class:`TrainingConfig`; its env config is, by :meth:`env_config`: the
    model's execution settings, which its evaluation plays with); ``timesteps`` is the
    phase's last count, while ``selected_by_validation`` gives the timesteps of the model
    kept."""

    phase: int
    algorithm: str
    timesteps: int
    seed: int
    feature_layout: str
    feature_layout_version: int
    sessions: tuple[int, ...]
    views: tuple[str, ...]
    views_sha256: str | None = None  # absent in files written before fingerprints
    parent_model: str | None = None
    config: Mapping
    selected_by_validation: ValidationScore | None = None
    candidates: tuple[CandidateResult, ...] | None = None
    selection: str | None = None  # with candidates: why the winner won, in one sentence

    def to_json(self) -> dict:
        data = {
            "phase": self.phase,
            "algorithm": self.algorithm,
            "timesteps": self.timesteps,
            "seed": self.seed,
            "feature_layout": self.feature_layout,
            "feature_layout_version": self.feature_layout_version,
            "sessions": list(self.sessions),
            "views": list(self.views),
            "parent_model": self.parent_model,
            "config": dict(self.config),
        }
        if self.views_sha256 is not None:
            data["views_sha256"] = self.views_sha256
        if self.selected_by_validation is not None:
            data["selected_by_validation"] = self.selected_by_validation.to_json()
        if self.candidates is not None:
            data["candidates"] = [c.to_json() for c in self.candidates]
        if self.selection is not None:
            data["selection"] = self.selection
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        selected = data.get("selected_by_validation")
        candidates = data.get("candidates")
        return cls(
            phase=data["phase"],
            algorithm=data["algorithm"],
            timesteps=data["timesteps"],
            seed=data["seed"],
            feature_layout=data["feature_layout"],
            feature_layout_version=data["feature_layout_version"],
            sessions=tuple(data["sessions"]),
            views=tuple(data["views"]),
            views_sha256=data.get("views_sha256"),
            parent_model=data["parent_model"],
            config=data["config"],
            selected_by_validation=(
                ValidationScore.from_json(selected) if selected is not None else None
            ),
            candidates=(
                tuple(CandidateResult.from_json(c) for c in candidates)
                if candidates is not None
                else None
            ),
            selection=data.get("selection"),
        )

    def env_config(self) -> EnvConfig:
        """The env config the model was trained with, as its lineage records it. A file
        written before the execution settings has none of their keys: it reads as the
        defaults, a taker (which is how such a model was trained)."""
        return EnvConfig.from_json(self.config["env"])

    def with_candidates(
        self,
        winner: CandidateResult,
        candidates: Sequence[CandidateResult],
        selection: str,
        config: TrainingConfig,
        parent: Path | None,
    ) -> Lineage:
        """The winning candidate's lineage as the phase's: the run's config (K candidates
        from ``config.seed``), the winner's seed, the phase's parent, every candidate."""
        return replace(
            self,
            config=config.to_json(),
            seed=winner.seed,
            parent_model=str(parent) if parent else None,
            candidates=tuple(candidates),
            selection=selection,
        )


def save_lineage(path: Path, lineage: Lineage) -> None:
    """``lineage`` as ``model.json``: one space of indent, sorted keys."""
    path.write_text(json.dumps(lineage.to_json(), indent=1, sort_keys=True))


def read_lineage(model_path: Path) -> Lineage:
    """The lineage beside ``model_path``."""
    return Lineage.from_json(json.loads((Path(model_path).parent / LINEAGE_FILE).read_text()))
