"""View samplers: which view each episode plays, and how many episodes each view has had.

The samplers are driven directly with a seeded generator (as the env drives them with its
``np_random``) over views of made-up difficulties, and through the env over simulated
views, where ``info["view"]`` of every ``reset()`` tells which view an episode plays.
Random behaviour is checked statistically over thousands of seeded draws, with
tolerances of about four standard deviations.
"""

from __future__ import annotations

import pickle

import numpy as np
import pytest

from kalshi_pipeline.env import (
    BalancedSampler,
    CurriculumSampler,
    HybridSampler,
    MarketAgnosticKalshiEnv,
    SequentialSampler,
)
from kalshi_pipeline.market import build_market_views, difficulty_score
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session

# Ten views of known difficulty, with ties. Ranked by (difficulty, index):
#   index       1    3    4    0    2    7    8    6    9    5
#   difficulty .1   .1   .1   .3   .3   .5   .5   .7   .8   .9
# so the five bands of two views (stage 0 = the easiest 20%) are:
DIFFICULTIES = [0.3, 0.1, 0.3, 0.1, 0.1, 0.9, 0.7, 0.5, 0.5, 0.8]
BANDS = [{1, 3}, {4, 0}, {2, 7}, {8, 6}, {9, 5}]  # view 4 ties with 1 and 3 but comes later
BAND_OF = {view: band for band, views in enumerate(BANDS) for view in views}


def draw(sampler, n: int, seed: int = 0) -> list[int]:
    """The views of the next ``n`` episodes, as the env would ask for them."""
    rng = np.random.default_rng(seed)
    return [sampler.next_index(rng) for _ in range(n)]


def shares(indices: list[int], n_views: int) -> np.ndarray:
    return np.bincount(indices, minlength=n_views) / len(indices)


@pytest.fixture(scope="module")
def views():
    """Eight simulated markets (9 to 27 steps each)."""
    config = SimulatorConfig(
        population=Population.TWO_CLASS, markets=8, median_events_per_market=15, events_sigma=0.3
    )
    return build_market_views(simulate_session(1, seed=3, config=config))


def played_views(env, seed: int, episodes: int) -> list[str]:
    """``reset(seed=seed)``, then ``reset()`` again and again: the view of each episode."""
    keys = [env.reset(seed=seed)[1]["view"]]
    keys += [env.reset()[1]["view"] for _ in range(episodes - 1)]
    return keys


# -- SequentialSampler ---------------------------------------------------------------------
def test_sequential_plays_each_view_n_times_in_order_then_wraps_around():
    sampler = SequentialSampler(3, episodes_per_view=2)

    assert draw(sampler, 9) == [0, 0, 1, 1, 2, 2, 0, 0, 1]
    assert sampler.episode_counts.tolist() == [4, 3, 2]


def test_sequential_with_one_episode_per_view_by_default():
    sampler = SequentialSampler(4)

    assert draw(sampler, 6) == [0, 1, 2, 3, 0, 1]
    assert sampler.episode_counts.tolist() == [2, 2, 1, 1]


def test_a_sampler_needs_a_view():
    with pytest.raises(ValueError, match="at least one view"):
        SequentialSampler(0)


# -- CurriculumSampler ---------------------------------------------------------------------
def test_stage_0_plays_only_the_easiest_fifth_ties_broken_by_index():
    sampler = CurriculumSampler(DIFFICULTIES, stages=5)

    played = draw(sampler, 400)

    assert set(played) == BANDS[0] == {1, 3}
    assert sampler.episode_counts.sum() == 400


@pytest.mark.parametrize("stage", [1, 2, 3, 4])
def test_stage_s_plays_band_s_and_revisits_easier_bands_at_the_revisit_fraction(stage):
    sampler = CurriculumSampler(DIFFICULTIES, stages=5, revisit_fraction=0.25)
    sampler.set_stage(stage)

    bands = [BAND_OF[i] for i in draw(sampler, 4000, seed=stage)]

    assert max(bands) == stage  # never a harder band
    revisits = [b for b in bands if b < stage]
    # 4000 draws at p = 0.25: standard deviation 0.007
    assert len(revisits) / len(bands) == pytest.approx(0.25, abs=0.03)
    assert set(revisits) == set(range(stage))  # every easier band comes back
    # The rest plays the stage's own band, both of its views.
    assert {i for i in sampler.episode_counts.nonzero()[0] if BAND_OF[i] == stage} == BANDS[stage]


def test_without_revisits_a_stage_plays_only_its_own_band():
    sampler = CurriculumSampler(DIFFICULTIES, stages=5, revisit_fraction=0.0)
    sampler.set_stage(3)

    assert set(draw(sampler, 500)) == BANDS[3]


def test_set_stage_clamps_to_the_stages_there_are():
    sampler = CurriculumSampler(DIFFICULTIES, stages=5)

    sampler.set_stage(99)
    assert sampler.stage == 4
    sampler.set_stage(-3)
    assert sampler.stage == 0


