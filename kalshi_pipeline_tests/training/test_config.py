"""The training configuration: the plan's defaults, the smoke and demo profiles, JSON, the
range of every setting, and budgets in whole rollouts."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest

from kalshi_pipeline.env import EnvConfig
from kalshi_pipeline.training.config import (
    PROFILES,
    AlgorithmConfig,
    TrainingConfig,
    profile,
    read_hyperparameters,
)
from kalshi_pipeline.training.config_checks import MAX_ROLLOUT, MAX_SEED, InvalidConfig


def test_the_default_config_is_the_plans_ppo():
    config = TrainingConfig()

    assert config.algorithm == "ppo"
    h = config.hyperparameters
    assert h.learning_rate == 3e-4
    assert h.n_steps == 2048
    assert h.batch_size == 64
    assert h.n_epochs == 10
    assert h.gamma == 0.99
    assert h.gae_lambda == 0.95
    assert h.clip_range == 0.2
    assert PROFILES["plan"] == config


def test_the_default_profile_starts_near_hold_on_several_envs():
    default = PROFILES["default"]

    assert default.n_envs > 1 and not default.subprocess_envs
    assert default.candidates >= 3  # seeds per phase, the best on validation kept
    start = default.hyperparameters.initial_action_probabilities
    assert start[0] == max(start) and sum(start) == pytest.approx(1)
    assert start[2] < start[1] and start[4] < start[3]  # exits rarer than entries


@pytest.mark.parametrize(
    "probabilities", [(0.5, 0.5), (0.9, 0.1, 0.0, 0.0, 0.0), (0.5, 0.2, 0.2, 0.2, 0.2)]
)
def test_initial_action_probabilities_must_be_a_distribution_over_the_actions(probabilities):
    with pytest.raises(ValueError, match="initial_action_probabilities"):
        AlgorithmConfig(initial_action_probabilities=probabilities)


def test_the_smoke_profile_trains_on_much_smaller_budgets():
    default, smoke = PROFILES["default"], profile("smoke")

    assert smoke.algorithm == "ppo"
    for phase in (1, 2, 3):
        assert 0 < smoke.phase_timesteps(phase) <= default.phase_timesteps(phase) / 5
    assert smoke.checkpoint_every < default.checkpoint_every
    assert smoke.hyperparameters.n_steps < default.hyperparameters.n_steps
    # A checkpoint lands on a rollout boundary, so a resumed run ends on its budget exactly.
    assert smoke.checkpoint_every % (smoke.hyperparameters.n_steps * smoke.n_envs) == 0
    assert smoke.phase1_timesteps % smoke.checkpoint_every == 0


def test_the_demo_profile_is_default_on_a_smaller_budget_put_first():
    """What the demo trains is what the pipeline trains (the same PPO settings, selection on
    validation), with one seed and a third of one phase's budget, most of it in phase 1."""
    default, demo = PROFILES["default"], PROFILES["demo"]

    assert demo.hyperparameters == default.hyperparameters and demo.n_envs == default.n_envs
    assert demo.candidates == 1 and demo.checkpoint_every == default.checkpoint_every
    budgets = [demo.phase_timesteps(phase) for phase in (1, 2, 3)]
    assert sum(budgets) <= default.phase1_timesteps
    assert budgets[0] > budgets[1] == budgets[2] > 0


def test_profile_changes_only_the_fields_asked_for():
    small = profile("smoke", phase1_timesteps=1024, seed=7)

    assert (small.phase1_timesteps, small.seed) == (1024, 7)
    assert small.phase2_timesteps == PROFILES["smoke"].phase2_timesteps
    assert small.hyperparameters == PROFILES["smoke"].hyperparameters
    assert PROFILES["smoke"].phase1_timesteps != 1024  # the profile itself is untouched
    assert [small.phase_timesteps(p) for p in (1, 2, 3)] == [
        1024,
        small.phase2_timesteps,
        small.phase3_timesteps,
    ]


def test_a2c_is_accepted_and_an_unknown_algorithm_refused():
    assert TrainingConfig(algorithm="a2c").algorithm == "a2c"
    with pytest.raises(ValueError, match="'dqn'"):
        TrainingConfig(algorithm="dqn")
    with pytest.raises(ValueError, match="'sac'"):
        profile("smoke", algorithm="sac")
    with pytest.raises(KeyError):
        profile("no-such-profile")


def test_to_dict_is_json_and_keeps_every_setting():
    config = profile(
        "smoke", algorithm="a2c", seed=3, hyperparameters=AlgorithmConfig(net_arch=(32, 16))
    )

    data = json.loads(json.dumps(config.to_dict()))

    assert data["algorithm"] == "a2c"
    assert data["seed"] == 3
    assert data["phase1_timesteps"] == config.phase1_timesteps
    assert data["hyperparameters"]["learning_rate"] == 3e-4
    assert data["hyperparameters"]["net_arch"] == [32, 16]
    assert data["env"]["starting_cash_cents"] == config.env.starting_cash_cents


def test_profile_overrides_set_every_phase_and_keep_the_rest():
    config = profile("smoke", timesteps_per_phase=4096, algorithm="a2c", seed=7)
    assert [config.phase_timesteps(p) for p in (1, 2, 3)] == [4096, 4096, 4096]
    assert (config.algorithm, config.seed) == ("a2c", 7)
    assert config.hyperparameters == PROFILES["smoke"].hyperparameters
    # None keeps the profile's value.
    assert profile("smoke", timesteps_per_phase=None, seed=None) == PROFILES["smoke"]


