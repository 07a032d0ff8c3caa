"""The order the report lists policies and splits in, everywhere: tables and plots alike.

The model comes first and always-HOLD last, so each table reads from the result to the
floor it is judged against; the holdout comes first among splits, since it is the result
(train beside it shows the generalisation gap).
"""

from __future__ import annotations

from collections.abc import Iterable

from kalshi_pipeline.market.split import SplitName
from kalshi_pipeline.training.evaluation import Episode, PolicyName, policy_split_key

_POLICY_ORDER = (
    PolicyName.MODEL,
    PolicyName.PHASE2,
    PolicyName.IMBALANCE_RULE,
    PolicyName.QUOTE_RULE,
    PolicyName.RANDOM,
    PolicyName.HOLD,
)


def ordered_policies(names: Iterable[str]) -> list[str]:
    """Policies in report order: the model first, always-HOLD last, others between."""
    names = set(names)
    first = [p for p in _POLICY_ORDER[:-1] if p in names]
    last = [PolicyName.HOLD] if PolicyName.HOLD in names else []
    return first + sorted(names - set(first) - set(last)) + last


def ordered_splits(names: Iterable[str]) -> list[str]:
    """Holdout first: it is the result; train shows the generalisation gap."""
    return sorted(names, key=lambda s: (s != SplitName.HOLDOUT, s))


def policy_split_keys(episodes: Iterable[Episode]) -> list[str]:
    """The ``policy/split`` names of the tables per policy and split, holdout first, then
    in report policy order."""
    pairs = {(e.policy, e.split) for e in episodes}
    policies = {p: i for i, p in enumerate(ordered_policies({p for p, _ in pairs}))}
    splits = {s: i for i, s in enumerate(ordered_splits({s for _, s in pairs}))}
    ordered = sorted(pairs, key=lambda pair: (splits[pair[1]], policies[pair[0]]))
    return [policy_split_key(policy, split) for policy, split in ordered]
