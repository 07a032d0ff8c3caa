"""Run configuration of the assets (Dagster ``Config``), made from the pipeline's dataclasses.

Each class has exactly the fields, defaults and descriptions (each field's help, the
command line's too) of its dataclass in :mod:`kalshi_pipeline.pipeline_config` (or
:class:`~kalshi_pipeline.market.difficulty.FilterConfig`), so a default is written once;
``None`` means "the profile's value" here too, and a tuple field is a list in the
launchpad. ``to_domain()`` gives the dataclass back. The dataclass checks its values
when settings are made (a step's start, or :func:`run_config`): a value out of its
range (a NaN learning rate, a seed above 2**32 - 1, ...) fails there, naming its key,
before any work.
"""

from __future__ import annotations

import dataclasses
import types
import typing

import dagster as dg
import pydantic

from kalshi_pipeline.config_fields import help_of
from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.pipeline_config import (
    PipelineConfig,
    SplitConfig,
    TrainingChoice,
    TuningChoice,
)


def _launchpad_type(hint):
    """The type Dagster's config system shows for a dataclass field's type."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _launchpad_type(inner) | None
    if typing.get_origin(hint) is tuple:
        return list[typing.get_args(hint)[0]]
    return hint


def config_of(domain: type, name: str, doc: str) -> type[dg.Config]:
    """A Dagster ``Config`` class with the fields and defaults of the dataclass ``domain``."""
    hints = typing.get_type_hints(domain)
    fields = {
        f.name: (
            _launchpad_type(hints[f.name]),
            pydantic.Field(default=f.default, description=help_of(f)),
        )
        for f in dataclasses.fields(domain)
    }

    def to_domain(self):
        values = {
            name: tuple(value) if isinstance(value, list) else value
            for name, value in self.model_dump().items()
        }
        return domain(**values)

    def check(self):
        self.to_domain()  # the dataclass's own checks: a ValueError naming the key
        return self

    validators = {"check": pydantic.model_validator(mode="after")(check)}
    config = pydantic.create_model(
        name, __base__=dg.Config, __module__=__name__, __validators__=validators, **fields
    )
    config.__doc__ = doc
    config.to_domain = to_domain
    return config


FilterSettings = config_of(
    FilterConfig,
    "FilterSettings",
    "Which views are fit for training (the asset checks report against these).",
)
SplitSettings = config_of(
    SplitConfig, "SplitSettings", "How markets are split between training, validation and holdout."
)
TrainingSettings = config_of(
    TrainingChoice,
    "TrainingSettings",
    'A training profile ("default" learns, "plan" is the plan\'s PPO, "demo" is the demo\'s, '
    '"smoke" is quick) and what is changed from it: timesteps, algorithm, seed, learning '
    "rate, gamma, n_envs, "
    "net_arch, checkpoints, validations (unset: the profile's).",
)

TuningSettings = config_of(
    TuningChoice,
    "TuningSettings",
    "An Optuna study: its name, the trials this run adds, its storage (unset: a journal "
    "file in the pipeline home; a PostgreSQL URL to share it between processes) and each "
    "trial's training (profile, timesteps per phase, seed).",
)


def run_config(config: PipelineConfig) -> dg.RunConfig:
    """The ``train_and_evaluate`` run config that sets ``config`` on every asset using it."""
    filters = FilterSettings(**dataclasses.asdict(config.filters))
    split = SplitSettings(**dataclasses.asdict(config.split))
    training = TrainingSettings(
        **{
            k: list(v) if isinstance(v, tuple) else v
            for k, v in dataclasses.asdict(config.training).items()
        }
    )
    ops = {"difficulty_scores": filters, "train_holdout_split": split}
    ops.update({name: training for name in TRAINING_CONFIGURED})
    return dg.RunConfig(ops=ops)


TRAINING_CONFIGURED = ("phase1_model", "phase2_model", "phase3_model", "evaluation_report")
