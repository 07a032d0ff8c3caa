"""Bootstrap intervals, the wins they ask for, and Spearman's rank correlation."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats

from kalshi_pipeline.training.evaluation import bootstrap_interval, spearman, wins_needed


def test_bootstrap_interval_brackets_the_mean_and_narrows_with_more_data():
    rng = np.random.default_rng(42)
    few, many = rng.normal(1.0, 2.0, 20), rng.normal(1.0, 2.0, 2000)

    low, high = bootstrap_interval(few, seed=3)

    assert low < few.mean() < high
    assert bootstrap_interval(few, seed=3) == (low, high)
    assert bootstrap_interval(few, seed=4) != (low, high)
    many_low, many_high = bootstrap_interval(many, seed=3)
    assert many_low < many.mean() < many_high
    assert many_high - many_low < (high - low) / 3
    assert bootstrap_interval(np.array([2.5, 2.5, 2.5])) == (2.5, 2.5)
    assert all(math.isnan(x) for x in bootstrap_interval(np.array([])))


def test_wins_needed_is_the_fewest_wins_whose_interval_clears_zero():
    def low(markets, wins):
        values = np.zeros(markets)
        values[:wins] = 1.0
        return bootstrap_interval(values)[0]

    for markets in (2, 5, 13, 15, 27, 60):
        wins = wins_needed(markets)
        assert low(markets, wins) > 0
        assert low(markets, wins - 1) <= 0
    # The robustness table's thin case: 2 wins of 15 validation markets are not enough.
    assert wins_needed(15) > 2
    assert wins_needed(1) == 1 and wins_needed(0) is None


def test_bootstrap_interval_is_scipys_bca_interval_with_the_seed():
    values = np.random.default_rng(7).normal(0.5, 1.0, 40)

    direct = stats.bootstrap(
        (values,), np.mean, confidence_level=0.95, n_resamples=2000, method="BCa",
        rng=np.random.default_rng(11),
    ).confidence_interval  # fmt: skip

    assert bootstrap_interval(values, seed=11) == pytest.approx((direct.low, direct.high))
    assert bootstrap_interval(values, seed=11) == bootstrap_interval(values, seed=11)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # scipy's own one-resample call
def test_bootstrap_interval_falls_back_on_constant_data_and_undefined_bca():
    # Constant data (one value included): BCa is undefined; every resample has that mean.
    assert bootstrap_interval(np.array([0.7, 0.7, 0.7, 0.7])) == (0.7, 0.7)
    assert bootstrap_interval(np.array([-2.0])) == (-2.0, -2.0)
    # One resample: BCa comes out NaN, the percentile interval of the same resample stands.
    values = np.array([0.0, 1.0, 5.0])
    percentile = stats.bootstrap(
        (values,), np.mean, n_resamples=1, method="percentile", rng=np.random.default_rng(0)
    ).confidence_interval
    assert bootstrap_interval(values, seed=0, samples=1) == pytest.approx(
        (percentile.low, percentile.high)
    )
    assert all(math.isfinite(x) for x in bootstrap_interval(values, seed=0, samples=1))


def test_spearman_on_a_known_ranking():
    x = np.array([1.0, 2.0, 3.0, 4.0, 5.0])
    # Ranks of y: 2 1 4 3 5 -> sum of squared rank differences 4 -> 1 - 6 * 4 / 120 = 0.8
    # (ranks, not values: Pearson's r of these is 0.72).
    y = np.array([2.0, 1.0, 400.0, 30.0, 5000.0])
    assert spearman(x, y)["rho"] == pytest.approx(0.8)
    assert spearman(x, y)["p_value"] == pytest.approx(stats.spearmanr(x, y).pvalue)
    assert spearman(x, -x)["rho"] == pytest.approx(-1.0)
    # Unknown values are dropped pairwise; a constant series or under 3 pairs is undefined.
    assert spearman(np.array([1.0, math.nan, 3.0, 4.0]), np.array([1.0, 9.0, 2.0, 3.0]))["n"] == 3
    assert spearman(x, np.zeros(5)) == {"rho": None, "p_value": None, "n": 5}
    assert spearman(x[:2], x[:2])["rho"] is None
