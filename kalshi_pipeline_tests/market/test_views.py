"""MarketSessionView: the views of hand-made sessions, their statistics, and Parquet.

Every statistic of the docstring of ``market/views/statistics.py`` is checked on a small
session whose value is computed by hand in the comments; the Parquet round trip is checked field by
field (values and dtypes) on simulated sessions and on a hand-made one with an empty side.
"""

from __future__ import annotations

import math
import os
from dataclasses import fields

import numpy as np
import pyarrow.parquet as pq
import pytest

from kalshi_pipeline.market.books import TOP_LEVELS, reconstruct_books
from kalshi_pipeline.market.cleaning import sequence
from kalshi_pipeline.market.cleaning.pipeline import clean_session
from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline.market.features import (
    FEATURE_LAYOUT,
    FEATURE_LAYOUT_VERSION,
    FEATURE_NAMES,
    NUM_FEATURES,
)
from kalshi_pipeline.market.grouped_cleaning import CleanedGroups
from kalshi_pipeline.market.views import (
    STATISTICS,
    STEP_ARRAYS,
    TRADE_ARRAYS,
    MarketSessionView,
    SessionViews,
    ViewConfig,
    ViewsDamaged,
    build_market_views,
    read_views,
    view_descriptions,
    write_view_batches,
    write_views,
)
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session
from kalshi_pipeline_tests.factories import T0_MS, InBatches, delta, make_session, snapshot


def views_by_ticker(session, config=None) -> dict[str, MarketSessionView]:
    return {v.market_ticker: v for v in build_market_views(session, config)}


def assert_views_identical(actual: list, expected: list) -> None:
    """Equal in every field, array dtypes and shapes included (not only ``__eq__``)."""
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        for f in fields(MarketSessionView):
            a, b = getattr(got, f.name), getattr(want, f.name)
            where = f"{want.key}: {f.name}"
            if f.name in STEP_ARRAYS or f.name in TRADE_ARRAYS:
                dtype = STEP_ARRAYS.get(f.name) or TRADE_ARRAYS[f.name]
                assert a.dtype == b.dtype == dtype, where
                assert a.shape == b.shape, where
                assert np.array_equal(a, b), where
            else:
                assert type(a) is type(b), where
                assert a == b, where


# -- the views of a hand-made session ----------------------------------------------------
# Listed out of ticker order on purpose. MKT-C has deltas but no snapshot: rejected.
# seq 5, 6 and 7 all arrive at the same millisecond.
SHAPE_ROWS = (
    snapshot("MKT-B", seq=1, yes_bids={20: 4}),  # NO side empty throughout
    snapshot("MKT-A", seq=2, yes_bids={40: 10, 38: 5}, no_bids={55: 7}),
    delta("MKT-C", seq=3, side="yes", price=30, new_size=1),
    delta("MKT-B", seq=4, side="yes", price=21, new_size=2),
    delta("MKT-A", seq=5, side="yes", price=41, new_size=3, ts=T0_MS + 100),
    delta("MKT-A", seq=6, side="no", price=56, new_size=1, ts=T0_MS + 100),
    delta("MKT-A", seq=7, side="yes", price=41, new_size=0, ts=T0_MS + 100),
    delta("MKT-C", seq=8, side="no", price=60, new_size=1),
    delta("MKT-A", seq=9, side="no", price=56, new_size=0, ts=T0_MS + 200),
)


def test_one_view_per_accepted_market_sorted_by_ticker():
    session = make_session(*SHAPE_ROWS, session_id=12)
    views = build_market_views(session)

    assert list(reconstruct_books(session).report.rejected) == ["MKT-C"]
    assert [v.market_ticker for v in views] == ["MKT-A", "MKT-B"]
    assert all(v.session_id == 12 for v in views)
    assert [len(v) for v in views] == [3, 2]
    assert [v.key for v in views] == ["12/MKT-A", "12/MKT-B"]


def test_view_steps_are_the_markets_milliseconds_with_the_book_after_the_last_event():
    a = views_by_ticker(make_session(*SHAPE_ROWS))["MKT-A"]

    # The three events of one millisecond (seq 5, 6, 7) are one step: the book after seq 7.
    np.testing.assert_array_equal(a.sequence_numbers, [2, 7, 9])
    np.testing.assert_array_equal(a.timestamps_ms - T0_MS, [2, 100, 200])
    assert (a.start_ms, a.end_ms) == (T0_MS + 2, T0_MS + 200)
    #               snapshot  +41 YES +56 NO -41 YES  -56 NO
    np.testing.assert_array_equal(a.best_yes_bid, [40, 40, 40])
    np.testing.assert_array_equal(a.best_no_bid, [55, 56, 55])
    np.testing.assert_array_equal(a.best_yes_ask, [45, 44, 45])  # 100 - NO bid
    np.testing.assert_array_equal(a.best_no_ask, [60, 60, 60])  # 100 - YES bid


