"""Difficulty scores and training filters, from the per-view statistics only.

The score is checked against values worked out by hand from the formula of the module
docstring, its range and monotonicity over every input (hypothesis), the filters by their
reasons, and :func:`score_views` on the views of simulated sessions read back from disk.
"""

from __future__ import annotations

import itertools
import random

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from kalshi_pipeline.market.difficulty import (
    FilterConfig,
    difficulty_score,
    exclusion_reasons,
    score_views,
)
from kalshi_pipeline.market.views import (
    STATISTICS,
    build_market_views,
    view_descriptions,
    write_views,
)
from kalshi_pipeline.sources.simulator import (
    Population,
    SimulatorConfig,
    simulate_session,
    ticker_pool,
)


# -- difficulty_score ----------------------------------------------------------------------
#   difficulty = 0.5 * s / (s + 10) + 0.3 * v / (v + 1) + 0.2 * (1 - c)
@pytest.mark.parametrize(
    ("spread", "volatility", "coverage", "expected"),
    [
        (0, 0, 1, 0.0),  # the easiest market there is
        (10, 0, 1, 0.25),  # half of the spread weight at 10 cents
        (0, 1, 1, 0.15),  # half of the volatility weight at 1 cent per step
        (0, 0, 0, 0.2),  # never active: all of the coverage weight
        (10, 1, 1, 0.4),  # 0.25 + 0.15
        (30, 3, 0.5, 0.7),  # 0.5 * 30/40 + 0.3 * 3/4 + 0.2 * 0.5 = 0.375 + 0.225 + 0.1
        (2, 0.25, 0.9, 0.5 * 2 / 12 + 0.3 * 0.2 + 0.02),  # a liquid market: 0.1633...
        (100, 0, 0.25, 0.5 * 100 / 110 + 0.15),  # never two-sided (spread 100): 0.6045...
        (90, 9, 0, 0.45 + 0.27 + 0.2),  # 0.92
    ],
)
def test_difficulty_by_hand(spread, volatility, coverage, expected):
    assert difficulty_score(spread, volatility, coverage) == pytest.approx(expected, abs=1e-12)


def test_difficulty_is_vectorised():
    scores = difficulty_score([0, 10, 30], [0, 1, 3], [1, 1, 0.5])

    assert isinstance(scores, np.ndarray) and scores.dtype == np.float64
    np.testing.assert_allclose(scores, [0.0, 0.4, 0.7], atol=1e-12)


def test_difficulty_stays_in_0_1_over_a_grid_with_the_extremes():
    spreads = [0, 0.5, 1, 3, 10, 20, 60, 99, 100]
    volatilities = [0, 0.1, 1, 5, 20, 50]
    coverages = [0, 0.01, 0.1, 0.5, 0.99, 1]
    grid = np.array(list(itertools.product(spreads, volatilities, coverages))).T

    scores = difficulty_score(*grid)

    assert scores.shape == (len(spreads) * len(volatilities) * len(coverages),)
    assert (scores >= 0).all() and (scores <= 1).all()
    assert scores.min() == 0.0  # spread 0, volatility 0, coverage 1
    assert scores.max() == pytest.approx(0.5 * 100 / 110 + 0.3 * 50 / 51 + 0.2)


def test_out_of_range_statistics_stay_in_0_1():
    # A book crossed at every step averages a negative spread; coverage is a share.
    assert difficulty_score(-5, 0, 1) == 0.0
    assert difficulty_score(0, 0, 1.2) == 0.0
    assert difficulty_score(1e9, 1e9, -0.5) <= 1.0


SPREAD = st.floats(0, 100, allow_nan=False)
VOLATILITY = st.floats(0, 50, allow_nan=False)
COVERAGE = st.floats(0, 1, allow_nan=False)


@given(SPREAD, SPREAD, VOLATILITY, COVERAGE)
def test_a_wider_spread_is_harder(a, b, volatility, coverage):
    low, high = sorted((a, b))
    easier = difficulty_score(low, volatility, coverage)
    harder = difficulty_score(high, volatility, coverage)

    assert easier <= harder
    if high - low > 1e-3:
        assert easier < harder


