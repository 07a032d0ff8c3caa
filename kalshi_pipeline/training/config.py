"""Training configuration: one typed object, the plan's defaults in one place.

``TrainingConfig()`` (``PROFILES["plan"]``) is docs/training.md's plan (PPO:
learning_rate 3e-4, n_steps 2048, batch_size 64, n_epochs 10, gamma 0.99, gae_lambda
0.95, clip_range 0.2). ``PROFILES["default"]`` is what learns on our markets: the plan
with ``_LEARNING``'s hyperparameters and eight envs (why, and what else was tried:
docs/learning.md); ``PROFILES["demo"]`` is ``default`` on the budget of the demo (a few
minutes on two CPU cores) and ``PROFILES["smoke"]`` runs all three phases in about a minute,
for tests and quick tries. A config travels as JSON (``to_json``/``from_json``: tuples as lists) in
lineages, fingerprints and the Dagster steps.

Every value is checked when a config is made (:mod:`kalshi_pipeline.training.config_checks`):
a hyperparameter or setting of the wrong type, not finite or out of its range raises
:class:`~kalshi_pipeline.training.config_checks.InvalidConfig` naming the key, before any
training, however the config was made (a profile, the command line, a file of
``kalshi-pipeline tune``, Dagster's run config).

A phase's budget is rounded up to whole rollouts (``n_steps`` x ``n_envs`` timesteps: SB3
updates the policy once per rollout), so a phase trains :meth:`TrainingConfig.trained_timesteps`,
which :meth:`TrainingConfig.budget_note` states when it differs from the budget.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Self

from kalshi_pipeline.env.trading_env import EnvConfig
from kalshi_pipeline.training.config_checks import (
    ALGORITHM_RANGES,
    MAX_ROLLOUT,
    MAX_SEED,
    TRAINING_RANGES,
    InvalidConfig,
    check_probabilities,
    check_ranges,
)

ALGORITHMS = ("ppo", "a2c")


@dataclass(frozen=True, kw_only=True)
class AlgorithmConfig:
    """Hyperparameters handed to SB3 (PPO-only ones are ignored by A2C)."""

    learning_rate: float = 3e-4
    n_steps: int = 2048
    batch_size: int = 64
    n_epochs: int = 10
    gamma: float = 0.99
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    net_arch: tuple[int, ...] = (64, 64)
    # The untrained policy's action probabilities (HOLD, BUY_YES, SELL_YES, BUY_NO,
    # SELL_NO) in every state; None: SB3's uniform start. Set through the bias of the
    # action layer (its weights start near zero), for a new model only.
    initial_action_probabilities: tuple[float, ...] | None = None

    def __post_init__(self) -> None:
        check_ranges(self, ALGORITHM_RANGES)
        check_probabilities("initial_action_probabilities", self.initial_action_probabilities)

    def to_json(self) -> dict:
        return _as_json(asdict(self))

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


@dataclass(frozen=True, kw_only=True)
class TrainingConfig:
    """Everything the three phases need besides the views."""

    algorithm: str = "ppo"
    hyperparameters: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    env: EnvConfig = field(default_factory=EnvConfig)
    phase1_timesteps: int = 200_000
    phase2_timesteps: int = 200_000
    phase3_timesteps: int = 200_000
    curriculum_stages: int = 5
    revisit_fraction: float = 0.2
    struggle_fraction: float = 0.2  # phase 3: share of views, the worst, given extra episodes
    struggle_weight: float = 1.0  # phase 3: extra sampling weight of those views
    n_envs: int = 1
    subprocess_envs: bool = False  # True: one process per env (SubprocVecEnv)
    seed: int = 0
    checkpoint_every: int = 50_000  # timesteps between checkpoints
    # Timesteps between evaluations on the validation views (when a phase is given any);
    # 0: at every checkpoint (checkpoint_every).
    validate_every: int = 0
    torch_threads: int = 1  # an MLP on a small CPU: one thread is usually fastest
    # Seeds trained per phase, the best by validation kept (training/candidates.py), in
    # candidate_workers processes (0: one per CPU core, at most ``candidates``).
    candidates: int = 1
    candidate_workers: int = 0

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise InvalidConfig(f"algorithm {self.algorithm!r} is not one of {ALGORITHMS}")
        if not isinstance(self.hyperparameters, AlgorithmConfig):
            raise InvalidConfig(f"hyperparameters must be a map, got {self.hyperparameters!r}")
        check_ranges(self, TRAINING_RANGES)
        last_seed = self.seed + self.candidates - 1
        if last_seed > MAX_SEED:
            raise InvalidConfig(
                f"seed {self.seed} with {self.candidates} candidates trains seeds up to "
                f"{last_seed}, above the largest seed {MAX_SEED}"
            )
        if self.rollout_timesteps > MAX_ROLLOUT:
            raise InvalidConfig(
                f"a rollout of n_steps x n_envs = {self.hyperparameters.n_steps} x "
                f"{self.n_envs} timesteps is above the largest, {MAX_ROLLOUT:,} (about 1 GB "
                "of buffer): give fewer steps or envs"
            )
        if self.algorithm == "ppo" and self.rollout_timesteps < 2:
            # SB3's PPO normalises advantages over the rollout: one timestep is not enough.
            raise InvalidConfig(
                "PPO needs n_steps x n_envs of 2 or more timesteps per rollout, got "
                f"{self.hyperparameters.n_steps} x {self.n_envs}"
            )

    @property
    def rollout_timesteps(self) -> int:
        """Timesteps of one rollout, between two updates: ``n_steps`` x ``n_envs``."""
        return self.hyperparameters.n_steps * self.n_envs

    def trained_timesteps(self, phase: int) -> int:
        """The timesteps phase ``phase`` trains: its budget rounded up to whole rollouts
        (SB3 collects whole rollouts until the budget is reached)."""
        rollout = self.rollout_timesteps
        return -(-self.phase_timesteps(phase) // rollout) * rollout

    def budget_note(self) -> str | None:
        """One line saying what the phases train when rounding changes their budgets
        (``None`` when every budget is a whole number of rollouts)."""
        changed = {
            p: (self.phase_timesteps(p), self.trained_timesteps(p))
            for p in (1, 2, 3)
            if self.trained_timesteps(p) != self.phase_timesteps(p)
        }
        if not changed:
            return None
        if len(set(changed.values())) == 1 and len(changed) == 3:
            ((budget, trained),) = set(changed.values())
            what = f"each phase trains {trained:,} timesteps, not its budget of {budget:,}"
        else:
            what = ", ".join(
                f"phase {p} trains {trained:,} timesteps, not its budget of {budget:,}"
                for p, (budget, trained) in changed.items()
            )
        return (
            f"{what}: budgets round up to whole rollouts of {self.rollout_timesteps:,} "
            f"timesteps ({self.n_envs} env{'s' * (self.n_envs != 1)} x "
            f"{self.hyperparameters.n_steps} steps); for "
            "fewer, give fewer envs or a budget of whole rollouts"
        )

    @property
    def validation_interval(self) -> int:
        """Timesteps between validations: ``validate_every``, or every checkpoint when 0.
        The validation callback and the tuning pruner's steps must agree on it."""
        return self.validate_every or self.checkpoint_every

    def phase_timesteps(self, phase: int) -> int:
        return (self.phase1_timesteps, self.phase2_timesteps, self.phase3_timesteps)[phase - 1]

    def to_dict(self) -> dict:
        return asdict(self)

    def to_json(self) -> dict:
        """The config as it reads back from JSON (tuples as lists), so that a recorded
        config and this one compare like with like."""
        return _as_json(self.to_dict())

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        values = dict(data)
        return cls(
            **values
            | {
                "hyperparameters": AlgorithmConfig.from_json(values["hyperparameters"]),
                "env": EnvConfig.from_json(values["env"]),
            }
        )


