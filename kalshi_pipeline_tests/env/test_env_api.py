"""The environment as Gymnasium and Stable-Baselines3 see it.

Both env checkers (warnings as errors), the Gymnasium registration, the spaces, the view
API (``set_market_view``, ``set_views``, ``set_sampler``, layout checks), rendering, the
class docstring's doctest, and view sampling under SB3's vectorised envs: finished
episodes are reset there by ``reset()`` with no options, so the env's own sampler must
choose the next view, in every worker, with a random stream of its own.
"""

from __future__ import annotations

import doctest
import functools
import json
import multiprocessing
import warnings
from dataclasses import replace

import gymnasium
import numpy as np
import pytest
from gymnasium import spaces
from gymnasium.utils.env_checker import check_env as gymnasium_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv

import kalshi_pipeline.env.trading_env
from kalshi_pipeline.env import (
    BUY_YES,
    ENV_ID,
    HOLD,
    BalancedSampler,
    CurriculumSampler,
    EnvConfig,
    MarketAgnosticKalshiEnv,
    SequentialSampler,
)
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session


@pytest.fixture(scope="module")
def views():
    """Six simulated markets of 9 to 27 steps: short episodes keep vectorised runs quick."""
    config = SimulatorConfig(
        population=Population.TWO_CLASS, markets=6, median_events_per_market=15, events_sigma=0.3
    )
    return build_market_views(simulate_session(1, seed=3, config=config))


def keys(views) -> list[str]:
    return [v.key for v in views]


def test_the_env_config_survives_a_round_trip_through_json():
    config = EnvConfig(
        starting_cash_cents=777, order_size=3, reward_scale=0.5, execution="maker",
        series_fees=("KXBTC:quadratic", "KXHIGH:quadratic_with_maker_fees:0.5"),
    )  # fmt: skip
    assert EnvConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    assert list(config.to_json())[:5] == [
        "starting_cash_cents", "order_size", "max_position", "limit_slippage_cents",
        "reward_scale",
    ]  # fmt: skip


# -- checkers and registration -------------------------------------------------------------
@pytest.mark.parametrize("several", [False, True], ids=["one view", "several, balanced"])
def test_both_env_checkers_pass_without_a_warning(views, several):
    chosen = views if several else views[:1]
    sampler = BalancedSampler(len(views)) if several else None

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        gymnasium_check_env(
            gymnasium.make(ENV_ID, view=chosen, sampler=sampler, render_mode="ansi").unwrapped
        )
        sb3_check_env(MarketAgnosticKalshiEnv(chosen, sampler=sampler))


def test_gymnasium_make_by_id_after_importing_the_package(views):
    env = gymnasium.make(ENV_ID, view=views)

    assert isinstance(env.unwrapped, MarketAgnosticKalshiEnv)
    assert env.observation_space.shape == (52,)
    assert env.observation_space.dtype == np.float32
    assert env.action_space == spaces.Discrete(5)
    obs, info = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    assert info["view"] == views[0].key


def test_gymnasium_make_with_the_module_in_front_of_the_id(views):
    env = gymnasium.make("kalshi_pipeline.env:" + ENV_ID, view=views[0])

    assert isinstance(env.unwrapped, MarketAgnosticKalshiEnv)
    assert isinstance(env.observation_space, spaces.Box)
    assert env.observation_space.shape == (52,) and env.observation_space.dtype == np.float32
    assert env.action_space == spaces.Discrete(5)


# -- the view API --------------------------------------------------------------------------
def test_set_market_view_plays_that_view_from_the_next_reset_then_the_sampler_resumes(views):
    env = MarketAgnosticKalshiEnv(views[:3])  # sequential: 0, 1, 2, 0, ...
    _, info = env.reset(seed=0)
    assert info["view"] == views[0].key

    env.set_market_view(views[4])
    _, _, _, _, info = env.step(HOLD)
    assert info["view"] == views[0].key  # the current episode keeps its view

    assert env.reset()[1]["view"] == views[4].key
    assert env.reset()[1]["view"] == views[1].key
    assert env.reset()[1]["view"] == views[2].key
    # The chosen view was not the sampler's: its counts hold only its own episodes.
    np.testing.assert_array_equal(env.episode_counts, [1, 1, 1])