def test_temporal_features_count_steps_not_events():
    a = views_by_ticker(make_session(*SHAPE_ROWS))["MKT-A"]
    log_gap, activity = FEATURE_NAMES.index("log_gap"), FEATURE_NAMES.index("activity_10s")

    # At T0 + 100 the market has had two steps (T0 + 2 and T0 + 100), not four events,
    # and the gap is the one since the previous step.
    assert a.features[1, activity] == pytest.approx(math.log1p(2) / 5)
    assert a.features[1, log_gap] == pytest.approx(math.log1p(98) / 15)
    assert a.features[2, activity] == pytest.approx(math.log1p(3) / 5)


def test_an_event_whose_time_goes_backwards_is_a_step_of_its_own():
    rows = (
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}, ts=T0_MS + 100),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=3, ts=T0_MS + 90),
        delta("MKT-A", seq=3, side="yes", price=42, new_size=3, ts=T0_MS + 100),
    )
    (a,) = build_market_views(make_session(*rows))

    np.testing.assert_array_equal(a.sequence_numbers, [1, 2, 3])
    np.testing.assert_array_equal(a.best_yes_bid, [40, 41, 42])


def test_view_fields_have_the_contracts_dtypes_and_shapes():
    for view in build_market_views(make_session(*SHAPE_ROWS)):
        t = len(view)
        assert view.timestamps_ms.dtype == np.int64 and view.timestamps_ms.shape == (t,)
        assert view.sequence_numbers.dtype == np.int64 and view.sequence_numbers.shape == (t,)
        for name in ("best_yes_bid", "best_yes_ask", "best_no_bid", "best_no_ask"):
            assert getattr(view, name).dtype == np.int16, name
            assert getattr(view, name).shape == (t,), name
        assert view.features.dtype == np.float32
        assert view.features.shape == (t, NUM_FEATURES) == (t, 36)
        for name in ("yes_bid_prices", "no_bid_prices"):
            assert getattr(view, name).dtype == np.int16, name
            assert getattr(view, name).shape == (t, TOP_LEVELS), name
        for name in ("yes_bid_sizes", "no_bid_sizes"):
            assert getattr(view, name).dtype == np.int64, name
            assert getattr(view, name).shape == (t, TOP_LEVELS), name
        assert (view.feature_layout, view.feature_layout_version) == (
            FEATURE_LAYOUT,
            FEATURE_LAYOUT_VERSION,
        )
        for name in STATISTICS:
            assert isinstance(getattr(view, name), int | float), name


def test_an_empty_side_reads_zero_and_so_does_its_derived_ask():
    b = views_by_ticker(make_session(*SHAPE_ROWS))["MKT-B"]

    np.testing.assert_array_equal(b.best_yes_bid, [20, 21])
    np.testing.assert_array_equal(b.best_no_ask, [80, 79])
    np.testing.assert_array_equal(b.best_no_bid, [0, 0])
    np.testing.assert_array_equal(b.best_yes_ask, [0, 0])  # not 100 - 0
    np.testing.assert_array_equal(b.no_bid_prices, np.zeros((2, TOP_LEVELS)))
    np.testing.assert_array_equal(b.no_bid_sizes, np.zeros((2, TOP_LEVELS)))


def test_view_carries_the_top_levels_prices_and_sizes_best_first():
    a = views_by_ticker(make_session(*SHAPE_ROWS))["MKT-A"]

    # Step 1 (after seq 7): YES bids 40 x10, 38 x5; NO bids 56 x1, 55 x7.
    np.testing.assert_array_equal(a.yes_bid_prices[1], [40, 38, 0, 0, 0])
    np.testing.assert_array_equal(a.yes_bid_sizes[1], [10, 5, 0, 0, 0])
    np.testing.assert_array_equal(a.no_bid_prices[1], [56, 55, 0, 0, 0])
    np.testing.assert_array_equal(a.no_bid_sizes[1], [1, 7, 0, 0, 0])
    # Step 2 (seq 9): NO bids 55 x7.
    np.testing.assert_array_equal(a.no_bid_prices[2], [55, 0, 0, 0, 0])
    np.testing.assert_array_equal(a.no_bid_sizes[2], [7, 0, 0, 0, 0])
    # The best level is the first column.
    np.testing.assert_array_equal(a.yes_bid_prices[:, 0], a.best_yes_bid)
    np.testing.assert_array_equal(a.no_bid_prices[:, 0], a.best_no_bid)


def test_view_config_sets_the_number_of_levels():
    a = views_by_ticker(make_session(*SHAPE_ROWS), ViewConfig(top_levels=2))["MKT-A"]

    assert a.yes_bid_prices.shape == a.yes_bid_sizes.shape == (3, 2)
    np.testing.assert_array_equal(a.yes_bid_prices[1], [40, 38])
    np.testing.assert_array_equal(a.no_bid_sizes[1], [1, 7])


def test_describe_is_the_small_summary():
    a = views_by_ticker(make_session(*SHAPE_ROWS, session_id=4))["MKT-A"]

    assert a.describe() == {
        "session_id": 4,
        "market_ticker": "MKT-A",
        "length": 3,
        "start_ms": T0_MS + 2,
        "end_ms": T0_MS + 200,
        "feature_layout": FEATURE_LAYOUT,
        "feature_layout_version": FEATURE_LAYOUT_VERSION,
        **{name: getattr(a, name) for name in STATISTICS},
    }


