"""The pipeline's configuration: keyword-only records that round-trip through JSON, and
one description per field that both front ends use."""

from __future__ import annotations

import dataclasses
import json
import re

import pydantic
import pytest

from kalshi_pipeline.config_fields import Values, flag_of, help_of
from kalshi_pipeline.defs.config import FilterSettings, SplitSettings, TrainingSettings
from kalshi_pipeline.env.trading_env import EnvConfig
from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.pipeline_config import (
    DEMO,
    PipelineConfig,
    SplitConfig,
    TrainingChoice,
    TuningChoice,
)
from kalshi_pipeline.training.config_checks import InvalidConfig

CHANGED = PipelineConfig(
    filters=FilterConfig(min_episode_length=20, min_coverage=0.2, min_data_quality=0.7),
    split=SplitConfig(holdout_fraction=0.3, salt="s", walk_forward_sessions=2),
    training=TrainingChoice(profile="smoke", seed=3, net_arch=(32, 16), hyperparams="h.json"),
    env=EnvConfig(order_size=5),
)


@pytest.mark.parametrize(
    "record",
    [
        PipelineConfig(),
        DEMO,
        CHANGED,
        CHANGED.filters,
        CHANGED.split,
        CHANGED.training,
        TuningChoice(study="s", trials=3, storage="postgresql://h/db", timesteps_per_phase=64),
    ],
)
def test_a_config_round_trips_through_json(record):
    data = json.loads(json.dumps(record.to_json()))

    assert type(record).from_json(data) == record


@pytest.mark.parametrize("record", [FilterConfig, SplitConfig, TrainingChoice, TuningChoice])
def test_configs_are_keyword_only_and_every_field_is_described(record):
    first = dataclasses.fields(record)[0]
    with pytest.raises(TypeError):
        record(getattr(record(), first.name))
    for field in dataclasses.fields(record):
        assert help_of(field), field.name
        assert isinstance(field.metadata["values"], Values)
        assert flag_of(field).startswith("--")


@pytest.mark.parametrize(
    ("settings", "record"),
    [
        (FilterSettings, FilterConfig),
        (SplitSettings, SplitConfig),
        (TrainingSettings, TrainingChoice),
    ],
)
def test_dagsters_run_config_describes_each_field_with_its_help(settings, record):
    described = {name: info.description for name, info in settings.model_fields.items()}

    assert described == {f.name: help_of(f) for f in dataclasses.fields(record)}


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        (
            {"learning_rate": float("nan")},
            "training learning_rate must be a finite number in (0, 1]",
        ),
        ({"gamma": 2.0}, "training gamma must be a finite number in (0, 1]"),
        ({"seed": 2**32}, "training seed must be a whole number in [0, 4294967295]"),
        ({"n_envs": 0}, "training n_envs must be a whole number of at least 1"),
    ],
)
def test_dagsters_training_settings_refuse_a_value_out_of_range_by_key(settings, named):
    with pytest.raises(pydantic.ValidationError, match=re.escape(named)):
        TrainingSettings(**settings)
    with pytest.raises(InvalidConfig, match=re.escape(named)):
        TrainingChoice(**settings)


@pytest.mark.parametrize("net_arch", [(64,) * 9, (5000,)], ids=["9 layers", "5000 units"])
def test_a_net_arch_beyond_the_limits_is_refused_when_set_not_when_resolved(net_arch):
    """Dagster's run config and the command line make a TrainingChoice: it refuses the
    layers that training would, in training's words, before any profile is resolved."""
    named = "training net_arch must be 1 to 8 layer sizes, each a whole number in [1, 4096], got "
    with pytest.raises(pydantic.ValidationError, match=re.escape(named)):
        TrainingSettings(net_arch=list(net_arch))
    with pytest.raises(InvalidConfig, match=re.escape(named)):
        TrainingChoice(net_arch=net_arch)


def test_a_seed_whose_last_candidate_overflows_is_refused_when_resolved():
    choice = TrainingChoice(profile="smoke", seed=2**32 - 1, candidates=2)

    with pytest.raises(InvalidConfig, match="^training seed 4294967295 with 2 candidates"):
        choice.resolve()
