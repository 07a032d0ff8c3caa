"""The view's config is a plain record: it round-trips through JSON."""

from __future__ import annotations

import json

from kalshi_pipeline.market.views.market_view import ViewConfig


def test_a_view_config_round_trips_through_json():
    config = ViewConfig(top_levels=3, burst_gap_ms=999, chunk_events=300)
    data = config.to_json()
    assert data["top_levels"] == 3 and data["clean_events"] == 1_048_576
    assert ViewConfig.from_json(json.loads(json.dumps(data))) == config
    assert ViewConfig.from_json(ViewConfig().to_json()) == ViewConfig()