def _as_json(value):
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value, sort_keys=True, default=str))


# The plan's PPO changed where it had to be to learn on our markets: shorter rollouts in
# bigger batches, gamma 0.995, a start near always-HOLD. Why: docs/learning.md.
_LEARNING = AlgorithmConfig(
    n_steps=512,
    batch_size=256,
    gamma=0.995,
    initial_action_probabilities=(0.95, 0.021, 0.004, 0.021, 0.004),
)
_DEFAULT = TrainingConfig(
    hyperparameters=_LEARNING,
    n_envs=8,
    phase1_timesteps=409_600,  # 100 rollouts of 8 envs x 512 steps
    phase2_timesteps=409_600,
    phase3_timesteps=409_600,
    checkpoint_every=40_960,
    candidates=3,
)
PROFILES: dict[str, TrainingConfig] = {
    "plan": TrainingConfig(),
    "default": _DEFAULT,
    # What `kalshi-pipeline demo` trains: `default` with one seed and a budget of a few
    # minutes on two cores, put first: phase 1 gets 50 rollouts of 8 envs, phases 2 and 3
    # 12.5 each. Each phase starts from its parent's best checkpoint on validation, so a
    # long first phase hands the later ones a model that already trades
    # (docs/decisions/0010-a-demo-that-learns.md).
    "demo": replace(
        _DEFAULT,
        phase1_timesteps=204_800,
        phase2_timesteps=51_200,
        phase3_timesteps=51_200,
        candidates=1,
    ),
    # Small budgets, about a minute on two cores, for tests and quick tries: it does not
    # learn (its models tie always-HOLD).
    "smoke": TrainingConfig(
        hyperparameters=replace(_LEARNING, n_steps=256, n_epochs=4),
        n_envs=8,
        phase1_timesteps=20_480,
        phase2_timesteps=20_480,
        phase3_timesteps=20_480,
        checkpoint_every=10_240,
    ),
}


