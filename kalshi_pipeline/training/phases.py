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
"""

from __future__ import annotations

import csv
import json
import logging
import re
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
from kalshi_pipeline.market.views import MarketSessionView
from kalshi_pipeline.training.callbacks import (
    CurriculumCallback,
    RolloutCheckpointCallback,
    ViewStatsCallback,
)
from kalshi_pipeline.training.config import TrainingConfig

log = logging.getLogger(__name__)
ALGORITHM_CLASSES: dict[str, type[BaseAlgorithm]] = {"ppo": PPO, "a2c": A2C}
MODEL_FILE, LINEAGE_FILE = "model.zip", "model.json"
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
) -> list[PhaseResult]:
    """Run the requested phases in order, each warm-started from the one before."""
    results = []
    for phase in phases:
        parent = Path(out_dir) / f"phase{phase - 1}" / MODEL_FILE if phase > 1 else None
        results.append(
            train_phase(phase, views, difficulties, config, out_dir, parent, progress=progress)
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
) -> PhaseResult:
    """Train one phase (1, 2 or 3) into ``<out_dir>/phase<N>/``."""
    if len(views) != len(difficulties):
        raise ValueError("one difficulty per view is needed")
    out = Path(out_dir) / f"phase{phase}"
    final = out / MODEL_FILE
    total = config.phase_timesteps(phase)
    if final.exists():
        log.info("phase %d already trained: %s", phase, final)
        return PhaseResult(phase, final, _load(config, final).num_timesteps, None)
    torch.set_num_threads(config.torch_threads)
    weights = struggle_weights(_load(config, parent), views, config) if phase == 3 else None

    def sampler() -> ViewSampler:
        if phase == 2:
            return CurriculumSampler(
                difficulties, config.curriculum_stages, config.revisit_fraction
            )
        return BalancedSampler(len(views), extra_weight=weights)

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
    else:
        model = new_model(config, env)
    # SB3 rewrites progress.csv from scratch: keep the killed run's rows to merge back.
    earlier_progress = _read_csv(out / "progress.csv") if checkpoint is not None else []
    model.set_logger(configure(str(out), ["csv", "tensorboard"] + (["stdout"] if progress else [])))
    callbacks = [
        RolloutCheckpointCallback(config.checkpoint_every, out / "checkpoints"),
        ViewStatsCallback(out / "view_stats.json"),
    ]
    if phase == 2:
        callbacks.append(CurriculumCallback(total, config.curriculum_stages))
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
    write_lineage(out / LINEAGE_FILE, phase, views, config, parent, model.num_timesteps)
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


def _read_csv(path: Path) -> list[dict]:
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return []


def _prepend_progress(path: Path, earlier: list[dict], up_to_timesteps: int) -> None:
    """Put the rows logged before the resume point back in front of the new ones."""
    kept = [r for r in earlier if float(r.get("time/total_timesteps") or 0) <= up_to_timesteps]
    rows = kept + _read_csv(path)
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
) -> None:
    """What produced a model: layout, views (and their sessions), config, seed, parent."""
    lineage = {
        "phase": phase,
        "algorithm": config.algorithm,
        "timesteps": timesteps,
        "seed": config.seed,
        "feature_layout": FEATURE_LAYOUT,
        "feature_layout_version": FEATURE_LAYOUT_VERSION,
        "sessions": sorted({v.session_id for v in views}),
        "views": [v.key for v in views],
        "parent_model": str(parent) if parent else None,
        "config": config.to_dict(),
    }
    path.write_text(json.dumps(lineage, indent=1, sort_keys=True, default=str))


def read_lineage(model_path: Path) -> dict:
    return json.loads((Path(model_path).parent / LINEAGE_FILE).read_text())