def test_set_market_view_steps_through_the_new_view(views):
    env = MarketAgnosticKalshiEnv(views[0])
    env.reset(seed=0)
    env.set_market_view(views[1])

    env.reset()
    steps, terminated = 0, False
    while not terminated:
        _, _, terminated, _, info = env.step(HOLD)
        steps += 1

    assert steps == len(views[1]) != len(views[0])
    assert info["view"] == views[1].key


def test_a_view_with_another_feature_layout_is_refused_by_name(views):
    odd = replace(views[2], feature_layout_version=99)
    expected = f"view {views[2].key} has feature layout .* v99"

    with pytest.raises(ValueError, match=expected):
        MarketAgnosticKalshiEnv([views[0], odd])
    env = MarketAgnosticKalshiEnv(views[:2])
    with pytest.raises(ValueError, match=expected):
        env.set_market_view(odd)
    with pytest.raises(ValueError, match=expected):
        env.set_views([views[0], odd])
    # Nothing changed: the env still plays its own views.
    assert [env.reset(seed=0)[1]["view"], env.reset()[1]["view"]] == keys(views[:2])


def test_set_views_replaces_the_views_and_the_sampler_from_the_next_reset(views):
    env = MarketAgnosticKalshiEnv(views[:2])
    env.reset(seed=0)

    env.set_views(views[3:6], SequentialSampler(3, episodes_per_view=2))

    assert [env.reset()[1]["view"] for _ in range(4)] == keys(
        [views[3], views[3], views[4], views[4]]
    )


def test_a_sampler_over_another_number_of_views_is_refused_and_changes_nothing(views):
    env = MarketAgnosticKalshiEnv(views[:2])

    with pytest.raises(ValueError, match="sampler covers 2 views, not 6"):
        env.set_views(views, BalancedSampler(2))
    with pytest.raises(ValueError, match="sampler covers 6 views, not 2"):
        env.set_sampler(BalancedSampler(6))
    with pytest.raises(ValueError, match="sampler covers 6 views, not 2"):
        MarketAgnosticKalshiEnv(views[:2], sampler=BalancedSampler(6))

    played = [env.reset(seed=0)[1]["view"]] + [env.reset()[1]["view"] for _ in range(3)]
    assert played == keys(views[:2]) * 2


def test_set_sampler_takes_over_at_the_next_reset(views):
    env = MarketAgnosticKalshiEnv(views[:3])
    env.reset(seed=0)

    env.set_sampler(SequentialSampler(3, episodes_per_view=3))

    assert [env.reset()[1]["view"] for _ in range(4)] == keys(views[:1] * 3 + views[1:2])
    np.testing.assert_array_equal(env.episode_counts, [3, 1, 0])


def test_sampler_call_reaches_the_sampler(views):
    env = MarketAgnosticKalshiEnv(views, sampler=CurriculumSampler(range(6), stages=3))

    env.sampler_call("set_stage", 2)

    assert env.sampler.stage == 2


def test_episode_counts_is_a_copy(views):
    env = MarketAgnosticKalshiEnv(views[:2])
    env.reset(seed=0)

    env.episode_counts[:] = 50

    np.testing.assert_array_equal(env.episode_counts, [1, 0])


# -- render and the docstring ----------------------------------------------------------------
def test_ansi_render_names_the_view_and_the_position(views):
    env = gymnasium.make(ENV_ID, view=views[:1], render_mode="ansi")
    env.reset(seed=0)
    position = 0
    while position == 0:  # buy until the book offers YES contracts
        _, _, terminated, _, info = env.step(BUY_YES)
        position = info["position"]
        assert not terminated, "no YES ask in the whole view"

    text = env.render()

    assert isinstance(text, str)
    assert views[0].key in text
    assert f"position {position:+d}" in text and position > 0


def test_render_without_a_render_mode_returns_nothing(views):
    env = MarketAgnosticKalshiEnv(views[:1])
    env.reset(seed=0)

    assert env.render() is None


def test_the_class_docstring_example_runs():
    failed, attempted = doctest.testmod(kalshi_pipeline.env.trading_env)

    assert attempted >= 8
    assert failed == 0


# -- vectorised envs -------------------------------------------------------------------------
FORKSERVER_PRELOAD = ["stable_baselines3.common.vec_env.subproc_vec_env", "kalshi_pipeline.env"]


