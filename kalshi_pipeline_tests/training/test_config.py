"""The training configuration: the plan's defaults, the smoke and demo profiles, JSON."""

from __future__ import annotations

import json

import pytest

from kalshi_pipeline.training.config import PROFILES, AlgorithmConfig, TrainingConfig, profile


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
