"""The pipeline's configuration: keyword-only records that round-trip through JSON, and
one description per field that both front ends use (the execution settings' being the env
config's own)."""

from __future__ import annotations

import dataclasses
import json
import re

import pydantic
import pytest

from kalshi_pipeline.config_fields import CHOICES, METAVAR, VALUES, Values, flag_of, help_of
from kalshi_pipeline.defs.config import (
    ExecutionSettings,
    FilterSettings,
    SplitSettings,
    TrainingSettings,
    TuningSettings,
    run_config,
    training_of,
)
from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.pipeline_config import (
    DEMO,
    ExecutionChoice,
    PipelineConfig,
    SplitConfig,
    TrainingChoice,
    TuningChoice,
)
from kalshi_pipeline.training.config import PROFILES
from kalshi_pipeline.training.config_checks import InvalidConfig

CHANGED = PipelineConfig(
    filters=FilterConfig(min_episode_length=20, min_coverage=0.2, min_data_quality=0.7),
    split=SplitConfig(holdout_fraction=0.3, salt="s", walk_forward_sessions=2),
    training=TrainingChoice(profile="smoke", seed=3, net_arch=(32, 16), hyperparams="h.json"),
    env=EnvConfig(order_size=5),
    execution=ExecutionChoice(
        execution="maker", latency_ms=500, queue_model="log_prob",
        series_fees=("KXBTC:quadratic", "KXETH:quadratic_with_maker_fees:0.5"),
    ),
)  # fmt: skip


@pytest.mark.parametrize(
    "record",
    [
        PipelineConfig(),
        DEMO,
        CHANGED,
        CHANGED.filters,
        CHANGED.split,
        CHANGED.training,
        CHANGED.execution,
        ExecutionChoice(),
        TuningChoice(study="s", trials=3, storage="postgresql://h/db", timesteps_per_phase=64),
    ],
)
def test_a_config_round_trips_through_json(record):
    data = json.loads(json.dumps(record.to_json()))

    assert type(record).from_json(data) == record


@pytest.mark.parametrize(
    "record", [FilterConfig, SplitConfig, TrainingChoice, TuningChoice, ExecutionChoice]
)
def test_configs_are_keyword_only_and_every_field_is_described(record):
    first = dataclasses.fields(record)[0]
    with pytest.raises(TypeError):
        record(getattr(record(), first.name))
    for field in dataclasses.fields(record):
        assert help_of(field), field.name
        assert isinstance(field.metadata["values"], Values)
        assert flag_of(field).startswith("--")


@pytest.mark.parametrize(
    ("settings", "records"),
    [
        (FilterSettings, [FilterConfig]),
        (SplitSettings, [SplitConfig]),
        (TrainingSettings, [TrainingChoice, ExecutionChoice]),
        (TuningSettings, [TuningChoice, ExecutionChoice]),
        (ExecutionSettings, [ExecutionChoice]),
    ],
)
def test_dagsters_run_config_describes_each_field_with_its_help(settings, records):
    described = {name: info.description for name, info in settings.model_fields.items()}

    assert described == {f.name: help_of(f) for r in records for f in dataclasses.fields(r)}
    assert list(described) == [f.name for r in records for f in dataclasses.fields(r)]


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


# -- the execution settings -------------------------------------------------------------------
ENV_DEFAULTS = EnvConfig()


def test_the_execution_settings_are_the_env_configs_described_fields_unset_by_default():
    """One field per execution setting of EnvConfig (its described fields), with its
    help, its default named there, its values, choices and metavar: written once."""
    env_fields = {f.name: f for f in dataclasses.fields(EnvConfig) if help_of(f)}
    choice_fields = dataclasses.fields(ExecutionChoice)

    assert [f.name for f in choice_fields] == list(env_fields)
    assert list(env_fields)[0] == "execution" and list(env_fields)[-1] == "series_fees"
    for field in choice_fields:
        env_field = env_fields[field.name]
        assert field.default is None
        assert help_of(field).startswith(help_of(env_field))
        for key in (VALUES, CHOICES, METAVAR):
            assert field.metadata.get(key) == env_field.metadata.get(key), (field.name, key)
    helps = {f.name: help_of(f) for f in choice_fields}
    assert helps["execution"].endswith("(default: taker)")
    assert helps["latency_ms"].endswith("(default: 100)")
    assert helps["series_fees"].endswith("(default: none)")
    assert "(default: None)" not in helps["cancel_latency_ms"]