@pytest.fixture(params=[DummyVecEnv, SubprocVecEnv], ids=["dummy", "subproc"])
def make_vec_env(request, views):
    """``make_vec_env(make_sampler)``: two envs over ``views``, each with its own sampler
    ``make_sampler(n_views)`` (None: the default sequential one); closed after the test."""
    made = []

    def make(make_sampler=lambda n: None):
        env_fns = [
            functools.partial(MarketAgnosticKalshiEnv, views, sampler=make_sampler(len(views)))
            for _ in range(2)
        ]
        if request.param is SubprocVecEnv:
            # Training's start method; the server has SB3 and the env imported already, so
            # each worker starts in a fraction of a second instead of importing torch.
            multiprocessing.set_forkserver_preload(FORKSERVER_PRELOAD)
            vec_env = SubprocVecEnv(env_fns, start_method="forkserver")
        else:
            vec_env = DummyVecEnv(env_fns)
        made.append(vec_env)
        return vec_env

    yield make
    for vec_env in made:
        vec_env.close()


def episodes_played(vec_env, episodes: int, *, all_finished: bool = False) -> list[list[str]]:
    """Step every env with HOLD until each has finished ``episodes`` episodes (SB3 resets
    them as they finish); the views of those episodes, per env (with ``all_finished``,
    also those of a faster env's extra episodes)."""
    played = [[] for _ in range(vec_env.num_envs)]
    hold = np.full(vec_env.num_envs, HOLD)
    while min(map(len, played)) < episodes:
        _, _, dones, infos = vec_env.step(hold)
        for i in np.flatnonzero(dones):
            played[i].append(infos[i]["view"])
    return played if all_finished else [p[:episodes] for p in played]


def test_vec_env_auto_reset_asks_the_sampler_for_every_episode(views, make_vec_env):
    vec_env = make_vec_env()  # sequential: each env plays the views in order
    vec_env.seed(0)
    vec_env.reset()

    played = episodes_played(vec_env, 8)

    in_order = [views[i % 6].key for i in range(8)]
    assert played == [in_order, in_order]


def test_each_vec_env_worker_draws_its_own_random_stream(make_vec_env):
    vec_env = make_vec_env(BalancedSampler)
    vec_env.seed(11)
    vec_env.reset()

    worker_0, worker_1 = episodes_played(vec_env, 12)

    assert worker_0 != worker_1
    assert len(set(worker_0)) >= 4 and len(set(worker_1)) >= 4


def test_the_same_vec_env_seed_replays_the_same_views(make_vec_env):
    vec_env = make_vec_env(BalancedSampler)
    vec_env.seed(5)
    vec_env.reset()
    first = episodes_played(vec_env, 10)

    vec_env.seed(5)
    vec_env.reset()

    assert episodes_played(vec_env, 10) == first
    vec_env.seed(6)
    vec_env.reset()
    assert episodes_played(vec_env, 10) != first


def test_episode_counts_can_be_read_from_the_workers_at_any_time(views, make_vec_env):
    vec_env = make_vec_env(BalancedSampler)
    vec_env.seed(0)
    vec_env.reset()
    assert [c.sum() for c in vec_env.get_attr("episode_counts")] == [1, 1]

    finished = [[] for _ in range(2)]
    for _ in range(3):
        for i, views_played in enumerate(episodes_played(vec_env, 2, all_finished=True)):
            finished[i] += views_played

        for counts, played in zip(vec_env.get_attr("episode_counts"), finished, strict=True):
            played_counts = np.array([played.count(k) for k in keys(views)])
            # every finished episode, plus the one running now
            assert counts.sum() == len(played) + 1
            assert sorted(counts - played_counts) == [0, 0, 0, 0, 0, 1]

    vec_env.env_method("sampler_call", "restart")
    assert [c.sum() for c in vec_env.get_attr("episode_counts")] == [0, 0]


def test_set_stage_through_env_method_changes_the_curriculum_in_every_worker(views, make_vec_env):
    # View i has difficulty i: three bands of two views, {0, 1}, {2, 3}, {4, 5}.
    vec_env = make_vec_env(lambda n: CurriculumSampler(range(n), stages=3, revisit_fraction=0))
    vec_env.seed(0)
    vec_env.reset()

    vec_env.env_method("sampler_call", "set_stage", 2)

    assert [sampler.stage for sampler in vec_env.get_attr("sampler")] == [2, 2]
    for worker in episodes_played(vec_env, 6):
        assert worker[0] in keys(views[0:2])  # started before the change
        assert set(worker[1:]) <= set(keys(views[4:6]))