@given(SPREAD, VOLATILITY, VOLATILITY, COVERAGE)
def test_a_more_volatile_market_is_harder(spread, a, b, coverage):
    low, high = sorted((a, b))
    easier = difficulty_score(spread, low, coverage)
    harder = difficulty_score(spread, high, coverage)

    assert easier <= harder
    if high - low > 1e-3:
        assert easier < harder


@given(SPREAD, VOLATILITY, COVERAGE, COVERAGE)
def test_a_better_covered_market_is_easier(spread, volatility, a, b):
    low, high = sorted((a, b))
    harder = difficulty_score(spread, volatility, low)
    easier = difficulty_score(spread, volatility, high)

    assert easier <= harder
    if high - low > 1e-6:
        assert easier < harder


@given(st.lists(st.tuples(SPREAD, VOLATILITY, COVERAGE), min_size=1, max_size=20))
def test_difficulty_is_deterministic_and_each_row_scores_alone(rows):
    columns = np.array(rows).T

    scores = difficulty_score(*columns)

    np.testing.assert_array_equal(scores, difficulty_score(*columns))
    np.testing.assert_array_equal(scores, [difficulty_score(*row) for row in rows])


# -- filters -------------------------------------------------------------------------------
def description(**stats) -> dict:
    """A view description that passes the default filters, with ``stats`` changed."""
    base = {
        "session_id": 1,
        "market_ticker": "MKT-A",
        "length": 120,
        "avg_spread": 4.0,
        "volatility_score": 0.5,
        "market_coverage": 0.6,
        "data_quality_score": 0.98,
        "activity_bursts": 3,
        "quiet_periods": 1,
    }
    return {**base, **stats}


def test_filter_defaults():
    assert FilterConfig() == FilterConfig(
        min_episode_length=50, min_coverage=0.10, min_data_quality=0.5
    )


def test_a_good_view_passes():
    assert exclusion_reasons(description(), FilterConfig()) == []


@pytest.mark.parametrize(
    ("stats", "reason"),
    [
        ({"length": 49}, "too short: 49 steps < 50"),
        ({"market_coverage": 0.05}, "low coverage: 0.05 < 0.1"),
        ({"data_quality_score": 0.25}, "poor data quality: 0.25 < 0.5"),
    ],
)
def test_each_filter_names_the_value_and_the_threshold(stats, reason):
    assert exclusion_reasons(description(**stats), FilterConfig()) == [reason]


def test_every_failing_filter_gives_its_reason():
    reasons = exclusion_reasons(
        description(length=12, market_coverage=0.031, data_quality_score=0.4), FilterConfig()
    )

    assert reasons == [
        "too short: 12 steps < 50",
        "low coverage: 0.031 < 0.1",
        "poor data quality: 0.4 < 0.5",
    ]


def test_a_view_exactly_at_the_thresholds_passes():
    at_thresholds = description(length=50, market_coverage=0.10, data_quality_score=0.5)

    assert exclusion_reasons(at_thresholds, FilterConfig()) == []


def test_thresholds_are_configurable():
    short_and_narrow = description(length=20, market_coverage=0.3)

    assert exclusion_reasons(short_and_narrow, FilterConfig()) == ["too short: 20 steps < 50"]
    assert exclusion_reasons(short_and_narrow, FilterConfig(min_episode_length=20)) == []
    assert exclusion_reasons(
        short_and_narrow, FilterConfig(min_episode_length=10, min_coverage=0.5)
    ) == ["low coverage: 0.3 < 0.5"]
    assert exclusion_reasons(description(), FilterConfig(min_data_quality=0.99)) == [
        "poor data quality: 0.98 < 0.99"
    ]


# -- score_views on simulated views --------------------------------------------------------
SEED = 13
SIMULATED = SimulatorConfig(population=Population.TWO_CLASS, markets=40)


@pytest.fixture(scope="module")
def simulated_descriptions() -> list[dict]:
    """The descriptions of the views of sessions 2 and 1, in that order."""
    views = [
        v for sid in (2, 1) for v in build_market_views(simulate_session(sid, SEED, SIMULATED))
    ]
    return [v.describe() for v in views]


