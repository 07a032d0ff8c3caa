"""The three training phases on Stable-Baselines3 (DESIGN.md section 6).

* Phase 1: all training views, balanced sampling: a baseline.
* Phase 2: curriculum by difficulty (easiest 20% first, then the next 20%, ...,
  revisiting easy views), warm-started from phase 1. A :class:`CurriculumCallback`
  moves the stage through ``env_method``.
* Phase 3: balanced over all views plus extra episodes on the views where the phase-2
  model does worst (a deterministic rollout per view picks the worst
  ``struggle_fraction``), warm-started from phase 2.

Each phase writes into ``<out>/phase<N>/``: ``model.zip`` (``model.save()``: any SB3 user
can ``PPO.load()`` it), ``model.json`` (lineage: layout, views, config, seed, parent),
``checkpoints/`` every ``checkpoint_every`` timesteps, ``view_stats.json`` (per-view
episode statistics), ``progress.csv`` and TensorBoard event files (episode reward,
entropy, value loss, curriculum stage: ``tensorboard --logdir <out>``). A phase that
finds checkpoints of an unfinished run resumes from the newest readable one with its
timestep count; a phase whose ``model.zip`` exists is done and is not trained again
(``model.zip`` appears last, complete, after its ``model.json``).

Given validation views, a phase also scores its model on them every ``validate_every``
timesteps (``validation.csv``, ``validation/...`` in TensorBoard) and keeps the best one
(``best_model.zip``, ``best.json``): ``model.zip`` is then that best model, the phase's
output, and ``last_model.zip`` the last one.

Resuming and skipping are only right for the same job: each phase directory records the
fingerprint of what it trains on (the view keys, a SHA-256 digest of the views' step
data, and the config) in ``fingerprint.json`` before training starts and in
``model.json`` after. A phase whose directory holds a model or checkpoints of other views
or another config raises :class:`TrainedOnOtherData` instead of reusing them.
"""

from __future__ import annotations

import csv
import hashlib
import json
import logging
import os
import re
import shutil
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from stable_baselines3 import A2C, PPO
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import CallbackList
from stable_baselines3.common.logger import configure
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from kalshi_pipeline.env.samplers import BalancedSampler, CurriculumSampler, ViewSampler
from kalshi_pipeline.env.trading_env import MarketAgnosticKalshiEnv
from kalshi_pipeline.market.features import FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION
from kalshi_pipeline.market.views import STEP_ARRAYS, MarketSessionView
from kalshi_pipeline.training.callbacks import (
    CurriculumCallback,
    ProgressCallback,
    RolloutCheckpointCallback,
    ValidationCallback,
    ViewStatsCallback,
    read_csv_rows,
    write_json_atomically,
)
from kalshi_pipeline.training.config import TrainingConfig

log = logging.getLogger(__name__)
ALGORITHM_CLASSES: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C}
MODEL_FILE, LINEAGE_FILE, FINGERPRINT_FILE = "model.zip", "model.json", "fingerprint.json"
LAST_MODEL_FILE = "last_model.zip"  # with validation views: the last model (model.zip: the best)
_CHECKPOINT = re.compile(r"model_(\d+)_steps\.zip$")
_SB3_MEMBERS = {"data", "policy.pth"}  # what every model.save() archive holds