# -- avg_spread and volatility_score ------------------------------------------------------
# MKT-A per step: YES bid, YES ask (100 - NO bid), spread, mid.
#   seq 1  snapshot      40  45  5  42.5
#   seq 2  YES 42 x3     42  45  3  43.5   mid change +1
#   seq 3  NO 55 gone    42   -  -   -     one-sided: not counted
#   seq 4  NO 57 x2      42  43  1  42.5   previous step one-sided: no change counted
#   seq 5  YES 42 gone   40  43  3  41.5   mid change -1
#   seq 6  NO 50 x4      40  43  3  41.5   mid change 0 (below the best)
# avg_spread = (5 + 3 + 1 + 3 + 3) / 5 = 3; mid changes +1, -1, 0: std = sqrt(2/3).
SPREAD_ROWS = (
    snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 5}),
    delta("MKT-A", seq=2, side="yes", price=42, new_size=3),
    delta("MKT-A", seq=3, side="no", price=55, new_size=0),
    delta("MKT-A", seq=4, side="no", price=57, new_size=2),
    delta("MKT-A", seq=5, side="yes", price=42, new_size=0),
    delta("MKT-A", seq=6, side="no", price=50, new_size=4),
)


def test_avg_spread_is_the_mean_over_two_sided_steps():
    a = views_by_ticker(make_session(*SPREAD_ROWS))["MKT-A"]

    assert a.avg_spread == pytest.approx(3.0)


def test_volatility_is_the_std_of_mid_changes_between_consecutive_two_sided_steps():
    a = views_by_ticker(make_session(*SPREAD_ROWS))["MKT-A"]

    assert a.volatility_score == pytest.approx(math.sqrt(2 / 3))


def test_a_market_never_two_sided_has_spread_100_and_no_volatility():
    one_sided = (
        snapshot("MKT-A", seq=1, yes_bids={40: 10}),
        delta("MKT-A", seq=2, side="yes", price=45, new_size=1),
        delta("MKT-A", seq=3, side="yes", price=30, new_size=1),
    )
    a = views_by_ticker(make_session(*one_sided))["MKT-A"]

    assert a.avg_spread == 100.0
    assert a.volatility_score == 0.0


def test_a_single_mid_change_has_no_volatility():
    rows = (
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 5}),
        delta("MKT-A", seq=2, side="yes", price=42, new_size=3),  # mid +1
    )
    a = views_by_ticker(make_session(*rows))["MKT-A"]

    assert a.avg_spread == pytest.approx(4.0)  # (5 + 3) / 2
    assert a.volatility_score == 0.0


def test_a_jump_across_a_one_sided_step_is_not_a_mid_change():
    rows = (
        snapshot("MKT-A", seq=1, yes_bids={40: 1}, no_bids={55: 1}),  # 40 / 45, mid 42.5
        delta("MKT-A", seq=2, side="no", price=55, new_size=0),  # one-sided
        delta("MKT-A", seq=3, side="no", price=45, new_size=1),  # 40 / 55, mid 47.5
        delta("MKT-A", seq=4, side="yes", price=41, new_size=1),  # 41 / 55, mid 48
        delta("MKT-A", seq=5, side="yes", price=42, new_size=1),  # 42 / 55, mid 48.5
    )
    a = views_by_ticker(make_session(*rows))["MKT-A"]

    assert a.avg_spread == pytest.approx((5 + 15 + 14 + 13) / 4)
    # Changes counted: +0.5 and +0.5 (the +5 jump over seq 2 is not one): std 0.
    assert a.volatility_score == 0.0


# -- market_coverage ----------------------------------------------------------------------
def quotes_at(ticker: str, offsets_ms: list[int], first_seq: int) -> list[dict]:
    """A snapshot then deltas of one market at the given times (ms after T0)."""
    first = T0_MS + offsets_ms[0]
    rows = [snapshot(ticker, seq=first_seq, yes_bids={40: 1}, no_bids={50: 1}, ts=first)]
    for i, offset in enumerate(offsets_ms[1:], start=1):
        rows.append(
            delta(
                ticker, seq=first_seq + i, side="yes", price=40, new_size=i + 1, ts=T0_MS + offset
            )
        )
    return rows


def in_time_order(*markets: list[dict]) -> list[dict]:
    """Rows of several markets renumbered 1, 2, ... in time order (a gap-free sequence)."""
    rows = sorted((r for m in markets for r in m), key=lambda r: r["timestamp_ms"])
    return [{**r, "sequence_number": i} for i, r in enumerate(rows, start=1)]


# The session's 15 events: ALL spans the session, LATE opens late, EARLY closes early.
COVERAGE_SESSION = in_time_order(
    quotes_at("ALL", [0, 10, 20, 30, 40, 50, 60, 70, 80, 90], 0),
    quotes_at("LATE", [50, 55, 60], 0),
    quotes_at("EARLY", [0, 5], 0),
)


