"""Difficulty scores and training filters, from the small per-view statistics only.

Difficulty (in [0, 1], higher = harder) blends the three things that make a market hard
to trade profitably, each mapped to [0, 1) by a saturating curve:

    difficulty = 0.5 * s / (s + 10)      s = avg_spread in cents (10 cents -> 0.25)
               + 0.3 * v / (v + 1)       v = volatility_score, cents per step (1 -> 0.15)
               + 0.2 * (1 - c)           c = market_coverage in [0, 1]

Tighter, calmer and better-covered markets are easier; the score is monotone in each
input and deterministic. Spread weighs most: crossing it is what every trade pays.

Filters exclude a view from training, each with a reason a person can read: fewer steps
than ``min_episode_length`` (default 50), coverage below ``min_coverage`` (default 0.10)
and data quality below ``min_data_quality`` (default 0.5). Excluded views stay in the
table, flagged, so that nothing disappears without a trace.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Self

import numpy as np
import pyarrow as pa

from kalshi_pipeline.config_fields import Values, described, flat_from_json, flat_to_json

SPREAD_HALF_POINT_CENTS = 10.0
VOLATILITY_HALF_POINT_CENTS = 1.0
WEIGHTS = {"spread": 0.5, "volatility": 0.3, "coverage": 0.2}


@dataclass(frozen=True, kw_only=True)
class FilterConfig:
    """Which views are fit for training (each field's help is its command-line help and
    Dagster description: :mod:`kalshi_pipeline.config_fields`)."""

    min_episode_length: int = described(
        50, "views with fewer steps are not trained on", values=Values.POSITIVE_INT
    )
    min_coverage: float = described(
        0.10, "least share of the session's steps a view must span", values=Values.FRACTION
    )
    min_data_quality: float = described(0.5, "least data quality score", values=Values.FRACTION)

    def to_json(self) -> dict:
        return flat_to_json(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return flat_from_json(cls, data)

    def __post_init__(self) -> None:
        if self.min_episode_length < 1:
            raise ValueError(f"min_episode_length must be 1 or more, got {self.min_episode_length}")
        for name in ("min_coverage", "min_data_quality"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} must be in [0, 1], got {getattr(self, name)!r}")


def difficulty_score(avg_spread, volatility_score, market_coverage) -> np.ndarray:
    """Vectorised difficulty in [0, 1] (see the module docstring)."""
    spread = np.maximum(np.asarray(avg_spread, dtype=np.float64), 0)
    volatility = np.maximum(np.asarray(volatility_score, dtype=np.float64), 0)
    coverage = np.clip(np.asarray(market_coverage, dtype=np.float64), 0, 1)
    return (
        WEIGHTS["spread"] * spread / (spread + SPREAD_HALF_POINT_CENTS)
        + WEIGHTS["volatility"] * volatility / (volatility + VOLATILITY_HALF_POINT_CENTS)
        + WEIGHTS["coverage"] * (1 - coverage)
    )


# One boolean column per filter in the scores table: (column, the statistic, the
# FilterConfig limit it must reach, the reason a view fails it). A NaN or infinite
# statistic fails every filter it takes part in.
FILTERS = (
    ("long_enough", "length", "min_episode_length", "too short: {value} steps < {limit}"),
    ("covered", "market_coverage", "min_coverage", "low coverage: {value:.4g} < {limit:.4g}"),
    (
        "good_quality", "data_quality_score", "min_data_quality",
        "poor data quality: {value:.4g} < {limit:.4g}",
    ),
)  # fmt: skip
# The statistics that must be finite for a view to be used (the ``finite`` column).
FINITE_STATISTICS = ("market_coverage", "data_quality_score", "avg_spread", "volatility_score")


def filter_flags(description: Mapping, config: FilterConfig) -> dict[str, bool]:
    """Whether a view passes each filter (``FILTERS``), and ``finite`` statistics."""
    flags = {
        column: math.isfinite(description[stat]) and description[stat] >= getattr(config, limit)
        for column, stat, limit, _ in FILTERS
    }
    flags["finite"] = all(math.isfinite(description[name]) for name in FINITE_STATISTICS)
    return flags


def exclusion_reasons(description: Mapping, config: FilterConfig) -> list[str]:
    """Why a view is unfit for training (empty when it passes).

    A statistic that is NaN or infinite compares false with every threshold, so it is a
    reason of its own (views are checked when built; this guards descriptions from
    elsewhere).
    """
    flags = filter_flags(description, config)
    reasons = [
        f"non-finite {name}: {description[name]}"
        for name in FINITE_STATISTICS
        if not math.isfinite(description[name])
    ]
    for column, stat, limit, reason in FILTERS:
        if not flags[column] and math.isfinite(description[stat]):
            reasons.append(reason.format(value=description[stat], limit=getattr(config, limit)))
    return reasons


def score_views(descriptions: Iterable[Mapping], config: FilterConfig | None = None) -> pa.Table:
    """The difficulty table: one row per view description, with one boolean column per
    filter (``long_enough``, ``covered``, ``good_quality``; ``finite``), ``passes_filters``
    and the reasons.

    ``descriptions`` are the per-view dicts of
    :func:`kalshi_pipeline.market.views.view_descriptions` (or ``view.describe()``), so this never
    needs the views' step data. Rows are sorted by (session_id, market_ticker).
    """
    config = config or FilterConfig()
    rows = sorted(descriptions, key=lambda d: (d["session_id"], d["market_ticker"]))
    reasons = [exclusion_reasons(d, config) for d in rows]
    flags = [filter_flags(d, config) for d in rows]

    def column(name):
        return [d[name] for d in rows]

    difficulty = difficulty_score(
        column("avg_spread"), column("volatility_score"), column("market_coverage")
    )
    return pa.table(
        {
            "session_id": pa.array(column("session_id"), pa.int64()),
            "market_ticker": pa.array(column("market_ticker"), pa.string()),
            "length": pa.array(column("length"), pa.int64()),
            "avg_spread": pa.array(column("avg_spread"), pa.float64()),
            "volatility_score": pa.array(column("volatility_score"), pa.float64()),
            "market_coverage": pa.array(column("market_coverage"), pa.float64()),
            "data_quality_score": pa.array(column("data_quality_score"), pa.float64()),
            "activity_bursts": pa.array(column("activity_bursts"), pa.int64()),
            "quiet_periods": pa.array(column("quiet_periods"), pa.int64()),
            "difficulty": pa.array(difficulty, pa.float64()),
            **{
                name: pa.array([f[name] for f in flags], pa.bool_())
                for name in (*(column for column, *_ in FILTERS), "finite")
            },
            "passes_filters": pa.array([not r for r in reasons], pa.bool_()),
            "exclusion_reasons": pa.array(["; ".join(r) for r in reasons], pa.string()),
        }
    )