@dataclass(frozen=True)
class PhaseResult:
    phase: int
    model_path: Path
    timesteps: int
    resumed_from: Path | None


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
    on_validation: Callable[[dict], None] | None = None,
) -> PhaseResult:
    """Train one phase (1, 2 or 3) into ``<out_dir>/phase<N>/``.

    ``progress`` shows SB3's progress bar; ``on_progress`` gets a line on the phase's
    progress every few seconds (:class:`~kalshi_pipeline.training.callbacks.ProgressCallback`).

    With ``validation`` views, a :class:`~kalshi_pipeline.training.callbacks.ValidationCallback`
    scores the model on them at the start, every ``config.validate_every`` timesteps (0:
    every checkpoint) and at the end; ``model.zip`` is then the best model by
    :func:`~kalshi_pipeline.training.callbacks.validation_rank` (its lineage says so in
    ``selected_by_validation``), and the last one is ``last_model.zip``. Without them,
    ``model.zip`` is the last model. ``on_validation`` gets each evaluation's timesteps,
    score, interval (``low``, ``high``) and share (the tuner prunes on ``low``).
    """
    if len(views) != len(difficulties):
        raise ValueError("one difficulty per view is needed")
    out = Path(out_dir) / f"phase{phase}"
    final = out / MODEL_FILE
    total = config.phase_timesteps(phase)
    fingerprint = training_fingerprint(views, config, validation)
    check_fingerprint(out, fingerprint)  # before anything in ``out`` is reused or written
    if final.exists():
        log.info("phase %d already trained: %s", phase, final)
        lineage = read_lineage(final)
        if "selected_by_validation" in lineage:  # model.zip is the best, not the last, model
            return PhaseResult(phase, final, lineage["timesteps"], None)
        return PhaseResult(phase, final, _load(config, final).num_timesteps, None)
    check_parent(parent, config)
    torch.set_num_threads(config.torch_threads)
    weights = struggle_weights(_load(config, parent), views, config) if phase == 3 else None

    def sampler() -> ViewSampler:
        if phase == 2:
            return CurriculumSampler(
                difficulties, config.curriculum_stages, config.revisit_fraction
            )
        return BalancedSampler(len(views), extra_weight=weights)

    if not (out / FINGERPRINT_FILE).exists():
        out.mkdir(parents=True, exist_ok=True)
        write_json_atomically(out / FINGERPRINT_FILE, fingerprint)
    env = make_vec_env(views, config, sampler)
    checkpoint = latest_checkpoint(out / "checkpoints")
    if checkpoint is not None:
        model = _load(config, checkpoint, env)
        log.info(
            "phase %d: resuming from %s at %d timesteps", phase, checkpoint, model.num_timesteps
        )
    elif parent is not None:
        model = _load(config, parent, env)
        model.num_timesteps = 0
        # Loading seeds with the parent's seed: a phase (or seed candidate) of another
        # seed would otherwise train exactly as one of the parent's seed.
        model.seed = config.seed
        model.set_random_seed(config.seed)
    else:
        model = new_model(config, env)
    # SB3 rewrites progress.csv from scratch: keep the killed run's rows to merge back.
    earlier_progress = read_csv_rows(out / "progress.csv") if checkpoint is not None else []
    model.set_logger(configure(str(out), ["csv", "tensorboard"] + (["stdout"] if progress else [])))
    callbacks = []
    validating = None
    if validation:
        if checkpoint is None:  # a fresh start: a killed run's scores are not this run's
            for name in (
                ValidationCallback.CSV,
                ValidationCallback.BEST_MODEL,
                ValidationCallback.BEST,
            ):
                (out / name).unlink(missing_ok=True)
        every = config.validate_every or config.checkpoint_every
        # Before the checkpoint callback: a checkpoint on disk means its score is recorded.
        validating = ValidationCallback(
            validation, config.env, every, out, on_validated=on_validation
        )
        callbacks.append(validating)
    callbacks += [
        RolloutCheckpointCallback(config.checkpoint_every, out / "checkpoints"),
        ViewStatsCallback(out / "view_stats.json"),
    ]
    if phase == 2:
        callbacks.append(CurriculumCallback(total, config.curriculum_stages))
    if on_progress is not None:
        callbacks.append(ProgressCallback(phase, total, on_progress, validation=validating))
    remaining = max(total - model.num_timesteps, 0)
    model.learn(
        remaining,
        callback=CallbackList(callbacks),
        reset_num_timesteps=False,
        progress_bar=progress,
        tb_log_name=f"phase{phase}",
    )
    # Renamed into place last: a kill while saving leaves no model.zip (the phase is then
    # unfinished and resumes), never a partial one or one without its lineage.
    if earlier_progress:
        _prepend_progress(out / "progress.csv", earlier_progress, _checkpoint_steps(checkpoint))
    partial = out / "model.partial.zip"
    model.save(partial)
    selected = None
    if validation:  # the output is the best model by validation; the last one stays beside it
        os.replace(partial, out / LAST_MODEL_FILE)
        shutil.copyfile(out / ValidationCallback.BEST_MODEL, partial)
        selected = json.loads((out / ValidationCallback.BEST).read_text())
    write_lineage(
        out / LINEAGE_FILE, phase, views, config, parent, model.num_timesteps,
        views_sha256=fingerprint["views_sha256"], selected_by_validation=selected,
    )  # fmt: skip
    partial.replace(final)
    env.close()
    return PhaseResult(phase, final, model.num_timesteps, checkpoint)


