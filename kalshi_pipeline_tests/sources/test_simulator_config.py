"""The simulator's knobs as a record."""

from __future__ import annotations

import json

from kalshi_pipeline.sources.simulator_config import SimulatorConfig


def test_simulator_config_round_trips_through_json():
    for config in (SimulatorConfig(), SimulatorConfig(markets=7, signal=False, events_sigma=0.5)):
        assert SimulatorConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    assert SimulatorConfig(markets=7).to_json()["markets"] == 7
