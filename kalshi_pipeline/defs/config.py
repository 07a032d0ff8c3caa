"""Run configuration of the assets (Dagster ``Config``), made from the pipeline's dataclasses.

Each class has exactly the fields, defaults and descriptions (each field's help, the
command line's too) of its dataclass in :mod:`kalshi_pipeline.pipeline_config` (or
:class:`~kalshi_pipeline.market.difficulty.FilterConfig`), so a default is written once;
``None`` means "the profile's value" here too, and a tuple field is a list in the
launchpad. ``to_domain()`` gives the dataclass back. The dataclass checks its values
when settings are made (a step's start, or :func:`run_config`): a value out of its
range (a NaN learning rate, a seed above 2**32 - 1, ...) fails there, naming its key,
before any work.

The execution settings (:class:`~kalshi_pipeline.pipeline_config.ExecutionChoice`:
taker or maker, latency, queue model, fees; unset: the profile's env config) sit beside
the training's and the tuning's own fields, flat in the same config
(``TrainingSettings``, ``TuningSettings``; ``ExecutionSettings`` alone holds just
them): a run config without them is what it was, and ``execution: maker`` next to
``profile`` trains a maker. ``domain_of(ExecutionChoice)`` gives them back, and
:func:`training_of` the training config the two resolve to.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Sequence

import dagster as dg
import pydantic

from kalshi_pipeline.config_fields import help_of
from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.pipeline_config import (
    ExecutionChoice,
    PipelineConfig,
    SplitConfig,
    TrainingChoice,
    TuningChoice,
)
from kalshi_pipeline.training.config import TrainingConfig


def _launchpad_type(hint):
    """The type Dagster's config system shows for a dataclass field's type."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        (inner,) = [arg for arg in typing.get_args(hint) if arg is not type(None)]
        return _launchpad_type(inner) | None
    if typing.get_origin(hint) is tuple:
        return list[typing.get_args(hint)[0]]
    return hint


def _fields_of(domain: type) -> dict:
    """pydantic's field definitions of the dataclass ``domain``'s fields."""
    hints = typing.get_type_hints(domain)
    return {
        f.name: (
            _launchpad_type(hints[f.name]),
            pydantic.Field(default=f.default, description=help_of(f)),
        )
        for f in dataclasses.fields(domain)
    }


def config_of(domain: type, name: str, doc: str, *, beside: Sequence[type] = ()) -> type[dg.Config]:
    """A Dagster ``Config`` class with the fields and defaults of the dataclass ``domain``,
    and those of each dataclass ``beside`` it, flat (no name may repeat). ``to_domain()``
    gives ``domain`` back, ``domain_of(cls)`` any of them."""
    domains = (domain, *beside)
    fields: dict = {}
    for each in domains:
        own = _fields_of(each)
        if repeated := fields.keys() & own.keys():
            raise ValueError(f"{name}: fields {sorted(repeated)} repeat")
        fields |= own

    def domain_of(self, wanted: type):
        if wanted not in domains:
            raise KeyError(f"{name} has no fields of {wanted.__name__}")
        names = {f.name for f in dataclasses.fields(wanted)}
        values = {
            key: tuple(value) if isinstance(value, list) else value
            for key, value in self.model_dump().items()
            if key in names
        }
        return wanted(**values)

    def check(self):
        for each in domains:
            self.domain_of(each)  # the dataclass's own checks: a ValueError naming the key
        return self

    validators = {"check": pydantic.model_validator(mode="after")(check)}
    config = pydantic.create_model(
        name, __base__=dg.Config, __module__=__name__, __validators__=validators, **fields
    )
    config.__doc__ = doc
    config.domain_of = domain_of
    config.to_domain = lambda self: self.domain_of(domain)
    return config


FilterSettings = config_of(
    FilterConfig,
    "FilterSettings",
    "Which views are fit for training (the asset checks report against these).",
)
SplitSettings = config_of(
    SplitConfig, "SplitSettings", "How markets are split between training, validation and holdout."
)
ExecutionSettings = config_of(
    ExecutionChoice,
    "ExecutionSettings",
    "How orders meet the book: taker or maker, and a maker's order expiry, latencies, "
    "queue model, and the fees (unset: the profile's env config, a taker).",
)
TrainingSettings = config_of(
    TrainingChoice,
    "TrainingSettings",
    'A training profile ("default" learns, "plan" is the plan\'s PPO, "demo" is the demo\'s, '
    '"smoke" is quick) and what is changed from it: timesteps, algorithm, seed, learning '
    "rate, gamma, n_envs, "
    "net_arch, checkpoints, validations (unset: the profile's); and the execution "
    "settings (taker or maker, latency, queue model, fees; unset: the profile's).",
    beside=(ExecutionChoice,),
)

TuningSettings = config_of(
    TuningChoice,
    "TuningSettings",
    "An Optuna study: its name, the trials this run adds, its storage (unset: a journal "
    "file in the pipeline home; a PostgreSQL URL to share it between processes) and each "
    "trial's training (profile, timesteps per phase, seed, execution settings).",
    beside=(ExecutionChoice,),
)


def training_of(settings) -> TrainingConfig:
    """The training config of a ``TrainingSettings``: its profile and changes, with its
    execution settings (as :meth:`PipelineConfig.training_config` resolves them)."""
    execution = settings.domain_of(ExecutionChoice)
    return PipelineConfig(training=settings.to_domain(), execution=execution).training_config()


def tuning_pipeline(settings) -> PipelineConfig:
    """The pipeline config a ``TuningSettings``' trials train with."""
    return settings.to_domain().pipeline(
        PipelineConfig(execution=settings.domain_of(ExecutionChoice))
    )


def _as_launchpad(record) -> dict:
    """A dataclass's fields as run config values (a tuple as a list)."""
    return {
        k: list(v) if isinstance(v, tuple) else v for k, v in dataclasses.asdict(record).items()
    }


def run_config(config: PipelineConfig) -> dg.RunConfig:
    """The ``train_and_evaluate`` run config that sets ``config`` on every asset using it
    (its ``env``, which the run config has no fields for, excepted)."""
    filters = FilterSettings(**dataclasses.asdict(config.filters))
    split = SplitSettings(**dataclasses.asdict(config.split))
    training = TrainingSettings(**_as_launchpad(config.training), **_as_launchpad(config.execution))
    ops = {"difficulty_scores": filters, "train_holdout_split": split}
    ops.update({name: training for name in TRAINING_CONFIGURED})
    return dg.RunConfig(ops=ops)


TRAINING_CONFIGURED = ("phase1_model", "phase2_model", "phase3_model", "evaluation_report")
