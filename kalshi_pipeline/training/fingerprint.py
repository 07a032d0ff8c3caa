"""What a phase trains on, and the checks that keep a phase directory to one job.

Resuming and skipping are only right for the same job: each phase directory records the
fingerprint of what it trains on (the view keys, a SHA-256 digest of the views' step
data, and the config; with validation views, theirs too) in ``fingerprint.json`` once it
has trained a rollout, before its first checkpoint or model, and in ``model.json`` after. A
phase whose directory holds a model or checkpoints of other views or another config raises
:class:`TrainedOnOtherData` instead of reusing them; a phase refuses a parent trained with
other hyperparameters (:func:`check_parent`), since loading it would bring them back.

Only a trained directory is guarded: one with a model or a checkpoint, its own or one of
its seed candidates' (``<out>/candidates/seed-<s>/phase<N>/``). A run that failed before
its first checkpoint leaves nothing to resume, so a ``fingerprint.json`` it left (seed
candidates record the phase's before they start) does not lock the directory: the
corrected run trains there and records its own.

A config recorded before the env config had its execution settings (taker or maker,
latency, queue model, fees) reads with those settings at their defaults
(:func:`with_execution_defaults`): such a run trained as a taker with the default fees,
which is what those defaults train today, so an ``OUT`` trained then is still the same
job for a taker run with no execution setting given, and a run given one is refused
naming it.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Self

import numpy as np

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.market.views import STEP_ARRAYS, MarketSessionView
from kalshi_pipeline.training.algorithms import CHECKPOINT, MODEL_FILE
from kalshi_pipeline.training.config import TrainingConfig
from kalshi_pipeline.training.execution_choice import execution_settings
from kalshi_pipeline.training.lineage import read_lineage

FINGERPRINT_FILE = "fingerprint.json"
CANDIDATES_DIR = "candidates"  # <out>/candidates/seed-<s>/phase<N>/: a phase's seed candidates


def check_parent(parent: Path | None, config: TrainingConfig) -> None:
    """Refuse to warm-start from a model trained with another algorithm or hyperparameters.

    Loading a parent restores its hyperparameters and network (SB3 keeps them in the
    model), so a phase configured otherwise would train as its parent was configured
    while its lineage recorded the other config. Budgets, envs and seeds may differ.
    """
    if parent is None:
        return
    restored = ("algorithm", "hyperparameters")  # what SB3 keeps in a saved model
    recorded = {k: v for k, v in read_lineage(parent).config.items() if k in restored}
    current = {k: v for k, v in config.to_json().items() if k in restored}
    differences = _config_differences(recorded, current)
    if differences:
        raise ValueError(
            f"{parent} was trained with another config, and a phase trains as its parent "
            f"was configured: {'; '.join(differences)} (give every phase the same training "
            "config)"
        )


class TrainedOnOtherData(FileExistsError):
    """A phase directory holds a model or checkpoints of other views or another config."""


def views_digest(views: Sequence[MarketSessionView]) -> str:
    """SHA-256 over every view's key, length, feature layout and step arrays, by key.

    Sorted by key, so the order a source lists its views in does not matter; hashing the
    arrays' buffers directly costs about a second per GB, little next to building views.
    """
    digest = hashlib.sha256()
    for view in sorted(views, key=lambda v: v.key):
        header = f"{view.key}\0{len(view)}\0{view.feature_layout}:{view.feature_layout_version}\0"
        digest.update(header.encode())
        for name in STEP_ARRAYS:
            digest.update(np.ascontiguousarray(getattr(view, name)).data)
    return digest.hexdigest()


@dataclass(frozen=True, kw_only=True)
class Fingerprint:
    """What a phase trains on: the view keys (sorted), a digest of their data, the config
    as JSON data, and the validation views that pick its output (when there are any).
    ``fingerprint.json`` holds it, keys sorted."""

    views: tuple[str, ...]
    views_sha256: str
    config: Mapping
    validation: tuple[str, ...] | None = None
    validation_sha256: str | None = None

    def to_json(self) -> dict:
        data = {
            "views": list(self.views),
            "views_sha256": self.views_sha256,
            "config": dict(self.config),
        }
        if self.validation is not None:
            data["validation"] = list(self.validation)
            data["validation_sha256"] = self.validation_sha256
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        validation = data.get("validation")
        return cls(
            views=tuple(data["views"]),
            views_sha256=data["views_sha256"],
            config=data["config"],
            validation=tuple(validation) if validation is not None else None,
            validation_sha256=data.get("validation_sha256"),
        )


def training_fingerprint(
    views: Sequence[MarketSessionView],
    config: TrainingConfig,
    validation: Sequence[MarketSessionView] = (),
) -> Fingerprint:
    """The fingerprint of training on ``views`` with ``config``, validated on
    ``validation``."""
    return Fingerprint(
        views=tuple(sorted(v.key for v in views)),
        views_sha256=views_digest(views),
        config=config.to_json(),
        validation=tuple(sorted(v.key for v in validation)) if validation else None,
        validation_sha256=views_digest(validation) if validation else None,
    )


def with_execution_defaults(config: Mapping) -> Mapping:
    """A recorded training config (JSON data) with each execution setting its env config
    lacks at its default, as JSON writes it; those it records are kept. Only the execution
    settings are filled in: their defaults are how a run trained before they existed."""
    env = config.get("env")
    if not isinstance(env, Mapping):
        return config
    defaults = json.loads(json.dumps(execution_settings(EnvConfig())))
    return {**config, "env": {**defaults, **env}}


def recorded_fingerprint(phase_dir: Path) -> Fingerprint | None:
    """The fingerprint a phase directory was trained with; None if it records none.

    ``fingerprint.json`` (written before the first checkpoint) wins; a finished model's
    lineage stands in for it in directories written before it existed. A model or
    checkpoints without either were written by a version that recorded no fingerprint
    (:func:`trained`): they count as trained on unknown data. Its config is read with
    :func:`with_execution_defaults`.
    """
    if (phase_dir / FINGERPRINT_FILE).exists():
        recorded = Fingerprint.from_json(json.loads((phase_dir / FINGERPRINT_FILE).read_text()))
    elif (phase_dir / MODEL_FILE).exists():
        lineage = read_lineage(phase_dir / MODEL_FILE)
        if lineage.views_sha256 is None:
            return None
        recorded = Fingerprint(
            views=tuple(sorted(lineage.views)),
            views_sha256=lineage.views_sha256,
            config=lineage.config,
        )
    else:
        return None
    return replace(recorded, config=with_execution_defaults(recorded.config))


def trained(phase_dir: Path) -> bool:
    """Whether ``phase_dir`` holds a model or checkpoints, or one of its seed candidates
    does."""
    candidates = _listing(phase_dir.parent / CANDIDATES_DIR)
    return any(
        (directory / MODEL_FILE).exists()
        or any(CHECKPOINT.search(p.name) for p in _listing(directory / "checkpoints"))
        for directory in [phase_dir, *(c / phase_dir.name for c in candidates)]
    )


def check_fingerprint(phase_dir: Path, fingerprint: Fingerprint) -> None:
    """Raise :class:`TrainedOnOtherData` unless ``phase_dir`` is untrained (whatever
    fingerprint it records: see the module docstring) or holds this job."""
    if not trained(phase_dir):
        return
    recorded = recorded_fingerprint(phase_dir)
    if recorded == fingerprint:
        return
    if recorded is None:
        differences = ["its model or checkpoints record no fingerprint (an older version)"]
    else:
        differences = _view_differences(recorded, fingerprint) + _config_differences(
            recorded.config, fingerprint.config
        )
        if recorded.validation_sha256 != fingerprint.validation_sha256:
            there, here = len(recorded.validation or ()), len(fingerprint.validation or ())
            differences.append(f"validated on {_views(there)}, here on {_views(here)} or others")
    raise TrainedOnOtherData(
        f"{phase_dir} holds a model trained on other data: {'; '.join(differences)} "
        f"(train into a new directory (--out), or delete {phase_dir.parent} to train afresh)"
    )


def _view_differences(recorded: Fingerprint, current: Fingerprint) -> list[str]:
    there, here = set(recorded.views), set(current.views)
    if there != here:
        missing, new = len(there - here), len(here - there)
        if missing:
            return [
                f"trained on {_views(len(there))}, {missing} of them not among these {len(here)}"
            ]
        return [f"trained on {_views(len(there))}, without {new} of these {len(here)}"]
    if recorded.views_sha256 != current.views_sha256:
        return [
            f"trained on the same {len(here)} view keys with other data (another store, "
            "or views built by other code)"
        ]
    return []


def _views(count: int) -> str:
    return f"{count} view{'s' * (count != 1)}"


def _config_differences(recorded: dict, current: dict, shown: int = 4) -> list[str]:
    there, here = _flatten(recorded), _flatten(current)
    changed = [k for k in sorted(there.keys() | here.keys()) if there.get(k) != here.get(k)]
    if not changed:
        return []
    listed = ", ".join(f"{k} {here.get(k)} here vs {there.get(k)} there" for k in changed[:shown])
    more = f" and {len(changed) - shown} more" if len(changed) > shown else ""
    return [f"config differs: {listed}{more}"]


def _flatten(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flatten(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value
    return flat


def _listing(directory: Path) -> list[Path]:
    return list(directory.iterdir()) if directory.is_dir() else []
