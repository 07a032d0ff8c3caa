"""The simulator's knobs: :class:`SimulatorConfig`, its :class:`Population`, and the demo
store's size and seed.

Kept apart from the simulation itself so that the CLI, the demo and the tests can name a
configuration without reading how sessions are made (``docs/simulator.md`` describes what
each knob does to a session).

Two populations of markets share the knobs. ``kalshi`` (the default) is calibrated to
recorded Kalshi books and trades (:mod:`~kalshi_pipeline.sources.kalshi_population`);
``two-class`` is the earlier simulator of liquid and illiquid markets, kept bit for bit
for the figures measured on it. A knob left ``None`` takes its population's default
(:data:`POPULATION_DEFAULTS`); the knobs of the two-class population's activity and
liquidity (:data:`TWO_CLASS_KNOBS`) mean nothing to the kalshi population, and setting one
for it is an error rather than a knob silently ignored.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Self

# The demo's store has sessions 1..4 of seed 0 (`kalshi-pipeline generate`'s defaults too,
# with SimulatorConfig's markets); its config is DEMO_SIMULATOR, below.
DEMO_SESSIONS, DEMO_SEED = 4, 0


class Population(StrEnum):
    """Which markets the simulator makes (``docs/simulator.md``)."""

    KALSHI = "kalshi"  # calibrated to recorded Kalshi books and trades, with a trade tape
    TWO_CLASS = "two-class"  # liquid and illiquid markets, no trade tape


# A knob left None takes its population's default. Kalshi sessions are long and sparse,
# as recorded ones are (a recorded session ran 17.8 hours; the median market changes its
# book three or four times an hour).
POPULATION_DEFAULTS: dict[Population, dict[str, Any]] = {
    Population.KALSHI: {
        "markets": 200,
        "session_minutes": 1080.0,
        "drift_cents_per_step": 0.3,
        "noise_cents_per_step": 0.05,
    },
    Population.TWO_CLASS: {
        "markets": 40,
        "session_minutes": 120.0,
        "drift_cents_per_step": 0.8,
        "noise_cents_per_step": 0.2,
        "median_events_per_market": 160.0,
        "events_sigma": 1.0,
        "liquid_fraction": 0.2,
    },
}
# Knobs of the two-class population only: its activity and its two kinds of market.
TWO_CLASS_KNOBS = ("median_events_per_market", "events_sigma", "liquid_fraction")


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """Knobs of the simulator; the defaults give the shape of session in
    ``docs/simulator.md``. ``None``: the population's default (:meth:`resolved`).

    The signal's knobs (``drift_cents_per_step``, ``pressure_persistence``,
    ``noise_cents_per_step``, ``imbalance_sensitivity``) are OUR ASSUMPTION, not a
    measured fact: recorded data do not say how strongly order flow predicts prices.
    """

    population: Population = Population.KALSHI
    markets: int | None = None
    median_events_per_market: float | None = None
    events_sigma: float | None = None
    liquid_fraction: float | None = None
    session_minutes: float | None = None
    signal: bool = True
    drift_cents_per_step: float | None = None
    pressure_persistence: float = 0.97
    noise_cents_per_step: float | None = None
    imbalance_sensitivity: float = 2.0
    ticker_pool_factor: float = 1.5
    resnapshot_probability: float = 0.2

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "population", Population(self.population))
        except ValueError:
            names = ", ".join(p.value for p in Population)
            raise ValueError(
                f"unknown simulator population {self.population!r} (known: {names})"
            ) from None
        if self.population is Population.KALSHI:
            given = [k for k in TWO_CLASS_KNOBS if getattr(self, k) is not None]
            if given:
                raise ValueError(
                    f"{', '.join(given)}: a knob of the two-class population only; the "
                    "kalshi population's activity and liquidity are calibrated "
                    "(docs/simulator.md); select population='two-class' to use it"
                )

    def resolved(self) -> SimulatorConfig:
        """This config with every knob left ``None`` set to its population's default."""
        defaults = POPULATION_DEFAULTS[self.population]
        return dataclasses.replace(
            self, **{k: v for k, v in defaults.items() if getattr(self, k) is None}
        )

    def to_json(self) -> dict[str, Any]:
        data = dataclasses.asdict(self)
        data["population"] = self.population.value
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)


# The demo's store: the two-class simulator with three liquid markets in five instead of
# one in five, and 60 markets a session instead of 40. The signal is the same (its
# strength is docs/simulator.md's assumption, not a measured fact); only liquid markets
# can pay for a taker's round trip, so a store with more of them lets the demo's short
# training (docs/training.md) find the signal and validation show it beyond noise. The
# calibrated kalshi population has no market liquid enough for a taker, so a demo on it
# could not show learning (docs/decisions/0012-calibrated-markets-and-the-trade-tape.md).
DEMO_SIMULATOR = SimulatorConfig(population=Population.TWO_CLASS, markets=60, liquid_fraction=0.6)
