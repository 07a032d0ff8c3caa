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

# The demo's store (and `kalshi-pipeline generate`'s defaults): sessions 1..4, seed 0,
# SimulatorConfig's markets.
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
