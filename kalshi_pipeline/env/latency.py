"""How long a request takes to reach the book, in whole milliseconds.

A new order arrives ``entry`` milliseconds after the decision that placed it, a cancel
``cancel`` milliseconds after the decision that asked for it (the entry latency unless set
apart). Two distributions:

* ``constant``: always the setting; the random generator is never touched, so a constant
  latency leaves every other draw of the episode where it was;
* ``lognormal``: ``round(median * exp(sigma * z))`` for one standard normal draw ``z``,
  whose median is the setting and whose spread grows with ``sigma``. A median of 0 gives 0
  without drawing.

Every latency is a non-negative int; the settings are checked when the model is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

LATENCY_DISTRIBUTIONS = ("constant", "lognormal")
# The lognormal's largest shape: beyond about 100, exp() of a draw overflows a float; at 10
# the median's 99.9th percentile is already e^31 times the median.
MAX_SIGMA = 10.0


def _check_ms(name: str, value: object) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or value < 0:
        raise ValueError(
            f"{name} must be a non-negative whole number of milliseconds, not {value!r}"
        )


@dataclass(frozen=True, kw_only=True)
class LatencyModel:
    """Entry and cancel latencies (see the module docstring for the distributions)."""

    entry_ms: int = 100
    cancel_ms: int | None = None
    distribution: str = "constant"
    sigma: float = 0.5

    def __post_init__(self) -> None:
        _check_ms("entry_ms", self.entry_ms)
        if self.cancel_ms is not None:
            _check_ms("cancel_ms", self.cancel_ms)
        if self.distribution not in LATENCY_DISTRIBUTIONS:
            raise ValueError(
                f"unknown latency distribution {self.distribution!r} "
                f"(one of {', '.join(LATENCY_DISTRIBUTIONS)})"
            )
        sigma = self.sigma
        if (
            not isinstance(sigma, int | float)
            or isinstance(sigma, bool)
            or not math.isfinite(sigma)
            or not 0 < sigma <= MAX_SIGMA
        ):
            raise ValueError(f"sigma must be a number in (0, {MAX_SIGMA}], not {sigma!r}")

    @classmethod
    def from_env(cls, config) -> LatencyModel:
        """The latency model of an ``EnvConfig`` (its ``latency_ms``, ``cancel_latency_ms``,
        ``latency_distribution``, ``latency_sigma``)."""
        return cls(
            entry_ms=config.latency_ms,
            cancel_ms=config.cancel_latency_ms,
            distribution=config.latency_distribution,
            sigma=config.latency_sigma,
        )

    def _draw(self, median: int, rng: np.random.Generator) -> int:
        if self.distribution == "constant" or median == 0:
            return median
        return round(median * math.exp(self.sigma * float(rng.standard_normal())))

    def entry(self, rng: np.random.Generator) -> int:
        """Milliseconds from a decision to its new order reaching the book."""
        return self._draw(self.entry_ms, rng)

    def cancel(self, rng: np.random.Generator) -> int:
        """Milliseconds from a decision to its cancel reaching the book."""
        return self._draw(self.entry_ms if self.cancel_ms is None else self.cancel_ms, rng)
