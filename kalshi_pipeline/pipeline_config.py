"""The pipeline's one configuration: every default of a training or tuning run, once.

:class:`PipelineConfig` holds the filters (``FilterConfig``), the split
(:class:`SplitConfig`), the training (:class:`TrainingChoice`: a profile and what is
changed from it), the environment and the execution settings
(:class:`~kalshi_pipeline.training.execution_choice.ExecutionChoice`: how orders meet the
book, taker or maker); :class:`TuningChoice` is a tuning study. "Unset" is always
``None`` (the profile's value). Each field is declared with its help
(:func:`kalshi_pipeline.config_fields.described`): ``kalshi-pipeline``'s options
(:mod:`kalshi_pipeline.cli.options`) and Dagster's run config
(:mod:`kalshi_pipeline.defs.config`) are both made from these dataclasses, so a default,
a flag's meaning and its help are written once. The steps that use them are in
:mod:`kalshi_pipeline.workflow`; this module sits in the same layer (it resolves training
profiles, from the training layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Self

from kalshi_pipeline.config_fields import Values, described, flat_from_json, flat_to_json
from kalshi_pipeline.env.trading_env import EnvConfig
from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.market.split import DEFAULT_SALT
from kalshi_pipeline.training.config import (
    ALGORITHMS,
    PROFILES,
    TrainingConfig,
    profile,
    read_hyperparameters,
)
from kalshi_pipeline.training.config_checks import (
    ALGORITHM_RANGES,
    COUNT,
    FRACTION,
    POSITIVE,
    TIMESTEPS,
    TRAINING_RANGES,
    InvalidConfig,
    Range,
    check_layers,
)
from kalshi_pipeline.training.evaluation import round_trip_fees_cents
from kalshi_pipeline.training.execution_choice import ExecutionChoice

# The round trip's fees of one default order at 50 cents, where they are highest: a
# market whose spread is wider costs more to cross than the fees at every price, so it is
# not liquid enough to trade by the report's measure (round_trip_fees_cents).
TIGHT_SPREAD_CENTS = round_trip_fees_cents(50, EnvConfig().order_size)
PROFILE_UNSET = "(default: the profile's)"


@dataclass(frozen=True, kw_only=True)
class SplitConfig:
    """How markets are split between training, validation and holdout
    (:mod:`kalshi_pipeline.market.split`), and which sessions are kept for the
    walk-forward evaluation. Validation picks among training's best checkpoints and seed
    candidates; the holdout and the walk-forward sessions are read only by the report
    (and the holdout by the promotion check)."""

    holdout_fraction: float = described(
        0.2, "share of markets held out for evaluation", values=Values.FRACTION
    )
    validation_fraction: float = described(
        0.2,
        "share of the other markets that pick each phase's best checkpoint",
        values=Values.FRACTION,
    )
    salt: str = described(DEFAULT_SALT, "markets hash with this salt", flag="--split-salt")
    # The latest sessions, kept out of training and validation for the walk-forward
    # evaluation (only while an earlier session is left to train on).
    walk_forward_sessions: int = described(
        1,
        "latest sessions kept out of training for the walk-forward evaluation",
        values=Values.NON_NEGATIVE_INT,
    )
    # Tight markets (their views' average spread under ``tight_spread_cents``) and wide
    # ones each validate at least this many markets, while as many are left to train on:
    # a signal that pays on tight markets only shows beyond noise on validation only if
    # validation holds enough of them (workflow.describe_split, docs/training.md).
    min_validation_per_kind: int = described(
        4,
        "minimum validation markets of each kind, tight and wide spread (at most half of a "
        "kind; 0: off)",
        values=Values.NON_NEGATIVE_INT,
    )
    tight_spread_cents: float = described(
        TIGHT_SPREAD_CENTS,
        "a market is of tight spread when its views' mean average spread (cents; "
        "walk-forward sessions excepted) is under this",
        values=Values.POSITIVE_FLOAT,
    )

    def __post_init__(self) -> None:
        _check_set(self, _SPLIT_RANGES, "split")

    def to_json(self) -> dict:
        return flat_to_json(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return flat_from_json(cls, data)


# The ranges (training.config_checks, the one place they are written) of SplitConfig's
# numbers, and of TrainingChoice's where set: those of the training config's fields
# (net_arch's: check_layers). The command line takes the same ranges by each field's kind
# of values (config_checks.VALUE_RANGES).
_SPLIT_RANGES: dict[str, Range] = {
    "holdout_fraction": FRACTION,
    "validation_fraction": FRACTION,
    "walk_forward_sessions": TIMESTEPS,
    "min_validation_per_kind": TIMESTEPS,
    "tight_spread_cents": POSITIVE,
}
_CHOICE_RANGES: dict[str, Range] = {
    "timesteps_per_phase": COUNT,
    "seed": TRAINING_RANGES["seed"],
    "learning_rate": ALGORITHM_RANGES["learning_rate"],
    "gamma": ALGORITHM_RANGES["gamma"],
    "n_envs": TRAINING_RANGES["n_envs"],
    "checkpoint_every": TRAINING_RANGES["checkpoint_every"],
    "validate_every": TRAINING_RANGES["validate_every"],
    "candidates": TRAINING_RANGES["candidates"],
}


def _check_set(record: object, ranges: dict[str, Range], what: str = "training") -> None:
    """Raise :class:`InvalidConfig` naming the first set field of ``record`` out of range."""
    for name, valid in ranges.items():
        value = getattr(record, name)
        if value is not None and not valid.accepts(value):
            raise InvalidConfig(f"{what} {name} must be {valid.describe()}, got {value!r}")


def _unset(help: str, values: Values = Values.TEXT, **options) -> object:
    """A training field that is ``None`` (the profile's value) unless set."""
    return described(None, f"{help} {PROFILE_UNSET}", values=values, **options)


@dataclass(frozen=True, kw_only=True)
class TrainingChoice:
    """A named training profile and what is changed from it (``None``: the profile's).

    ``timesteps_per_phase`` sets all three phases' budgets; the hyperparameters
    (``learning_rate``, ``gamma``, ``net_arch``) change the profile's PPO/A2C settings;
    ``validate_every`` is the timesteps between evaluations on the validation views (0: at
    every checkpoint); ``candidates`` is how many seeds each phase trains (from ``seed``
    on), the best on the validation views kept
    (:mod:`kalshi_pipeline.training.candidates`).
    """

    profile: str = described(
        "default",
        "default learns, demo is the demo's, smoke is quick, plan is the plan's PPO",
        choices=sorted(PROFILES),
    )
    timesteps_per_phase: int | None = _unset(
        "timesteps of each phase", Values.POSITIVE_INT, flag="--timesteps"
    )
    algorithm: str | None = _unset("ppo or a2c", choices=ALGORITHMS)
    seed: int | None = _unset("training seed", Values.SEED)
    learning_rate: float | None = _unset("learning rate", Values.UNIT_OPEN_LOW)
    gamma: float | None = _unset("discount factor", Values.UNIT_OPEN_LOW)
    n_envs: int | None = _unset("environments per rollout", Values.POSITIVE_INT)
    net_arch: tuple[int, ...] | None = _unset(
        "hidden layer sizes, e.g. 64 64", Values.POSITIVE_INTS
    )
    checkpoint_every: int | None = _unset("timesteps between checkpoints", Values.POSITIVE_INT)
    validate_every: int | None = _unset(
        "timesteps between evaluations on the validation markets (0: every checkpoint)",
        Values.NON_NEGATIVE_INT,
    )
    candidates: int | None = _unset(
        "seeds per phase, the best on validation kept", Values.POSITIVE_INT
    )
    # A file of ``kalshi-pipeline tune``: its hyperparameters replace the profile's (the
    # fields above still change them).
    hyperparams: str | None = described(
        None,
        "hyperparameters found by kalshi-pipeline tune (the flags above change them)",
        metavar="FILE",
    )

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise InvalidConfig(f"profile {self.profile!r} is not one of {sorted(PROFILES)}")
        _check_set(self, _CHOICE_RANGES)
        if self.net_arch is not None:
            check_layers(self.net_arch, "training net_arch")
        # The rest (ranges that depend on the profile, the hyperparameter file) when resolved.

    def resolve(self, env: EnvConfig | None = None) -> TrainingConfig:
        """The profile with the set fields changed (and ``env``, if given). A value out of
        its range, alone or with the profile's (e.g. a seed whose last candidate's seed is
        too large), raises :class:`~kalshi_pipeline.training.config_checks.InvalidConfig`
        naming the key (and the hyperparameter file, for its values)."""
        base = PROFILES[self.profile]
        hyper = {
            name: value
            for name in ("learning_rate", "gamma", "net_arch")
            if (value := getattr(self, name)) is not None
        }
        changes = {
            name: value
            for name in ("n_envs", "checkpoint_every", "validate_every", "candidates")
            if (value := getattr(self, name)) is not None
        }
        tuned = read_hyperparameters(self.hyperparams) if self.hyperparams else None
        if hyper or tuned:
            changes["hyperparameters"] = replace(tuned or base.hyperparameters, **hyper)
        if env is not None:
            changes["env"] = env
        try:
            return profile(
                self.profile,
                timesteps_per_phase=self.timesteps_per_phase,
                algorithm=self.algorithm,
                seed=self.seed,
                **changes,
            )
        except InvalidConfig as error:
            raise InvalidConfig(f"training {error}") from None

    def to_json(self) -> dict:
        return flat_to_json(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return flat_from_json(cls, data)


@dataclass(frozen=True, kw_only=True)
class PipelineConfig:
    """Everything a training run is configured by: filters, split, training, env
    (``None``: the profile's) and the execution settings.

    The execution settings are an :class:`ExecutionChoice` of their own, not a field of
    ``env``: it holds only the settings given (the command line's execution flags,
    Dagster's), each changing the env config the run trains with (``env``, else the
    profile's), so that a default config resolves to exactly the training config it did
    before these settings existed, and a model evaluated with a choice is evaluated in its
    own env config (its lineage's) with only the given settings changed. Their defaults
    and help are EnvConfig's, written once there."""

    filters: FilterConfig = field(default_factory=FilterConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    training: TrainingChoice = field(default_factory=TrainingChoice)
    env: EnvConfig | None = None
    execution: ExecutionChoice = field(default_factory=ExecutionChoice)

    def training_config(self) -> TrainingConfig:
        """The training config: the profile with the training choice's changes, ``env``
        (when given), and the execution settings given on top."""
        resolved = self.training.resolve(self.env)
        env = self.execution.apply(resolved.env)
        return resolved if env is resolved.env else replace(resolved, env=env)

    def to_json(self) -> dict:
        return {
            "filters": self.filters.to_json(),
            "split": self.split.to_json(),
            "training": self.training.to_json(),
            "env": None if self.env is None else flat_to_json(self.env),
            "execution": self.execution.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        env = data.get("env")
        return cls(
            filters=FilterConfig.from_json(data["filters"]),
            split=SplitConfig.from_json(data["split"]),
            training=TrainingChoice.from_json(data["training"]),
            env=None if env is None else EnvConfig.from_json(env),
            # A config written before the execution settings: none given.
            execution=ExecutionChoice.from_json(data.get("execution", {})),
        )


# The demo: the whole graph in a few minutes on two cores, training the `demo` profile (the
# `default` profile on a smaller budget, training/config.py) on the demo's store
# (sources.simulator_config.DEMO_SIMULATOR), where that budget is enough to learn.
DEMO = PipelineConfig(training=TrainingChoice(profile="demo"))


@dataclass(frozen=True, kw_only=True)
class TuningChoice:
    """A tuning study (:mod:`kalshi_pipeline.training.tuning`): its name, the trials this
    process runs, where the study is kept (``None``: a journal file in the pipeline home)
    and the training each trial runs (a profile, its budget, one seed)."""

    study: str = described("default", "the study's name")
    trials: int = described(
        10, "trials this process runs (added to the study's)", values=Values.POSITIVE_INT
    )
    storage: str | None = described(
        None,
        "Optuna storage shared by several processes, e.g. postgresql://USER@HOST/DB "
        "(default: a journal file in the home's artifacts/tuning/)",
        metavar="URL",
    )
    profile: str = described(
        "default", "the profile whose hyperparameters are searched around", choices=sorted(PROFILES)
    )
    timesteps_per_phase: int | None = _unset(
        "timesteps of each phase", Values.POSITIVE_INT, flag="--timesteps"
    )
    seed: int = described(0, "training and sampler seed", values=Values.SEED)

    def __post_init__(self) -> None:
        ranges = {"trials": COUNT} | {k: _CHOICE_RANGES[k] for k in ("timesteps_per_phase", "seed")}
        _check_set(self, ranges, "tuning")
        if not self.study or "/" in self.study:
            raise ValueError(f"a study name is a plain non-empty name, got {self.study!r}")

    def pipeline(self, base: PipelineConfig | None = None) -> PipelineConfig:
        training = TrainingChoice(
            profile=self.profile, timesteps_per_phase=self.timesteps_per_phase, seed=self.seed
        )
        return replace(base or PipelineConfig(), training=training)

    def to_json(self) -> dict:
        return flat_to_json(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return flat_from_json(cls, data)
