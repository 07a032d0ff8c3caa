"""The checks of ``market_views``, on views whose values are known, and one through Dagster."""

from __future__ import annotations

import dataclasses

import numpy as np
import pyarrow.compute as pc

from kalshi_pipeline.defs.checks import non_finite_features, non_finite_statistics, view_checks
from kalshi_pipeline.demo import _first_error as first_error
from kalshi_pipeline.market.cleaning import clean_session
from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.market.views import SessionViews, build_market_views
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session
from kalshi_pipeline.workflow import select_views
from kalshi_pipeline_tests.defs.conftest import MARKETS, ingest, metadata, simulated, store_at
from kalshi_pipeline_tests.factories import make_session


def test_the_data_quality_check_fails_on_a_non_finite_value():
    views = build_market_views(simulate_session(1, 0, SimulatorConfig(markets=6)))
    poisoned = dataclasses.replace(views[0], features=views[0].features.copy())
    poisoned.features[3, 7] = np.nan
    selected = select_views([v.describe() for v in views], FilterConfig()).to_pylist()
    report = clean_session(make_session()).report

    results = {
        r.check_name: r
        for r in view_checks(
            selected,
            report,
            non_finite_features([poisoned, *views[1:]]) + non_finite_statistics(selected),
        )
    }
    clean = {
        r.check_name: r
        for r in view_checks(
            selected, report, non_finite_features(views) + non_finite_statistics(selected)
        )
    }

    assert not results["data_quality"].passed
    assert views[0].market_ticker in results["data_quality"].description
    assert clean["data_quality"].passed


def test_the_filter_checks_list_exactly_the_views_their_filter_excludes():
    config = SimulatorConfig(population=Population.TWO_CLASS, markets=12)  # short and narrow
    views = build_market_views(simulate_session(1, 0, config))
    filters = FilterConfig(min_episode_length=60, min_coverage=0.3)
    selected = select_views([v.describe() for v in views], filters).to_pylist()

    results = {
        r.check_name: r for r in view_checks(selected, clean_session(make_session()).report, [])
    }

    short = {v.market_ticker for v in views if len(v) < 60}
    narrow = {v.market_ticker for v in views if v.market_coverage < 0.3}
    assert short and narrow  # the session has both kinds
    assert results["min_episode_length"].metadata["excluded"].value == len(short)
    assert results["min_coverage"].metadata["excluded"].value == len(narrow)
    listed = results["min_coverage"].metadata["views"].value
    assert all(ticker in listed for ticker in narrow)


def test_the_data_quality_check_fails_naming_a_session_whose_window_contradicts_its_events():
    raw = simulate_session(1, 0, SimulatorConfig(markets=6))
    start, end = raw.info.started_at, raw.info.ended_at
    swapped = dataclasses.replace(
        raw, info=dataclasses.replace(raw.info, started_at=end, ended_at=start)
    )
    for session, contradicted in ((raw, False), (swapped, True)):
        builder = SessionViews(session)
        views = [view for batch in builder.batches() for view in batch]
        selected = select_views([v.describe() for v in views], FilterConfig()).to_pylist()

        results = {r.check_name: r for r in view_checks(selected, builder.report, [])}

        quality = results["data_quality"]
        assert quality.passed is not contradicted
        if contradicted:
            assert "session 1: its recorded window contradicts its events" in quality.description
            assert "started_at" in quality.metadata["window"].value
            assert quality.metadata["usable_views"].value == 0


def test_the_market_views_asset_fails_data_quality_for_times_in_seconds(
    pipeline_home, instance, definitions
):
    """Through Dagster, as a user sees it: a stored session whose receive times are in
    seconds has views, none usable, and a failed check saying why."""
    raw = simulated(9)

    def in_seconds(table):
        index = table.schema.get_field_index("timestamp_ms")
        return table.set_column(
            index, "timestamp_ms", pc.divide(table.column("timestamp_ms"), 1000)
        )

    store_at(pipeline_home).write_session(
        dataclasses.replace(raw, snapshots=in_seconds(raw.snapshots), deltas=in_seconds(raw.deltas))
    )

    (result,) = ingest(definitions, instance, "9", raise_on_error=False)

    quality = {e.check_name: e for e in result.get_asset_check_evaluations()}["data_quality"]
    assert not quality.passed
    assert "session 9: its recorded window contradicts its events" in quality.description
    assert "outside its recorded window" in quality.description
    assert metadata(result, "market_views")["views"] == MARKETS
    # The demo's one line is the check's reason, not Dagster's "1 blocking asset check
    # failed".
    assert first_error(result) == (
        f"check data_quality of market_views failed: {' '.join(quality.description.split())}"
    )
