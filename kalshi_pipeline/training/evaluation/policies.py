"""The policies an evaluation plays: the trained model and the baselines it is judged by.

A policy maps an observation to an action. The model acts with ``deterministic=True``;
the random baseline draws from a generator seeded per view, so it repeats; always-HOLD
never trades; and the imbalance rule is the simple signal a model should at least match:
flat on a tight book, buy the side the top-of-book imbalance favours beyond ``threshold``;
holding, sell when the imbalance turns against the position. :class:`PolicyName` names
the policies the report knows; other names (promotion's challenger and champion) are
plain strings.
"""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum

import numpy as np

from kalshi_pipeline.env.execution import BUY_NO, BUY_YES, HOLD, SELL_NO, SELL_YES
from kalshi_pipeline.env.observation import OBSERVATION_NAMES
from kalshi_pipeline.market.features import FEATURE_NAMES

Policy = Callable[[np.ndarray], int]
PolicyFactory = Callable[[int], Policy]  # takes the per-view seed
_IMBALANCE = FEATURE_NAMES.index("top_imbalance")
_SPREAD = FEATURE_NAMES.index("spread")
_SIGNED_POSITION = OBSERVATION_NAMES.index("signed_position")


class PolicyName(StrEnum):
    """The policies of an evaluation report, under the names its files use."""

    MODEL = "model"  # the phase-3 model
    PHASE2 = "phase2"  # its parent, when it was evaluated
    RANDOM = "random"
    HOLD = "hold"
    IMBALANCE_RULE = "imbalance_rule"


def model_policy(model) -> Policy:
    return lambda obs: int(model.predict(obs, deterministic=True)[0])


def hold_policy() -> Policy:
    return lambda obs: HOLD


def random_policy(seed: int) -> Policy:
    rng = np.random.default_rng(seed)
    return lambda obs: int(rng.integers(5))


def imbalance_policy(threshold: float = 0.5, max_spread_cents: int = 3) -> Policy:
    """The simple rule: trade the top-of-book imbalance on tight books only."""

    def act(obs: np.ndarray) -> int:
        imbalance, position = obs[_IMBALANCE], obs[_SIGNED_POSITION]
        if position > 0:
            return SELL_YES if imbalance < 0 else HOLD
        if position < 0:
            return SELL_NO if imbalance > 0 else HOLD
        if obs[_SPREAD] * 100 > max_spread_cents + 1e-6:
            return HOLD
        if imbalance > threshold:
            return BUY_YES
        if imbalance < -threshold:
            return BUY_NO
        return HOLD

    return act


def baseline_policies(model=None, *, phase2_model=None) -> dict[str, PolicyFactory]:
    """The model (``"model"``, the phase-3 one), the baselines, and when given the
    phase-2 model (``"phase2"``), whose target share the report then states too."""
    policies: dict[str, PolicyFactory] = {}
    if model is not None:
        policies[PolicyName.MODEL] = lambda seed: model_policy(model)
    if phase2_model is not None:
        policies[PolicyName.PHASE2] = lambda seed: model_policy(phase2_model)
    policies[PolicyName.RANDOM] = random_policy
    policies[PolicyName.HOLD] = lambda seed: hold_policy()
    policies[PolicyName.IMBALANCE_RULE] = lambda seed: imbalance_policy()
    return policies