def test_episodes_per_stage_advances_the_stage_by_itself_up_to_the_last():
    sampler = CurriculumSampler(DIFFICULTIES, stages=5, revisit_fraction=0.0, episodes_per_stage=3)

    bands = [BAND_OF[i] for i in draw(sampler, 18)]

    assert bands == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3, 4, 4, 4, 4, 4, 4]
    assert sampler.stage == 4


def test_without_episodes_per_stage_the_stage_stays_until_set():
    sampler = CurriculumSampler(DIFFICULTIES, stages=5, revisit_fraction=0.0)

    draw(sampler, 300)

    assert sampler.stage == 0


def test_curriculum_over_real_views_starts_on_the_easiest(views):
    difficulty = difficulty_score(
        [v.avg_spread for v in views],
        [v.volatility_score for v in views],
        [v.market_coverage for v in views],
    )
    easiest_two = {views[i].key for i in np.argsort(difficulty, kind="stable")[:2]}
    sampler = CurriculumSampler(difficulty, stages=4, revisit_fraction=0.0)
    env = MarketAgnosticKalshiEnv(views, sampler=sampler)

    assert set(played_views(env, seed=0, episodes=40)) == easiest_two


# -- BalancedSampler -----------------------------------------------------------------------
def next_choice_shares(episodes_seen, extra_weight=None, trials=6000, seed=0) -> np.ndarray:
    """How often each view is chosen for the next episode by a sampler that has seen
    ``episodes_seen`` episodes per view (a fresh copy of that sampler for every trial)."""
    rng = np.random.default_rng(seed)
    picks = []
    for _ in range(trials):
        sampler = BalancedSampler(len(episodes_seen), extra_weight=extra_weight)
        sampler.episode_counts[:] = episodes_seen
        picks.append(sampler.next_index(rng))
    return shares(picks, len(episodes_seen))


def test_balanced_chooses_inversely_to_one_plus_the_episodes_seen():
    # weights 1, 1/2, 1/4, 1/8 -> probabilities 8/15, 4/15, 2/15, 1/15
    np.testing.assert_allclose(
        next_choice_shares([0, 1, 3, 7]), np.array([8, 4, 2, 1]) / 15, atol=0.025
    )


def test_balanced_chooses_a_much_played_view_less():
    sampler = BalancedSampler(4)
    sampler.episode_counts[:] = [100, 0, 0, 0]

    draw(sampler, 90)

    new_episodes = sampler.episode_counts - [100, 0, 0, 0]
    assert new_episodes[0] < new_episodes[1:].min() / 4


def test_balanced_keeps_counts_closer_together_than_uniform_draws():
    # 6 views, 120 episodes, 200 seeded runs: uniform draws end with a max - min spread of
    # 11 episodes (median) and above 14 in about a quarter of the runs.
    spreads, uniform_spreads = [], []
    for seed in range(200):
        sampler = BalancedSampler(6)
        draw(sampler, 120, seed=seed)
        assert sampler.episode_counts.sum() == 120
        spreads.append(np.ptp(sampler.episode_counts))
        uniform = np.random.default_rng(seed).integers(6, size=120)
        uniform_spreads.append(np.ptp(np.bincount(uniform, minlength=6)))

    assert max(spreads) <= 14
    assert np.mean(spreads) < 0.8 * np.mean(uniform_spreads)


def test_balanced_every_view_gets_its_share_over_many_episodes():
    sampler = BalancedSampler(5)

    draw(sampler, 1000)

    np.testing.assert_allclose(sampler.episode_counts / 1000, 0.2, atol=0.03)


def test_extra_weight_shifts_choices_toward_the_weighted_views():
    # weights 1 + 1, 1, 1, 1 + 3 over views that have all been played 0 times
    np.testing.assert_allclose(
        next_choice_shares([0, 0, 0, 0], extra_weight=[1, 0, 0, 3]),
        np.array([2, 1, 1, 4]) / 8,
        atol=0.025,
    )


def test_set_extra_weight_later_e_g_for_views_the_agent_struggles_on():
    sampler = BalancedSampler(4)
    sampler.set_extra_weight([0, 0, 0, 1])

    draw(sampler, 400)

    # The struggling view keeps weight >= 1 however often it is played; the others fade.
    assert sampler.episode_counts[3] > 2 * sampler.episode_counts[:3].max()


# -- HybridSampler -------------------------------------------------------------------------
def test_hybrid_mixes_curriculum_and_balanced_episodes():
    sampler = HybridSampler(DIFFICULTIES, balanced_fraction=0.3, revisit_fraction=0.0)

    played = draw(sampler, 2000)

    in_band_0 = np.mean([i in BANDS[0] for i in played])
    # 70% curriculum, all in band 0, plus the few balanced picks that land there (the
    # balanced part avoids them: they have been played most).
    assert in_band_0 == pytest.approx(0.7, abs=0.04)
    assert set(played) == set(range(10))  # the balanced part reaches every view


