"""The statistics an evaluation reports: bootstrap intervals, wins needed, rank correlation.

Every interval of the report, of validation and of promotion is
:func:`bootstrap_interval`: scipy's 95% BCa bootstrap of the mean, seeded, with the
fallbacks where BCa is undefined spelled out. :func:`wins_needed` turns it round into
what "beyond noise" asks of a model that trades in a few markets only, and
:func:`spearman` is the rank correlation the report gives of reward with episode length,
coverage and difficulty. docs/training.md says where each is used.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import stats

BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95


def bootstrap_interval(
    values: np.ndarray, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES
) -> tuple[float, float]:
    """95% BCa bootstrap interval of the mean (``scipy.stats.bootstrap``, seeded).

    Fallbacks, where BCa is undefined: no value gives (NaN, NaN); constant values (one
    value included) give the zero-width interval at that value, since every resample
    has that mean; and if BCa still comes out NaN (its acceleration is undefined on
    some tiny samples), the percentile interval of the same resamples.
    """
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (math.nan, math.nan)
    if np.all(values == values[0]):
        return (float(values[0]), float(values[0]))
    for method in ("BCa", "percentile"):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # a degenerate BCa warns, then gives NaN
            result = stats.bootstrap(
                (values,), np.mean, confidence_level=CONFIDENCE, n_resamples=samples,
                method=method, rng=np.random.default_rng(seed),
            )  # fmt: skip
        low, high = result.confidence_interval
        if math.isfinite(low) and math.isfinite(high):
            break
    return float(low), float(high)


def interval_description(seed: int) -> str:
    """How :func:`bootstrap_interval` was run, as the report and ``summary.json`` say."""
    return (
        f"{CONFIDENCE:.0%} BCa bootstrap of the mean over markets, "
        f"{BOOTSTRAP_SAMPLES} resamples, seed {seed}"
    )


def wins_needed(markets: int, seed: int = 0) -> int | None:
    """The fewest of ``markets`` markets a model must beat HOLD on (all by the same amount,
    the others tied) for :func:`bootstrap_interval`'s lower end to be above 0: what
    "beyond noise" asks of a model that trades in a few markets only. ``None`` when even
    all markets are not enough (a single market: a constant has a zero-width interval at
    its value, so one is; none: nothing is).

    On the validation markets this is what selection asks of a model
    (:func:`~kalshi_pipeline.training.validation.validation_rank`): with 13 markets, 3
    wins, 23% of them, which a model that can only profit in the liquid fifth of a store
    seldom has (docs/learning.md).
    """
    for wins in range(1, markets + 1):
        values = np.zeros(markets)
        values[:wins] = 1.0
        if bootstrap_interval(values, seed)[0] > 0:
            return wins
    return None


def spearman(x: np.ndarray, y: np.ndarray) -> dict:
    """Spearman's rho of ``x`` and ``y`` over the pairs where both are finite
    (``scipy.stats.spearmanr``): ``rho`` and ``p_value`` are None where it is undefined
    (fewer than 3 pairs, or a constant series); ``n`` is the number of pairs."""
    known = np.isfinite(x) & np.isfinite(y)
    x, y = x[known], y[known]
    n = int(len(x))
    if n < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return {"rho": None, "p_value": None, "n": n}
    result = stats.spearmanr(x, y)
    return {"rho": float(result.statistic), "p_value": float(result.pvalue), "n": n}