def test_market_coverage_is_the_share_of_session_events_within_the_markets_span():
    views = views_by_ticker(make_session(*COVERAGE_SESSION))

    assert views["ALL"].market_coverage == 1.0  # all 15 events
    # [50, 60]: ALL's events at 50 and 60 (the ends count), LATE's 3.
    assert views["LATE"].market_coverage == pytest.approx(5 / 15)
    # [0, 5]: ALL's event at 0, EARLY's 2.
    assert views["EARLY"].market_coverage == pytest.approx(3 / 15)


def test_a_market_alone_covers_the_whole_session():
    views = views_by_ticker(make_session(*in_time_order(quotes_at("ONLY", [0, 7, 9], 0))))

    assert views["ONLY"].market_coverage == 1.0


def test_events_of_other_markets_outside_the_span_lower_coverage():
    # LATE alone covers everything; with ALL beside it only 5 of 13 events.
    alone = views_by_ticker(make_session(*in_time_order(quotes_at("LATE", [50, 55, 60], 0))))
    beside = views_by_ticker(
        make_session(
            *in_time_order(
                quotes_at("ALL", [0, 10, 20, 30, 40, 50, 60, 70, 80, 90], 0),
                quotes_at("LATE", [50, 55, 60], 0),
            )
        )
    )

    assert alone["LATE"].market_coverage == 1.0
    assert beside["LATE"].market_coverage == pytest.approx(5 / 13)


# -- data_quality_score -------------------------------------------------------------------
# A clean market of 5 steps, seq 1..5; the other rows below use seq 6 onwards.
CLEAN = (
    snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 5}),
    delta("MKT-A", seq=2, side="yes", price=41, new_size=1),
    delta("MKT-A", seq=3, side="yes", price=39, new_size=2),
    delta("MKT-A", seq=4, side="no", price=54, new_size=3),
    delta("MKT-A", seq=5, side="no", price=54, new_size=0),
)


def test_clean_data_has_quality_one():
    views = views_by_ticker(make_session(*CLEAN))
    assert views["MKT-A"].data_quality_score == 1.0
    assert all(v.data_quality_score == 1.0 for v in build_market_views(make_session(*SHAPE_ROWS)))


def test_dropped_bad_deltas_lower_that_markets_quality():
    bad = (
        delta("MKT-A", seq=6, side="yes", price=104, new_size=1),  # price out of range
        delta("MKT-A", seq=7, side="maybe", price=40, new_size=1),  # unknown side
        delta("MKT-A", seq=8, side="no", price=53, new_size=2),  # fine: step 6
    )
    other = (snapshot("MKT-B", seq=9, yes_bids={30: 1}, no_bids={60: 1}),)
    views = views_by_ticker(make_session(*CLEAN, *bad, *other))

    assert len(views["MKT-A"]) == 6
    assert views["MKT-A"].data_quality_score == pytest.approx(6 / (6 + 2))
    # The dropped rows still arrived: no gap in the sequence, MKT-B is untouched.
    assert views["MKT-B"].data_quality_score == 1.0


def test_storage_repairs_that_lose_nothing_keep_quality_one():
    """Sorting rows, dropping an exact copy and ignoring stored asks doubt no data."""
    benign = (
        delta("MKT-A", seq=7, side="yes", price=41, new_size=5),  # stored before seq 6
        delta("MKT-A", seq=6, side="yes", price=38, new_size=1),
        delta("MKT-A", seq=7, side="yes", price=41, new_size=5),  # an exact copy
        snapshot("MKT-A", seq=8, yes_bids={40: 2}, no_bids={55: 1}, yes_asks={44: 1}),
    )
    views = views_by_ticker(make_session(*CLEAN, *benign))

    repairs = reconstruct_books(make_session(*CLEAN, *benign)).report.repairs
    assert {
        RepairKind.STORED_OUT_OF_ORDER,
        RepairKind.DUPLICATE_SEQUENCE,
        RepairKind.STORED_ASKS_DISAGREE,
    } <= set(repairs)
    assert views["MKT-A"].data_quality_score == 1.0


def test_crossed_steps_lower_quality():
    crossing = (
        delta("MKT-A", seq=6, side="no", price=60, new_size=1),  # 40 + 60 = 100: crossed
        delta("MKT-A", seq=7, side="no", price=61, new_size=1),  # still crossed
        delta("MKT-A", seq=8, side="no", price=61, new_size=0),
        delta("MKT-A", seq=9, side="no", price=60, new_size=0),  # back to 40 / 55
    )
    a = views_by_ticker(make_session(*CLEAN, *crossing))["MKT-A"]

    assert len(a) == 9  # the crossed steps are kept
    # Steps after seq 6, 7 and 8 are crossed (NO bid 60 or 61 against YES bid 41).
    assert a.data_quality_score == pytest.approx(9 / (9 + 3))


def test_sequence_gaps_scale_every_markets_quality_by_the_share_that_arrived():
    # seq 1..5 (MKT-A), then MKT-B at 8, 9, 10: 6 and 7 never arrived, span 10.
    other = (
        snapshot("MKT-B", seq=8, yes_bids={30: 1}, no_bids={60: 1}),
        delta("MKT-B", seq=9, side="yes", price=31, new_size=1),
        delta("MKT-B", seq=10, side="yes", price=32, new_size=1),
    )
    views = views_by_ticker(make_session(*CLEAN, *other))

    assert views["MKT-A"].data_quality_score == pytest.approx(8 / 10)
    assert views["MKT-B"].data_quality_score == pytest.approx(8 / 10)