def test_a_default_pipeline_config_trains_exactly_the_profile():
    assert PipelineConfig().training_config() == PROFILES["default"]
    assert DEMO.training_config() == PROFILES["demo"]
    assert ExecutionChoice().apply(ENV_DEFAULTS) is ENV_DEFAULTS


def test_the_execution_settings_given_change_only_those_of_the_env():
    config = PipelineConfig(
        training=TrainingChoice(profile="smoke"),
        env=EnvConfig(order_size=5, latency_ms=300),
        execution=ExecutionChoice(execution="maker", queue_model="power_prob", queue_power=3.0),
    )

    resolved = config.training_config()

    assert resolved.env == EnvConfig(
        order_size=5, latency_ms=300, execution="maker", queue_model="power_prob", queue_power=3.0
    )
    assert dataclasses.replace(resolved, env=PROFILES["smoke"].env) == PROFILES["smoke"]
    # Without an env config, the profile's is the base.
    alone = dataclasses.replace(config, env=None).training_config().env
    assert alone == EnvConfig(execution="maker", queue_model="power_prob", queue_power=3.0)


def test_a_pipeline_config_written_before_the_execution_settings_reads_with_none_set():
    data = json.loads(json.dumps(CHANGED.to_json()))
    del data["execution"]

    assert PipelineConfig.from_json(data) == dataclasses.replace(
        CHANGED, execution=ExecutionChoice()
    )


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"execution": "fast"}, "execution setting execution must be one of ['taker', 'maker']"),
        ({"latency_ms": -1}, "execution setting latency_ms must be a whole number of at least 0"),
        ({"order_expiry_steps": 0}, "execution setting order_expiry_steps must be a whole"),
        ({"latency_sigma": float("nan")}, "execution setting latency_sigma must be a finite"),
        ({"latency_sigma": 200.0}, "execution setting latency_sigma must be in (0, 10]"),
        ({"queue_model": "fifo"}, "execution setting queue_model must be one of"),
        ({"fee_multiplier": 0.0}, "execution setting fee_multiplier must be a finite number above"),
        ({"series_fees": ["KXBTC:flat"]}, "execution setting series_fees: unknown fee type 'flat'"),
        ({"series_fees": ["KXBTC"]}, "execution setting series_fees: malformed series fee entry"),
        (
            {"series_fees": ["KXBTC:quadratic", "KXBTC:quadratic"]},
            "execution setting series_fees: series 'KXBTC' is named twice",
        ),
    ],
)
def test_an_execution_setting_out_of_range_is_refused_by_key_in_both_front_ends(settings, named):
    with pytest.raises(pydantic.ValidationError, match=re.escape(named)):
        ExecutionSettings(**settings)
    as_tuples = {k: tuple(v) if isinstance(v, list) else v for k, v in settings.items()}
    with pytest.raises(InvalidConfig, match=re.escape(named)):
        ExecutionChoice(**as_tuples)


def test_dagsters_execution_settings_reach_the_training_config_and_round_trip():
    """Beside a profile in the run config (plain values, as the launchpad writes them),
    the execution settings make the training config's env; ``run_config`` writes a
    pipeline config's back, and both say the same."""
    settings = TrainingSettings(
        profile="smoke", execution="maker", latency_ms=500, series_fees=["KXBTC:quadratic"]
    )

    assert settings.to_domain() == TrainingChoice(profile="smoke")
    execution = settings.domain_of(ExecutionChoice)
    assert execution == ExecutionChoice(
        execution="maker", latency_ms=500, series_fees=("KXBTC:quadratic",)
    )
    config = PipelineConfig(training=TrainingChoice(profile="smoke"), execution=execution)
    assert training_of(settings) == config.training_config()
    assert training_of(settings).env == EnvConfig(
        execution="maker", latency_ms=500, series_fees=("KXBTC:quadratic",)
    )
    written = run_config(config).ops["phase1_model"]
    assert written.domain_of(ExecutionChoice) == execution
    assert written.to_domain() == config.training
    assert ExecutionSettings(**execution.to_json()).to_domain() == execution
    # Unset, they leave the profile's env config as it is.
    assert training_of(TrainingSettings(profile="smoke")) == PROFILES["smoke"]