def test_configs_survive_a_json_round_trip():
    for config in PROFILES.values():
        data = json.loads(json.dumps(config.to_json()))
        assert TrainingConfig.from_json(data) == config
        assert AlgorithmConfig.from_json(data["hyperparameters"]) == config.hyperparameters
    # As recorded in a lineage: tuples as lists, the same as to_dict through JSON.
    assert PROFILES["smoke"].to_json() == json.loads(json.dumps(PROFILES["smoke"].to_dict()))
    # The env's execution settings too, its series fees (a tuple) back from a list.
    maker = EnvConfig(execution="maker", latency_ms=250, series_fees=("KXBTC:quadratic",))
    config = replace(PROFILES["smoke"], env=maker)
    data = json.loads(json.dumps(config.to_json()))
    assert data["env"]["series_fees"] == ["KXBTC:quadratic"]
    assert TrainingConfig.from_json(data) == config


# -- every setting in its range, named by its key, before any training -----------------------
@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("learning_rate", float("nan")),
        ("learning_rate", -3e-4),
        ("learning_rate", "3e-4"),
        ("learning_rate", 1e30),
        ("learning_rate", float("inf")),
        ("batch_size", 0),
        ("batch_size", 1),  # SB3's PPO normalises advantages within a mini-batch
        ("n_steps", 0),
        ("n_steps", 512.0),
        ("n_steps", 10**12),  # a rollout buffer of petabytes, out of memory mid-run
        ("batch_size", 2**40),
        ("n_epochs", True),
        ("n_epochs", 10**9),
        ("gamma", 2.0),
        ("gamma", 0.0),
        ("gae_lambda", 1.5),
        ("clip_range", 0.0),
        ("ent_coef", -0.01),
        ("ent_coef", float("nan")),
        ("net_arch", (64, 0)),
        ("net_arch", ()),
        ("net_arch", (10**6,)),
        ("initial_action_probabilities", (float("nan"), 0.25, 0.25, 0.25, 0.25)),
    ],
)
def test_a_hyperparameter_out_of_its_range_is_refused_naming_its_key(key, value):
    with pytest.raises(InvalidConfig, match=f"^{key} must be"):
        AlgorithmConfig(**{key: value})


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("seed", 2**32),
        ("seed", -1),
        ("n_envs", 0),
        ("phase1_timesteps", -1),
        ("checkpoint_every", 0),
        ("candidates", 0),
        ("torch_threads", 0),
        ("struggle_fraction", 1.5),
        ("struggle_weight", float("inf")),
        ("curriculum_stages", 0),
    ],
)
def test_a_training_setting_out_of_its_range_is_refused_naming_its_key(key, value):
    with pytest.raises(InvalidConfig, match=f"^{key} must be"):
        profile("smoke", **{key: value})


def test_the_last_candidates_seed_must_be_a_32_bit_seed_too():
    assert profile("smoke", seed=MAX_SEED, candidates=1).seed == 2**32 - 1
    with pytest.raises(InvalidConfig, match="seeds up to 4294967296, above the largest seed"):
        profile("smoke", seed=MAX_SEED - 1, candidates=3)


def test_a_rollout_too_large_for_the_machine_is_refused_naming_both_factors():
    steps = AlgorithmConfig(n_steps=2**20)
    assert TrainingConfig(hyperparameters=steps, n_envs=2).rollout_timesteps == MAX_ROLLOUT
    with pytest.raises(InvalidConfig, match=r"n_steps x n_envs = 1048576 x 3 timesteps is above"):
        TrainingConfig(hyperparameters=steps, n_envs=3)


def test_ppo_needs_two_timesteps_per_rollout():
    one = AlgorithmConfig(n_steps=1, batch_size=2)
    with pytest.raises(InvalidConfig, match="n_steps x n_envs of 2 or more"):
        TrainingConfig(hyperparameters=one, n_envs=1)
    assert TrainingConfig(hyperparameters=one, n_envs=2).rollout_timesteps == 2


@pytest.mark.parametrize(
    ("recorded", "named"),
    [
        (
            {"learning_rate": float("nan")},
            "learning_rate must be a finite number in (0, 1], got nan",
        ),
        ({"learning_rate": "abc"}, "learning_rate must be a finite number in (0, 1], got 'abc'"),
        ({"batch_size": 0}, "batch_size must be a whole number in [2, 2097152], got 0"),
        ({"gamma": 2.0}, "gamma must be a finite number in (0, 1], got 2.0"),
        (
            {"net_arch": 64},
            "net_arch must be 1 to 8 layer sizes, each a whole number in [1, 4096], got 64",
        ),
    ],
)
def test_a_hyperparameter_file_names_itself_and_the_key(recorded, named, tmp_path):
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"hyperparameters": recorded}))  # NaN as JSON's NaN

    with pytest.raises(InvalidConfig) as refused:
        read_hyperparameters(path)

    assert str(refused.value) == f"hyperparameter file {path}: {named}"


# -- the budget in whole rollouts ------------------------------------------------------------
def test_a_budget_rounds_up_to_whole_rollouts_and_says_so():
    config = profile("smoke", timesteps_per_phase=256, n_envs=1000)  # rollouts of 256 steps

    assert config.rollout_timesteps == 256_000
    assert [config.trained_timesteps(p) for p in (1, 2, 3)] == [256_000] * 3
    assert config.budget_note().startswith(
        "each phase trains 256,000 timesteps, not its budget of 256: budgets round up to "
        "whole rollouts of 256,000 timesteps (1000 envs x 256 steps)"
    )
    uneven = profile("smoke", phase1_timesteps=2048, phase2_timesteps=3000, phase3_timesteps=0)
    assert [uneven.trained_timesteps(p) for p in (1, 2, 3)] == [2048, 4096, 0]
    assert uneven.budget_note().startswith(
        "phase 2 trains 4,096 timesteps, not its budget of 3,000: budgets round up"
    )
    assert PROFILES["smoke"].budget_note() is None  # 10 rollouts of 8 envs x 256 steps
