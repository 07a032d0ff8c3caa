"""The simulator's knobs: :class:`SimulatorConfig` and the demo store's size and seed.

Kept apart from the simulation itself so that the CLI, the demo and the tests can name a
configuration without reading how sessions are made (``docs/simulator.md`` describes what
each knob does to a session).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

# The demo's store has sessions 1..4 of seed 0 (`kalshi-pipeline generate`'s defaults too,
# with SimulatorConfig's markets); its config is DEMO_SIMULATOR, below.
DEMO_SESSIONS, DEMO_SEED = 4, 0


@dataclass(frozen=True, kw_only=True)
class SimulatorConfig:
    """Knobs of the simulator; the defaults give the shape of session in
    ``docs/simulator.md``."""

    markets: int = 40
    median_events_per_market: float = 160.0
    events_sigma: float = 1.0
    liquid_fraction: float = 0.2
    session_minutes: float = 120.0
    signal: bool = True
    drift_cents_per_step: float = 0.8
    pressure_persistence: float = 0.97
    noise_cents_per_step: float = 0.2
    imbalance_sensitivity: float = 2.0
    ticker_pool_factor: float = 1.5
    resnapshot_probability: float = 0.2

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)


# The demo's store: the documented simulator with three liquid markets in five instead of
# one in five, and 60 markets a session instead of 40. The signal is the same (its
# strength is docs/simulator.md's assumption, not a measured fact); only liquid markets
# can pay for a round trip, so a store with more of them lets the demo's short training
# (docs/training.md) find the signal and validation show it beyond noise. The honesty
# check (docs/learning.md) keeps the default share.
DEMO_SIMULATOR = SimulatorConfig(markets=60, liquid_fraction=0.6)
