"""The checks of ``market_views``, on views whose values are known."""

from __future__ import annotations

import dataclasses

import numpy as np

from kalshi_pipeline.defs.checks import non_finite_features, non_finite_statistics, view_checks
from kalshi_pipeline.market.cleaning import clean_session
from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.market.views import build_market_views
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.workflow import select_views
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
    views = build_market_views(simulate_session(1, 0, SimulatorConfig(markets=12)))
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