def profile(
    name: str,
    *,
    timesteps_per_phase: int | None = None,
    algorithm: str | None = None,
    seed: int | None = None,
    **changes,
) -> TrainingConfig:
    """A named profile with some fields changed; ``None`` keeps the profile's value.

    ``timesteps_per_phase`` sets the budget of all three phases at once.
    """
    if timesteps_per_phase is not None:
        changes.update(
            phase1_timesteps=timesteps_per_phase,
            phase2_timesteps=timesteps_per_phase,
            phase3_timesteps=timesteps_per_phase,
        )
    if algorithm is not None:
        changes["algorithm"] = algorithm
    if seed is not None:
        changes["seed"] = seed
    return replace(PROFILES[name], **changes)


def read_hyperparameters(path: str | Path) -> AlgorithmConfig:
    """The hyperparameters of a file written by ``kalshi-pipeline tune``
    (:func:`kalshi_pipeline.training.tuning.write_result`); :class:`InvalidConfig` naming
    the file, and the key, of what is wrong otherwise."""
    try:
        recorded = json.loads(Path(path).read_text())["hyperparameters"]
    except FileNotFoundError:
        raise InvalidConfig(f"hyperparameter file {path} does not exist") from None
    except (json.JSONDecodeError, KeyError, TypeError, UnicodeDecodeError) as error:
        raise InvalidConfig(
            f"hyperparameter file {path} is not one kalshi-pipeline tune wrote "
            f"(no JSON object with 'hyperparameters': {error})"
        ) from None
    except OSError as error:
        raise InvalidConfig(
            f"hyperparameter file {path} cannot be read: {error.strerror}"
        ) from None
    known = {f.name for f in fields(AlgorithmConfig)}
    unknown = sorted(set(recorded) - known) if isinstance(recorded, dict) else ["(not a map)"]
    if unknown:
        raise InvalidConfig(f"hyperparameter file {path}: unknown hyperparameters {unknown}")
    try:
        return AlgorithmConfig.from_json(recorded)
    except (TypeError, ValueError) as error:
        raise InvalidConfig(f"hyperparameter file {path}: {error}") from None