def test_repairs_and_gaps_multiply():
    rows = (
        *CLEAN,
        delta("MKT-A", seq=6, side="yes", price=0, new_size=1),  # dropped
        delta("MKT-A", seq=6, side="yes", price=0, new_size=1),  # and repeated
        delta("MKT-A", seq=10, side="yes", price=42, new_size=1),  # 7, 8, 9 missing
    )
    a = views_by_ticker(make_session(*rows))["MKT-A"]

    # 6 steps; 2 dropped rows (the bad one twice); 7 of a span of 10 arrived.
    assert len(a) == 6
    assert a.data_quality_score == pytest.approx(6 / (6 + 2) * 7 / 10)


# -- activity_bursts and quiet_periods ------------------------------------------------------
#  t (ms)                                           gap before     with the defaults
#  0 100 200 300 400 500                            100 each       6 close events: burst
#  2500 2600 2700                                   2000, 100      only 3 close: no burst
#  72700 73700 74700 75700 76700                    70000, 1000    quiet; 5 close: burst
#  137700                                           61000          quiet
#  197700                                           60000          not longer: not quiet
ACTIVITY_MS = [0, 100, 200, 300, 400, 500, 2500, 2600, 2700]
ACTIVITY_MS += [72_700, 73_700, 74_700, 75_700, 76_700, 137_700, 197_700]


def activity(config=None) -> MarketSessionView:
    return views_by_ticker(make_session(*quotes_at("MKT-A", ACTIVITY_MS, 1)), config)["MKT-A"]


def test_bursts_and_quiet_periods_with_the_default_thresholds():
    view = activity()

    assert ViewConfig() == ViewConfig(burst_gap_ms=1_000, burst_min_events=5, quiet_gap_ms=60_000)
    assert view.activity_bursts == 2
    assert view.quiet_periods == 2


@pytest.mark.parametrize(
    ("config", "bursts", "quiet"),
    [
        (ViewConfig(burst_min_events=3), 3, 2),  # the run of 3 now counts
        (ViewConfig(burst_min_events=6), 1, 2),  # only the run of 6
        (ViewConfig(burst_min_events=7), 0, 2),
        (ViewConfig(burst_gap_ms=999), 1, 2),  # events 1000 ms apart are no longer close
        (ViewConfig(burst_gap_ms=2_000, burst_min_events=9), 1, 2),  # 0..2700 is one run
        (ViewConfig(quiet_gap_ms=59_999), 2, 3),  # the 60000 gap is now quiet
        (ViewConfig(quiet_gap_ms=1_500), 2, 4),  # and the 2000 one
        (ViewConfig(quiet_gap_ms=65_000), 2, 1),
    ],
)
def test_view_config_changes_bursts_and_quiet_periods(config, bursts, quiet):
    view = activity(config)

    assert (view.activity_bursts, view.quiet_periods) == (bursts, quiet)


def test_a_single_step_has_no_burst_and_no_quiet_period():
    view = views_by_ticker(make_session(snapshot("MKT-A", seq=1, yes_bids={40: 1})))["MKT-A"]

    assert len(view) == 1
    assert (view.activity_bursts, view.quiet_periods) == (0, 0)


# -- Parquet -------------------------------------------------------------------------------
def simulated_views(session_id: int, seed: int, markets: int = 12) -> list[MarketSessionView]:
    return build_market_views(
        simulate_session(
            session_id, seed, SimulatorConfig(population=Population.TWO_CLASS, markets=markets)
        )
    )


@pytest.mark.parametrize(("session_id", "seed"), [(1, 5), (3, 11)])
def test_parquet_round_trip_is_lossless_on_simulated_sessions(tmp_path, session_id, seed):
    views = simulated_views(session_id, seed)
    path = write_views(views, tmp_path / "views.parquet")

    assert path == tmp_path / "views.parquet"
    assert_views_identical(read_views(path), views)
    assert read_views(path) == views


def test_parquet_round_trip_keeps_an_empty_side_and_other_level_counts(tmp_path):
    config = ViewConfig(top_levels=3)
    views = build_market_views(make_session(*SHAPE_ROWS, session_id=9), config)
    assert views[1].best_no_bid.tolist() == [0, 0]  # MKT-B: NO side empty

    assert_views_identical(read_views(write_views(views, tmp_path / "v.parquet")), views)


def test_views_of_several_sessions_share_a_file(tmp_path):
    views = simulated_views(1, 5, markets=4) + build_market_views(make_session(*SPREAD_ROWS))
    path = write_views(views, tmp_path / "v.parquet")

    assert_views_identical(read_views(path), views)
    assert [d["session_id"] for d in view_descriptions(path)] == [1] * 4 + [1]


def test_an_empty_list_of_views_round_trips(tmp_path):
    path = write_views([], tmp_path / "empty.parquet")

    assert read_views(path) == []
    assert view_descriptions(path) == []


