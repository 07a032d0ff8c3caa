"""The valid range of every training setting, checked when a config is made.

:class:`~kalshi_pipeline.training.config.AlgorithmConfig` and
:class:`~kalshi_pipeline.training.config.TrainingConfig` check each field against its
:class:`Range` here (type, finiteness, bounds) and raise :class:`InvalidConfig` naming the
key and the value, so a bad value fails before any training, never mid-training as an
SB3 assertion or a policy of NaN logits. The bounds:

* ``learning_rate`` in (0, 1]: above, the first update already overflows into NaN.
* ``gamma`` in (0, 1], ``gae_lambda`` in [0, 1], ``clip_range`` in (0, 1], ``ent_coef``
  in [0, 1].
* ``n_steps`` 1 to 2**21, ``n_epochs`` 1 to 1,000; ``batch_size`` 2 to 2**21 (SB3's PPO
  normalises advantages within a mini-batch); a rollout, ``n_steps`` x ``n_envs``, of at
  most 2**21 timesteps (about 1 GB of buffer: a larger one fails late, out of memory).
  A batch larger than the rollout is allowed: SB3 then updates on the whole rollout as
  one mini-batch (the tuning space around the ``plan`` profile, one env, has such
  combinations).
* ``net_arch`` 1 to 8 layers of 1 to 4,096 units.
* ``seed`` in [0, 2**32 - 1] (NumPy's and SB3's seeds are 32-bit), and so is the last
  seed candidate's, ``seed + candidates - 1``.
* timesteps 0 or more, counts 1 or more, fractions in [0, 1].

This module is the one place these ranges are written. The pipeline's configuration
(:mod:`kalshi_pipeline.pipeline_config`) checks its set fields against the same
:class:`Range` objects (:data:`ALGORITHM_RANGES`, :data:`TRAINING_RANGES`,
:func:`check_layers`), and the command line's options take theirs from
:data:`VALUE_RANGES`, by the kind of values a field declares
(:class:`~kalshi_pipeline.config_fields.Values`): every front end refuses the same values,
in the words of :meth:`Range.describe`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from kalshi_pipeline.config_fields import Values

MAX_SEED = 2**32 - 1
MAX_LAYERS, MAX_UNITS = 8, 4096
# Bounds that keep a run within one machine: a rollout of 2**21 transitions holds about
# 1 GB of observations, values and log-probabilities in SB3's buffer.
MAX_ROLLOUT, MAX_EPOCHS = 2**21, 1000


class InvalidConfig(ValueError):
    """A training setting of the wrong type or out of its range, named by its key."""


@dataclass(frozen=True)
class Range:
    """What a setting accepts: a whole number (``whole``) or any finite number, between
    ``low`` and ``high`` (``None``: unbounded), each end open or closed."""

    whole: bool
    low: float | None = None
    high: float | None = None
    low_open: bool = False
    high_open: bool = False

    def accepts(self, value: object) -> bool:
        kind = int if self.whole else (int, float)
        if isinstance(value, bool) or not isinstance(value, kind) or not math.isfinite(value):
            return False
        above = self.low is None or (value > self.low if self.low_open else value >= self.low)
        below = self.high is None or (value < self.high if self.high_open else value <= self.high)
        return above and below

    def describe(self) -> str:
        kind = "a whole number" if self.whole else "a finite number"
        low, high = _number(self.low), _number(self.high)
        if self.high is None:
            return f"{kind} {'above' if self.low_open else 'of at least'} {low}"
        opening, closing = "(" if self.low_open else "[", ")" if self.high_open else "]"
        return f"{kind} in {opening}{low}, {high}{closing}"


def _number(value: float | None) -> str:
    """A bound as written: 4294967295, not 4.29497e+09."""
    return str(int(value)) if value is not None and value == int(value) else f"{value}"


UNIT_OPEN_LOW = Range(whole=False, low=0, high=1, low_open=True)  # (0, 1]
UNIT = Range(whole=False, low=0, high=1)  # [0, 1]
FRACTION = Range(whole=False, low=0, high=1, high_open=True)  # [0, 1): a share held out
POSITIVE = Range(whole=False, low=0, low_open=True)
COUNT = Range(whole=True, low=1)
TIMESTEPS = Range(whole=True, low=0)
SEED = Range(whole=True, low=0, high=MAX_SEED)
LAYER = Range(whole=True, low=1, high=MAX_UNITS)  # one layer's units

ALGORITHM_RANGES: Mapping[str, Range] = {
    "learning_rate": UNIT_OPEN_LOW,
    "n_steps": Range(whole=True, low=1, high=MAX_ROLLOUT),
    "batch_size": Range(whole=True, low=2, high=MAX_ROLLOUT),
    "n_epochs": Range(whole=True, low=1, high=MAX_EPOCHS),
    "gamma": UNIT_OPEN_LOW,
    "gae_lambda": UNIT,
    "clip_range": UNIT_OPEN_LOW,
    "ent_coef": UNIT,
}
TRAINING_RANGES: Mapping[str, Range] = {
    "phase1_timesteps": TIMESTEPS,
    "phase2_timesteps": TIMESTEPS,
    "phase3_timesteps": TIMESTEPS,
    "curriculum_stages": COUNT,
    "revisit_fraction": UNIT,
    "struggle_fraction": UNIT,
    "struggle_weight": Range(whole=False, low=0),
    "n_envs": COUNT,
    "seed": SEED,
    "checkpoint_every": COUNT,
    "validate_every": TIMESTEPS,
    "torch_threads": COUNT,
    "candidates": COUNT,
    "candidate_workers": TIMESTEPS,
}
# The range of each kind of value a configuration field declares (config_fields.Values),
# for the command line's options; a list's (POSITIVE_INTS, net_arch) is each item's.
VALUE_RANGES: Mapping[Values, Range] = {
    Values.POSITIVE_INT: COUNT,
    Values.NON_NEGATIVE_INT: TIMESTEPS,
    Values.POSITIVE_FLOAT: POSITIVE,
    Values.FRACTION: FRACTION,
    Values.UNIT_OPEN_LOW: UNIT_OPEN_LOW,
    Values.SEED: SEED,
    Values.POSITIVE_INTS: LAYER,
}


def check_ranges(config: object, ranges: Mapping[str, Range]) -> None:
    """Raise :class:`InvalidConfig` for the first field of ``config`` outside its range
    (and for a ``net_arch`` that is not 1 to 8 layer sizes of 1 to 4,096)."""
    for name, valid in ranges.items():
        value = getattr(config, name)
        if not valid.accepts(value):
            raise InvalidConfig(f"{name} must be {valid.describe()}, got {value!r}")
    check_layers(getattr(config, "net_arch", (1,)))


def check_layers(layers: object, key: str = "net_arch") -> None:
    """Raise :class:`InvalidConfig` (naming ``key``) unless ``layers`` is a tuple of 1 to
    8 layer sizes, each 1 to 4,096."""
    if (
        not isinstance(layers, tuple)
        or not 1 <= len(layers) <= MAX_LAYERS
        or not all(LAYER.accepts(size) for size in layers)
    ):
        raise InvalidConfig(
            f"{key} must be 1 to {MAX_LAYERS} layer sizes, each {LAYER.describe()}, "
            f"got {_as_given(layers)}"
        )


def check_probabilities(name: str, p: object) -> None:
    """``None``, or 5 positive finite numbers summing to 1 (one per action)."""
    if p is None:
        return
    if (
        not isinstance(p, tuple)
        or len(p) != 5
        or not all(POSITIVE.accepts(x) for x in p)
        or abs(sum(p) - 1) > 1e-6
    ):
        raise InvalidConfig(f"{name} must be 5 positive numbers summing to 1, got {_as_given(p)}")


def _as_given(value: object) -> str:
    """A value as a file or flag gives it: a tuple as a list (an error line ending in
    ``)`` would read as one that says what to do)."""
    return repr(list(value) if isinstance(value, tuple) else value)
