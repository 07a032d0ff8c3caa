"""Order and cancel latencies (``kalshi_pipeline.env.latency``)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from kalshi_pipeline.config_fields import CHOICES
from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.env.latency import LATENCY_DISTRIBUTIONS, LatencyModel


def test_constant_returns_the_settings_and_leaves_the_rng_alone():
    rng = np.random.default_rng(7)
    before = rng.bit_generator.state
    model = LatencyModel(entry_ms=120, cancel_ms=30)
    assert [model.entry(rng) for _ in range(5)] == [120] * 5
    assert [model.cancel(rng) for _ in range(5)] == [30] * 5
    assert rng.bit_generator.state == before


def test_cancel_defaults_to_the_entry_latency():
    rng = np.random.default_rng(0)
    assert LatencyModel(entry_ms=75).cancel(rng) == 75
    assert LatencyModel(entry_ms=75, cancel_ms=0).cancel(rng) == 0


def draws(model: LatencyModel, seed: int, count: int = 50) -> list[int]:
    rng = np.random.default_rng(seed)
    return [model.entry(rng) for _ in range(count)]


def test_lognormal_is_reproducible_from_its_seed():
    model = LatencyModel(entry_ms=100, distribution="lognormal")
    assert draws(model, 3) == draws(model, 3)
    assert draws(model, 3) != draws(model, 4)
    assert len(set(draws(model, 3))) > 10  # it varies


def test_lognormal_draw_is_the_formula():
    rng = np.random.default_rng(11)
    z = np.random.default_rng(11).standard_normal()
    model = LatencyModel(entry_ms=100, distribution="lognormal", sigma=0.3)
    assert model.entry(rng) == round(100 * np.exp(0.3 * z))


def test_lognormal_median_is_the_setting_and_draws_are_whole_non_negative():
    rng = np.random.default_rng(2024)
    model = LatencyModel(entry_ms=200, cancel_ms=50, distribution="lognormal", sigma=0.8)
    entries = [model.entry(rng) for _ in range(10_000)]
    cancels = [model.cancel(rng) for _ in range(10_000)]
    assert all(type(x) is int and x >= 0 for x in entries + cancels)
    assert abs(np.median(entries) - 200) <= 10
    assert abs(np.median(cancels) - 50) <= 2.5
    assert max(entries) > 400 and min(entries) < 100  # spread, as sigma 0.8 gives


def test_lognormal_median_zero_is_zero_without_drawing():
    rng = np.random.default_rng(5)
    before = rng.bit_generator.state
    model = LatencyModel(entry_ms=0, distribution="lognormal")
    assert model.entry(rng) == 0 and model.cancel(rng) == 0
    assert rng.bit_generator.state == before


def test_from_env_reads_the_config():
    config = EnvConfig(
        latency_ms=40, cancel_latency_ms=10, latency_distribution="lognormal", latency_sigma=0.2
    )
    assert LatencyModel.from_env(config) == LatencyModel(
        entry_ms=40, cancel_ms=10, distribution="lognormal", sigma=0.2
    )
    assert LatencyModel.from_env(EnvConfig()) == LatencyModel()


def test_distributions_are_the_env_configs_choices():
    (field,) = [f for f in dataclasses.fields(EnvConfig) if f.name == "latency_distribution"]
    assert field.metadata[CHOICES] == LATENCY_DISTRIBUTIONS


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"entry_ms": -1}, "entry_ms"),
        ({"entry_ms": 1.5}, "entry_ms"),
        ({"cancel_ms": -5}, "cancel_ms"),
        ({"distribution": "normal"}, "unknown latency distribution 'normal'"),
        ({"sigma": 0.0}, "sigma"),
        ({"sigma": -0.1}, "sigma"),
        ({"sigma": float("nan")}, "sigma"),
        ({"sigma": float("inf")}, "sigma"),
        ({"sigma": 200.0}, "sigma"),  # would overflow exp() on a large draw
    ],
)
def test_bad_settings_raise_naming_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        LatencyModel(**kwargs)