def test_view_descriptions_are_the_views_summaries(tmp_path):
    views = simulated_views(2, 7)
    path = write_views(views, tmp_path / "views.parquet")

    assert view_descriptions(path) == [v.describe() for v in views]


def test_view_descriptions_never_read_the_step_data(tmp_path):
    views = simulated_views(2, 7)
    path = write_views(views, tmp_path / "views.parquet")
    # Overwrite the column chunks with garbage, keeping the footer (the last
    # footer length + 8 bytes) and the leading magic intact.
    data = bytearray(path.read_bytes())
    footer = int.from_bytes(data[-8:-4], "little") + 8
    data[4 : len(data) - footer] = b"\xff" * (len(data) - footer - 4)
    path.write_bytes(bytes(data))

    assert view_descriptions(path) == [v.describe() for v in views]
    with pytest.raises(ViewsDamaged, match="cannot be decoded"):  # garbled pages
        read_views(path)


def test_writing_is_atomic_and_reproducible(tmp_path):
    views = simulated_views(1, 5)
    path = tmp_path / "nested" / "views.parquet"

    write_views(views, path)
    first = path.read_bytes()
    write_views(views, path)

    assert os.listdir(path.parent) == ["views.parquet"]  # no temporary file left
    assert path.read_bytes() == first
    assert pq.ParquetFile(path).metadata.num_rows == sum(len(v) for v in views)


def test_a_write_replaces_the_previous_file(tmp_path):
    path = tmp_path / "views.parquet"
    write_views(simulated_views(1, 5), path)
    replacement = build_market_views(make_session(*SPREAD_ROWS))

    write_views(replacement, path)

    assert_views_identical(read_views(path), replacement)
    assert os.listdir(tmp_path) == ["views.parquet"]


def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path):
    path = tmp_path / "views.parquet"
    old = build_market_views(make_session(*SPREAD_ROWS))
    write_views(old, path)
    before = path.read_bytes()

    def one_batch_then_fail():  # the first row group is on disk when the second fails
        yield simulated_views(1, 5)
        raise OSError("disk full")

    with pytest.raises(OSError, match="disk full"):
        write_view_batches(one_batch_then_fail(), path)

    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["views.parquet"]


# -- scale and determinism -----------------------------------------------------------------
def test_every_reconstructed_event_is_in_exactly_one_step_of_one_view():
    raw = simulate_session(
        4,
        seed=21,
        config=SimulatorConfig(
            population=Population.TWO_CLASS, markets=60, median_events_per_market=200
        ),
    )
    views = build_market_views(raw)
    books = reconstruct_books(raw)

    assert len(views) == 60
    # The simulator's data is clean: every raw event is reconstructed.
    assert len(books) == raw.snapshots.num_rows + raw.deltas.num_rows
    assert sum(len(v) for v in views) < len(books) / 2  # a book change is several events
    covered = []
    for view in views:
        rows = books.market_rows(view.market_ticker)
        sequences, times = books.sequence_number[rows], books.timestamp_ms[rows]
        ends = np.searchsorted(sequences, view.sequence_numbers)
        np.testing.assert_array_equal(sequences[ends], view.sequence_numbers)
        assert ends[-1] == len(sequences) - 1, view.market_ticker
        # Each step is the run of events up to its last one, all of its millisecond, and
        # the next event starts a new millisecond.
        step_of_event = np.searchsorted(ends, np.arange(len(sequences)))
        np.testing.assert_array_equal(times, view.timestamps_ms[step_of_event])
        assert (times[ends[:-1] + 1] != times[ends[:-1]]).all(), view.market_ticker
        np.testing.assert_array_equal(view.best_yes_bid, books.best_yes_bid[rows][ends])
        np.testing.assert_array_equal(view.no_bid_sizes, books.no_bid_depth[rows][ends])
        covered.append(sequences)
    # The events of all views together are the session's, each once.
    all_sequences = np.sort(np.concatenate(covered))
    raw_sequences = np.sort(
        np.concatenate(
            [
                raw.snapshots.column("sequence_number").to_numpy(),
                raw.deltas.column("sequence_number").to_numpy(),
            ]
        )
    )
    np.testing.assert_array_equal(all_sequences, raw_sequences)


def test_the_same_raw_session_gives_equal_views():
    raw = simulate_session(
        2, seed=9, config=SimulatorConfig(population=Population.TWO_CLASS, markets=20)
    )

    assert_views_identical(build_market_views(raw), build_market_views(raw))
    again = simulate_session(
        2, seed=9, config=SimulatorConfig(population=Population.TWO_CLASS, markets=20)
    )
    assert_views_identical(build_market_views(again), build_market_views(raw))


def test_view_equality_compares_the_step_data():
    views = simulated_views(1, 5, markets=3)
    changed = views[0].features.copy()
    changed[-1, 0] += 1

    assert views[0] == simulated_views(1, 5, markets=3)[0]
    assert views[0] != MarketSessionView(**{**vars(views[0]), "features": changed})
    assert views[0] != views[1]