def make_vec_env(
    views: Sequence[MarketSessionView],
    config: TrainingConfig,
    sampler: Callable[[], ViewSampler],
) -> VecEnv:
    """``n_envs`` Monitor-wrapped envs over ``views``, each with its own sampler.

    They step in this process (``DummyVecEnv``) unless ``config.subprocess_envs``: the env
    is cheap next to the policy's forward pass, which one process runs for all envs at
    once, so on a small CPU subprocesses only add IPC (measured on 2 cores: 8 envs in one
    process train about 3x faster per timestep than 1 env).
    """

    def factory() -> Callable[[], Monitor]:
        return lambda: Monitor(MarketAgnosticKalshiEnv(list(views), config.env, sampler()))

    factories = [factory() for _ in range(config.n_envs)]
    if config.subprocess_envs and config.n_envs > 1:
        return SubprocVecEnv(factories, start_method="forkserver")
    return DummyVecEnv(factories)


def new_model(config: TrainingConfig, env: VecEnv) -> BaseAlgorithm:
    h = config.hyperparameters
    options = {
        "learning_rate": h.learning_rate,
        "n_steps": h.n_steps,
        "gamma": h.gamma,
        "gae_lambda": h.gae_lambda,
        "ent_coef": h.ent_coef,
        "policy_kwargs": {"net_arch": list(h.net_arch)},
    }
    if config.algorithm == "ppo":
        options.update(batch_size=h.batch_size, n_epochs=h.n_epochs, clip_range=h.clip_range)
    algorithm = ALGORITHM_CLASSES[config.algorithm]
    model = algorithm("MlpPolicy", env, seed=config.seed, device="cpu", verbose=0, **options)
    if h.initial_action_probabilities is not None:
        # The action layer's weights start near zero (SB3 scales them by 0.01), so its
        # bias sets the untrained policy's action probabilities in every state.
        with torch.no_grad():
            model.policy.action_net.bias.copy_(
                torch.log(torch.tensor(h.initial_action_probabilities))
            )
    return model


def _load(config: TrainingConfig, path: Path, env: VecEnv | None = None) -> BaseAlgorithm:
    return ALGORITHM_CLASSES[config.algorithm].load(path, env=env, device="cpu")


def latest_checkpoint(directory: Path) -> Path | None:
    """The newest checkpoint that loads (a kill can leave the newest one half-written)."""
    if not directory.is_dir():
        return None
    found = sorted(
        (int(m.group(1)), p) for p in directory.iterdir() if (m := _CHECKPOINT.search(p.name))
    )
    for _, path in reversed(found):
        try:
            with zipfile.ZipFile(path) as archive:
                # SB3 stores its members uncompressed and its .pth members are zip archives
                # too: a checkpoint cut short can open as one of those, so check the names.
                if set(archive.namelist()) >= _SB3_MEMBERS and archive.testzip() is None:
                    return path
        except (zipfile.BadZipFile, OSError):
            pass
        log.warning("checkpoint %s is unreadable; trying an older one", path)
    return None


def _checkpoint_steps(path: Path) -> int:
    return int(_CHECKPOINT.search(path.name).group(1))


def _prepend_progress(path: Path, earlier: list[dict], up_to_timesteps: int) -> None:
    """Put the rows logged before the resume point back in front of the new ones."""
    kept = [r for r in earlier if float(r.get("time/total_timesteps") or 0) <= up_to_timesteps]
    rows = kept + read_csv_rows(path)
    fields = list(dict.fromkeys(name for row in rows for name in row))
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def struggle_weights(
    model: BaseAlgorithm, views: Sequence[MarketSessionView], config: TrainingConfig
) -> np.ndarray:
    """Extra sampling weight for the ``struggle_fraction`` of views the model does worst on."""
    from kalshi_pipeline.training.evaluation import model_policy, rollout

    rewards = np.array(
        [rollout(model_policy(model), view, config.env).total_reward for view in views]
    )
    count = int(len(views) * config.struggle_fraction + 1e-9)  # 100 x 0.29 is 29, not 28
    worst = np.argsort(rewards, kind="stable")[: max(count, 1 if config.struggle_fraction else 0)]
    weights = np.zeros(len(views))
    weights[worst] = config.struggle_weight
    return weights


def write_lineage(
    path: Path,
    phase: int,
    views: Sequence[MarketSessionView],
    config: TrainingConfig,
    parent: Path | None,
    timesteps: int,
    *,
    views_sha256: str | None = None,
    selected_by_validation: dict | None = None,
) -> None:
    """What produced a model: layout, views (and their sessions), config, seed, parent.

    ``views``, ``views_sha256`` and ``config`` are also the model's fingerprint
    (:func:`training_fingerprint`; the digest is computed here unless given).
    ``timesteps`` is the phase's last count; a model picked by validation records its own
    (``selected_by_validation``: timesteps, score, share).
    """
    lineage = {
        "phase": phase,
        "algorithm": config.algorithm,
        "timesteps": timesteps,
        "seed": config.seed,
        "feature_layout": FEATURE_LAYOUT,
        "feature_layout_version": FEATURE_LAYOUT_VERSION,
        "sessions": sorted({v.session_id for v in views}),
        "views": [v.key for v in views],
        "views_sha256": views_sha256 or views_digest(views),
        "parent_model": str(parent) if parent else None,
        "config": config.to_dict(),
    }
    if selected_by_validation is not None:
        lineage["selected_by_validation"] = selected_by_validation
    path.write_text(json.dumps(lineage, indent=1, sort_keys=True, default=str))


