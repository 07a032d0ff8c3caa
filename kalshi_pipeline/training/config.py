"""Training configuration: one typed object, the plan's defaults in one place.

``TrainingConfig()`` is DESIGN.md section 6's plan (PPO: learning_rate 3e-4, n_steps
2048, batch_size 64, n_epochs 10, gamma 0.99, gae_lambda 0.95, clip_range 0.2);
``PROFILES["demo"]`` runs all three phases in a few minutes on two CPU cores.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace

from kalshi_pipeline.env.trading_env import EnvConfig

ALGORITHMS = ("ppo", "a2c")


@dataclass(frozen=True)
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


@dataclass(frozen=True)
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
    torch_threads: int = 1  # an MLP on a small CPU: one thread is usually fastest

    def __post_init__(self) -> None:
        if self.algorithm not in ALGORITHMS:
            raise ValueError(f"algorithm {self.algorithm!r} is not one of {ALGORITHMS}")

    def phase_timesteps(self, phase: int) -> int:
        return (self.phase1_timesteps, self.phase2_timesteps, self.phase3_timesteps)[phase - 1]

    def to_dict(self) -> dict:
        return asdict(self)


PROFILES: dict[str, TrainingConfig] = {
    "default": TrainingConfig(),
    "demo": TrainingConfig(
        hyperparameters=AlgorithmConfig(n_steps=512, batch_size=64, n_epochs=4),
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
    if timesteps_per_phase:
        changes.update(
            phase1_timesteps=timesteps_per_phase,
            phase2_timesteps=timesteps_per_phase,
            phase3_timesteps=timesteps_per_phase,
        )
    if algorithm:
        changes["algorithm"] = algorithm
    if seed is not None:
        changes["seed"] = seed
    return replace(PROFILES[name], **changes)