# -- the chunked path --------------------------------------------------------------------
def faulty_session_rows() -> tuple:
    """Three markets with the repairs a view's statistics read: MKT-A crosses (a defect),
    MKT-C has no snapshot (rejected), and seq 11, 12 never arrived (a session-wide gap)."""
    crossing = (
        delta("MKT-A", seq=6, side="no", price=60, new_size=1),
        delta("MKT-A", seq=7, side="no", price=60, new_size=0, ts=T0_MS + 500),
    )
    other = (
        snapshot("MKT-B", seq=8, yes_bids={30: 1}, no_bids={60: 1}, ts=T0_MS + 100),
        delta("MKT-C", seq=9, side="yes", price=31, new_size=1),
        delta("MKT-B", seq=10, side="yes", price=31, new_size=1, ts=T0_MS + 900),
        delta("MKT-B", seq=13, side="yes", price=32, new_size=1, ts=T0_MS + 9_000),
    )
    return (*CLEAN, *crossing, *other)


@pytest.mark.parametrize("chunk_events", [1, 4, 7])
def test_views_and_report_do_not_depend_on_the_chunk_size(chunk_events):
    """Each group of markets is built alone; coverage, the gap share and every market's
    own defects still come out as from the whole session."""
    raw = make_session(*faulty_session_rows())
    whole = SessionViews(raw)
    chunked = SessionViews(raw, ViewConfig(chunk_events=chunk_events))
    whole_views = [v for batch in whole.batches() for v in batch]
    batches = list(chunked.batches())

    assert len(batches) == (2 if chunk_events < 9 else 1)  # MKT-A has 9 events
    assert_views_identical([v for batch in batches for v in batch], whole_views)
    assert [v.market_ticker for v in whole_views] == ["MKT-A", "MKT-B"]
    # MKT-A: 7 steps, 1 of them crossed; seq 1..13 with 11 and 12 missing.
    assert whole_views[0].data_quality_score == pytest.approx(7 / 8 * 11 / 13)
    assert whole_views[1].market_coverage < 1.0
    for name in ("repairs", "rejected", "market_defects", "examples"):
        assert getattr(chunked.report, name) == getattr(whole.report, name), name
    assert chunked.report.repairs[RepairKind.CROSSED_BOOK] == 1
    assert set(chunked.report.rejected) == {"MKT-C"}


def test_a_simulated_session_in_small_chunks_equals_the_whole():
    raw = simulate_session(
        3, seed=4, config=SimulatorConfig(population=Population.TWO_CLASS, markets=40)
    )
    whole = build_market_views(raw)
    small = build_market_views(raw, ViewConfig(chunk_events=500))

    assert len(list(SessionViews(raw, ViewConfig(chunk_events=500)).batches())) > 5
    assert_views_identical(small, whole)


def test_statistics_of_many_markets_are_each_markets_own():
    """Computed for all markets at once, each statistic equals the one computed from the
    view's own steps alone (nothing leaks across a market boundary)."""
    raw = simulate_session(
        5, seed=13, config=SimulatorConfig(population=Population.TWO_CLASS, markets=80)
    )
    views = build_market_views(raw)
    session_times = np.sort(np.concatenate([v.timestamps_ms for v in views]))
    config = ViewConfig()

    for v in views:
        bid, ask = v.best_yes_bid.astype(float), v.best_yes_ask.astype(float)
        quoted = (v.best_yes_bid > 0) & (v.best_no_bid > 0)
        mid = (bid + ask) / 2
        moves = np.diff(mid)[quoted[1:] & quoted[:-1]]
        gaps = np.diff(v.timestamps_ms)  # the simulator's times never step back
        close = np.r_[False, gaps <= config.burst_gap_ms, False].astype(int)
        runs = np.flatnonzero(np.diff(close) == -1) - np.flatnonzero(np.diff(close) == 1)
        inside = ((session_times >= v.start_ms) & (session_times <= v.end_ms)).sum()

        assert v.avg_spread == (pytest.approx((ask - bid)[quoted].mean()) if quoted.any() else 100)
        assert v.volatility_score == pytest.approx(moves.std() if len(moves) > 1 else 0.0)
        assert v.activity_bursts == (runs + 1 >= config.burst_min_events).sum()
        assert v.quiet_periods == (gaps > config.quiet_gap_ms).sum()
        assert v.market_coverage == pytest.approx(inside / len(session_times))


def test_batches_stream_into_one_file_a_row_group_each(tmp_path):
    raw = simulate_session(
        1, seed=6, config=SimulatorConfig(population=Population.TWO_CLASS, markets=30)
    )
    builder = SessionViews(raw, ViewConfig(chunk_events=1_000))
    path = tmp_path / "views.parquet"

    described = write_view_batches(builder.batches(), path)

    views = build_market_views(raw)
    assert pq.ParquetFile(path).num_row_groups > 3
    assert_views_identical(read_views(path), views)
    assert described == view_descriptions(path) == [v.describe() for v in views]


def test_a_session_without_markets_writes_an_empty_file(tmp_path):
    path = tmp_path / "views.parquet"
    builder = SessionViews(make_session(delta("MKT-C", seq=1, side="yes", price=3, new_size=1)))

    assert write_view_batches(builder.batches(), path) == []
    assert read_views(path) == []
    assert set(builder.report.rejected) == {"MKT-C"}