def read_lineage(model_path: Path) -> dict:
    return json.loads((Path(model_path).parent / LINEAGE_FILE).read_text())


def check_parent(parent: Path | None, config: TrainingConfig) -> None:
    """Refuse to warm-start from a model trained with another algorithm or hyperparameters.

    Loading a parent restores its hyperparameters and network (SB3 keeps them in the
    model), so a phase configured otherwise would train as its parent was configured
    while its lineage recorded the other config. Budgets, envs and seeds may differ.
    """
    if parent is None:
        return
    restored = ("algorithm", "hyperparameters")  # what SB3 keeps in a saved model
    recorded = {k: v for k, v in read_lineage(parent)["config"].items() if k in restored}
    current = {k: v for k, v in _as_json(config.to_dict()).items() if k in restored}
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


def training_fingerprint(
    views: Sequence[MarketSessionView],
    config: TrainingConfig,
    validation: Sequence[MarketSessionView] = (),
) -> dict:
    """What a phase trains on: the view keys, a digest of their data, the config as JSON,
    and the validation views that pick its output (when there are any)."""
    fingerprint = {
        "views": sorted(v.key for v in views),
        "views_sha256": views_digest(views),
        "config": _as_json(config.to_dict()),
    }
    if validation:
        fingerprint["validation"] = sorted(v.key for v in validation)
        fingerprint["validation_sha256"] = views_digest(validation)
    return fingerprint


def recorded_fingerprint(phase_dir: Path) -> dict | None:
    """The fingerprint a phase directory was trained with; None if nothing was trained.

    ``fingerprint.json`` (written before training starts) wins; a finished model's
    lineage stands in for it in directories written before it existed. A model or
    checkpoints without either were written by a version that recorded no fingerprint:
    they count as trained on unknown data (an empty fingerprint).
    """
    if (phase_dir / FINGERPRINT_FILE).exists():
        return json.loads((phase_dir / FINGERPRINT_FILE).read_text())
    if (phase_dir / MODEL_FILE).exists():
        lineage = read_lineage(phase_dir / MODEL_FILE)
        if "views_sha256" in lineage:
            return {
                "views": sorted(lineage["views"]),
                "views_sha256": lineage["views_sha256"],
                "config": lineage["config"],
            }
    trained = (phase_dir / MODEL_FILE).exists() or any(
        _CHECKPOINT.search(p.name) for p in _listing(phase_dir / "checkpoints")
    )
    return {} if trained else None


def check_fingerprint(phase_dir: Path, fingerprint: dict) -> None:
    """Raise :class:`TrainedOnOtherData` unless ``phase_dir`` is new or holds this job."""
    recorded = recorded_fingerprint(phase_dir)
    if recorded is None or recorded == fingerprint:
        return
    if not recorded:
        differences = ["its model or checkpoints record no fingerprint (an older version)"]
    else:
        differences = _view_differences(recorded, fingerprint) + _config_differences(
            recorded["config"], fingerprint["config"]
        )
        if recorded.get("validation_sha256") != fingerprint.get("validation_sha256"):
            there, here = (
                len(recorded.get("validation", [])),
                len(fingerprint.get("validation", [])),
            )
            differences.append(f"validated on {_views(there)}, here on {_views(here)} or others")
    raise TrainedOnOtherData(
        f"{phase_dir} holds a model trained on other data: {'; '.join(differences)} "
        f"(train into a new directory (--out), or delete {phase_dir.parent} to train afresh)"
    )


def _view_differences(recorded: dict, current: dict) -> list[str]:
    there, here = set(recorded["views"]), set(current["views"])
    if there != here:
        missing, new = len(there - here), len(here - there)
        if missing:
            return [
                f"trained on {_views(len(there))}, {missing} of them not among these {len(here)}"
            ]
        return [f"trained on {_views(len(there))}, without {new} of these {len(here)}"]
    if recorded["views_sha256"] != current["views_sha256"]:
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


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists), to compare like with like."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


def _listing(directory: Path) -> list[Path]:
    return list(directory.iterdir()) if directory.is_dir() else []