def test_one_row_per_view_sorted_by_session_and_ticker(simulated_descriptions):
    shuffled = random.Random(0).sample(simulated_descriptions, len(simulated_descriptions))

    table = score_views(shuffled)

    keys = list(
        zip(table["session_id"].to_pylist(), table["market_ticker"].to_pylist(), strict=True)
    )
    assert len(keys) == len(simulated_descriptions) == 80
    assert keys == sorted((d["session_id"], d["market_ticker"]) for d in simulated_descriptions)
    assert keys[0][0] == 1 and keys[-1][0] == 2


def test_rows_carry_the_views_statistics(simulated_descriptions):
    rows = score_views(simulated_descriptions).to_pylist()
    by_key = {(d["session_id"], d["market_ticker"]): d for d in simulated_descriptions}

    for row in rows:
        view = by_key[row["session_id"], row["market_ticker"]]
        for name in ("length", *STATISTICS):
            assert row[name] == view[name], name


def test_difficulty_is_the_score_of_the_rows_statistics(simulated_descriptions):
    for row in score_views(simulated_descriptions).to_pylist():
        expected = difficulty_score(
            row["avg_spread"], row["volatility_score"], row["market_coverage"]
        )
        assert row["difficulty"] == expected
        assert 0 <= row["difficulty"] <= 1


def test_filters_flag_views_with_their_reasons(simulated_descriptions):
    config = FilterConfig()
    rows = score_views(simulated_descriptions, config).to_pylist()
    by_key = {(d["session_id"], d["market_ticker"]): d for d in simulated_descriptions}

    for row in rows:
        reasons = exclusion_reasons(by_key[row["session_id"], row["market_ticker"]], config)
        assert row["passes_filters"] == (not reasons)
        assert row["exclusion_reasons"] == "; ".join(reasons)
    # Simulated views run from about 10 steps to thousands: some of each.
    passing = [row["passes_filters"] for row in rows]
    assert any(passing) and not all(passing)
    assert any(row["exclusion_reasons"].startswith("too short") for row in rows)


def test_several_reasons_are_joined_in_one_row():
    table = score_views([description(length=3, market_coverage=0.02)])

    assert table["passes_filters"].to_pylist() == [False]
    assert table["exclusion_reasons"].to_pylist() == [
        "too short: 3 steps < 50; low coverage: 0.02 < 0.1"
    ]


def test_a_looser_filter_passes_more_views(simulated_descriptions):
    strict = score_views(simulated_descriptions)["passes_filters"].to_pylist()
    loose = score_views(simulated_descriptions, FilterConfig(min_episode_length=10))
    loose = loose["passes_filters"].to_pylist()

    assert sum(loose) > sum(strict)
    assert all(passes for s, passes in zip(strict, loose, strict=True) if s)


def test_excluded_views_stay_in_the_table(simulated_descriptions):
    nothing_passes = FilterConfig(min_episode_length=1_000_000)
    table = score_views(simulated_descriptions, nothing_passes)

    assert table.num_rows == len(simulated_descriptions)
    assert not any(table["passes_filters"].to_pylist())


def test_scoring_needs_only_the_views_file_footer(tmp_path):
    views = build_market_views(simulate_session(1, SEED, SIMULATED))
    path = write_views(views, tmp_path / "views.parquet")

    from_file = score_views(view_descriptions(path))

    assert from_file.equals(score_views([v.describe() for v in views]))
    assert from_file.num_rows == len(views)


def test_an_empty_list_scores_to_an_empty_table():
    table = score_views([])

    assert table.num_rows == 0
    assert "difficulty" in table.column_names and "passes_filters" in table.column_names


def test_liquid_markets_are_easier_on_average(simulated_descriptions):
    liquid = {t.ticker for t in ticker_pool(SEED, SIMULATED) if t.liquid}
    rows = score_views(simulated_descriptions).to_pylist()
    easy = [r["difficulty"] for r in rows if r["market_ticker"] in liquid]
    hard = [r["difficulty"] for r in rows if r["market_ticker"] not in liquid]

    assert easy and hard  # both kinds were simulated
    assert np.mean(easy) < np.mean(hard)
    # Their spreads alone (1-3 cents against 20-60) put them well apart.
    assert np.mean(easy) + 0.15 < np.mean(hard)


def test_a_value_just_under_a_threshold_reads_as_under_it():
    reasons = exclusion_reasons(description(market_coverage=0.0999), FilterConfig())
    assert reasons == ["low coverage: 0.0999 < 0.1"]