# -- a session read a batch at a time ----------------------------------------------------
def session_wide_faults() -> tuple:
    """The chunked path's faults, plus those only the whole session can tell: a row with
    no ticker, a sequence number far from the session's, and a number two markets in
    different groups share (MKT-B and MKT-D both carry 16)."""
    return (
        *faulty_session_rows(),
        delta(None, seq=14, side="yes", price=33, new_size=1),
        delta("MKT-B", seq=9 * 10**15, side="yes", price=34, new_size=1),
        snapshot("MKT-D", seq=15, yes_bids={20: 1}, no_bids={70: 2}, ts=T0_MS + 9_500),
        delta("MKT-B", seq=16, side="yes", price=33, new_size=2, ts=T0_MS + 9_600),
        delta("MKT-D", seq=16, side="yes", price=21, new_size=2, ts=T0_MS + 9_700),
    )


REPORT_FIGURES = ("repairs", "market_defects", "missing_sequence_numbers", "sequence_span")


@pytest.mark.parametrize(("clean_events", "rows"), [(1, 1), (7, 2), (12, 3), (10_000, 5)])
def test_a_session_read_in_batches_gives_the_views_and_report_of_the_whole(clean_events, rows):
    """Cleaned a group of markets at a time, the session-wide checks (outliers, gaps,
    shared numbers, rows with no ticker) still see the whole session."""
    raw = make_session(*session_wide_faults())
    whole = SessionViews(raw)
    whole_views = [v for batch in whole.batches() for v in batch]
    config = ViewConfig(clean_events=clean_events, chunk_events=clean_events)

    with SessionViews.streamed(InBatches(raw, rows), config) as streamed:
        views = [v for batch in streamed.batches() for v in batch]

    assert_views_identical(views, whole_views)
    assert [v.market_ticker for v in views] == ["MKT-A", "MKT-B", "MKT-D"]
    for name in REPORT_FIGURES:
        assert getattr(streamed.report, name) == getattr(whole.report, name), name
    assert streamed.report.rejected.keys() == whole.report.rejected.keys() == {"MKT-C"}
    repairs = streamed.report.repairs
    assert repairs[RepairKind.SEQUENCE_SHARED] == repairs[RepairKind.SEQUENCE_OUTLIER] == 1
    assert repairs[RepairKind.MISSING_MARKET_TICKER] == repairs[RepairKind.CROSSED_BOOK] == 1
    assert repairs[RepairKind.SEQUENCE_GAP] >= 1


def test_the_session_wide_tally_scanned_in_small_chunks_counts_as_the_whole(monkeypatch):
    """The sorted sequence numbers are scanned a chunk at a time: gaps, repeats and their
    examples carry across chunk boundaries."""
    raw = make_session(*session_wide_faults())
    whole = SessionViews(raw)
    monkeypatch.setattr(sequence, "CHUNK", 2)

    with SessionViews.streamed(InBatches(raw, 3), ViewConfig(clean_events=5)) as streamed:
        views = [v for batch in streamed.batches() for v in batch]

    assert_views_identical(views, [v for batch in whole.batches() for v in batch])
    for name in (*REPORT_FIGURES, "examples"):
        assert getattr(streamed.report, name) == getattr(whole.report, name), name


def test_a_stored_session_streams_into_the_views_of_the_whole_and_leaves_no_scratch(tmp_path):
    raw = simulate_session(
        3, seed=4, config=SimulatorConfig(population=Population.TWO_CLASS, markets=40)
    )
    store = ParquetSessionStore(tmp_path / "store")
    store.write_session(raw)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    config = ViewConfig(clean_events=2_000, chunk_events=500)

    with store.open_session(3) as stored, SessionViews.streamed(stored, config, scratch) as built:
        batches = list(built.batches())
        spilled = list(scratch.rglob("events-*.npz"))

    assert len(spilled) >= raw.num_events // 2_000
    assert_views_identical([v for batch in batches for v in batch], build_market_views(raw))
    assert list(scratch.iterdir()) == []


def test_groups_of_markets_stay_within_their_size_and_read_back_the_same(tmp_path):
    raw = simulate_session(
        5, seed=2, config=SimulatorConfig(population=Population.TWO_CLASS, markets=30)
    )
    groups = CleanedGroups(InBatches(raw, 1_000), 2_000, tmp_path)

    cleaned = list(groups.clean())
    again = list(groups.cleaned())

    assert len(cleaned) > 2
    assert all(len(events) <= 2_000 or len(events.tickers) == 1 for events in cleaned)
    assert [t for events in cleaned for t in events.tickers] == clean_session(raw).tickers
    for events, read in zip(cleaned, again, strict=True):
        assert events.tickers == read.tickers
        for name in ("market", "sequence_number", "timestamp_ms", "level", "snapshot_books"):
            assert np.array_equal(getattr(events, name), getattr(read, name)), name
    assert len(list(tmp_path.glob("*.npz"))) == len(cleaned)
    assert list(tmp_path.glob("*.arrow")) == []  # each group's rows, deleted once cleaned