def test_hybrid_counts_every_episode_once():
    sampler = HybridSampler(DIFFICULTIES, balanced_fraction=0.5)

    played = draw(sampler, 500)

    np.testing.assert_array_equal(sampler.episode_counts, np.bincount(played, minlength=10))
    assert sampler.episode_counts.sum() == 500


def test_hybrid_counts_are_one_array_shared_by_its_parts_also_after_pickling():
    # A SubprocVecEnv worker receives its sampler pickled.
    sampler = pickle.loads(pickle.dumps(HybridSampler(DIFFICULTIES, balanced_fraction=0.5)))

    draw(sampler, 50)

    assert sampler.episode_counts.sum() == 50
    assert sampler.curriculum.episode_counts is sampler.episode_counts
    assert sampler.balanced.episode_counts is sampler.episode_counts


def test_hybrid_set_stage_reaches_the_curriculum():
    sampler = HybridSampler(DIFFICULTIES, balanced_fraction=0.0, revisit_fraction=0.0)

    sampler.set_stage(2)

    assert sampler.stage == sampler.curriculum.stage == 2
    assert set(draw(sampler, 200)) == BANDS[2]


# -- restart -------------------------------------------------------------------------------
def test_restart_clears_the_counts_and_starts_over():
    sampler = SequentialSampler(3, episodes_per_view=2)
    draw(sampler, 5)

    sampler.restart()

    assert sampler.episode_counts.tolist() == [0, 0, 0]
    assert draw(sampler, 3) == [0, 0, 1]


def test_restart_keeps_a_curriculums_stage_but_its_progress_in_the_stage_starts_over():
    sampler = CurriculumSampler(DIFFICULTIES, stages=5, revisit_fraction=0.0, episodes_per_stage=4)
    sampler.set_stage(2)
    draw(sampler, 3)  # one episode short of stage 3

    sampler.restart()

    assert sampler.stage == 2
    assert sampler.episode_counts.sum() == 0
    assert [BAND_OF[i] for i in draw(sampler, 5)] == [2, 2, 2, 2, 3]


def test_restart_clears_a_hybrids_shared_counts_and_keeps_its_stage():
    sampler = HybridSampler(DIFFICULTIES, balanced_fraction=0.5)
    sampler.set_stage(3)
    draw(sampler, 100)

    sampler.restart()

    assert sampler.stage == 3
    assert sampler.episode_counts.sum() == 0
    assert sampler.balanced.episode_counts.sum() == sampler.curriculum.episode_counts.sum() == 0


def test_restart_lets_a_balanced_sampler_replay_its_choices():
    sampler = BalancedSampler(5)
    first = draw(sampler, 30, seed=4)

    sampler.restart()

    assert draw(sampler, 30, seed=4) == first


# -- seeds, through the env ------------------------------------------------------------------
RANDOM_SAMPLERS = {
    "balanced": lambda d: BalancedSampler(len(d)),
    "curriculum": lambda d: CurriculumSampler(d, stages=2, revisit_fraction=0.3),
    "hybrid": lambda d: HybridSampler(d, balanced_fraction=0.3, stages=2),
}


@pytest.mark.parametrize("make_sampler", RANDOM_SAMPLERS.values(), ids=RANDOM_SAMPLERS.keys())
def test_same_seed_same_views_different_seed_different_views(views, make_sampler):
    difficulties = np.linspace(0, 1, len(views))

    def new_env():
        return MarketAgnosticKalshiEnv(views, sampler=make_sampler(difficulties))

    env = new_env()
    first = played_views(env, seed=1, episodes=40)

    assert played_views(new_env(), seed=1, episodes=40) == first
    assert played_views(env, seed=1, episodes=40) == first  # reseeding restarts the sampler
    assert played_views(new_env(), seed=2, episodes=40) != first
    assert len(set(first)) > 1


def test_the_same_seed_replays_the_sequential_order_from_the_start(views):
    env = MarketAgnosticKalshiEnv(views[:3], sampler=SequentialSampler(3))
    keys = [v.key for v in views[:3]]
    played_views(env, seed=0, episodes=2)

    assert played_views(env, seed=0, episodes=4) == keys + keys[:1]
    np.testing.assert_array_equal(env.episode_counts, [2, 1, 1])


@pytest.mark.parametrize(
    "make",
    [
        lambda: SequentialSampler(3, episodes_per_view=0),
        lambda: BalancedSampler(3, extra_weight=[1.0, 2.0]),
        lambda: BalancedSampler(3, extra_weight=[1.0, -1.0, 0.0]),
        lambda: CurriculumSampler([0.1, 0.2, 0.3], revisit_fraction=1.5),
        lambda: HybridSampler([0.1, 0.2, 0.3], balanced_fraction=-0.1),
    ],
)
def test_bad_sampler_settings_are_refused_when_made(make):
    with pytest.raises(ValueError):
        make()
