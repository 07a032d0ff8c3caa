"""The simulator's knobs as a record, and the population each config names."""

from __future__ import annotations

import json

import pytest

from kalshi_pipeline.sources.simulator_config import (
    DEMO_SIMULATOR,
    POPULATION_DEFAULTS,
    Population,
    SimulatorConfig,
)


def test_simulator_config_round_trips_through_json():
    configs = (
        SimulatorConfig(),
        SimulatorConfig(population=Population.KALSHI, markets=7, session_minutes=30.0),
        SimulatorConfig(population="two-class", markets=7, signal=False, events_sigma=0.5),
    )
    for config in configs:
        assert SimulatorConfig.from_json(json.loads(json.dumps(config.to_json()))) == config
    assert SimulatorConfig(markets=7).to_json()["markets"] == 7
    assert SimulatorConfig(population="two-class").to_json()["population"] == "two-class"


def test_a_knob_left_none_takes_its_populations_default():
    for population, defaults in POPULATION_DEFAULTS.items():
        resolved = SimulatorConfig(population=population).resolved()
        assert resolved.population is population
        for knob, value in defaults.items():
            assert getattr(resolved, knob) == value
    kalshi = SimulatorConfig(population=Population.KALSHI).resolved()
    two_class = SimulatorConfig(population=Population.TWO_CLASS).resolved()
    # Kalshi sessions are long and sparse; a knob that is given is kept.
    assert kalshi.session_minutes > 4 * two_class.session_minutes
    assert SimulatorConfig(population=Population.KALSHI, markets=3).resolved().markets == 3
    assert DEMO_SIMULATOR.population is Population.TWO_CLASS


def test_a_two_class_knob_given_to_the_kalshi_population_is_refused_by_name():
    with pytest.raises(ValueError, match="liquid_fraction: a knob of the two-class"):
        SimulatorConfig(population=Population.KALSHI, liquid_fraction=0.5)
    with pytest.raises(ValueError, match="median_events_per_market, events_sigma"):
        SimulatorConfig(population="kalshi", median_events_per_market=10, events_sigma=0.3)
    with pytest.raises(ValueError, match="unknown simulator population 'three-class'"):
        SimulatorConfig(population="three-class")
