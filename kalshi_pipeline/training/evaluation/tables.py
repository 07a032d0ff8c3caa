"""The per-market table and the summary over markets: typed records of what was measured.

Per market (:class:`PerMarketRow`, one row of ``per_market.csv``): episodes, mean/std/
min/max reward (dollars), mean episode length, success rate (share of positive-reward
episodes), mean final portfolio value, the worst drawdown, mean trades, contracts and fees
per episode, and whether the market is liquid enough to trade. Over markets, each market
counting once (:class:`EvaluationSummary`, keyed by ``(policy, split)``): the mean reward
with a 95% BCa bootstrap interval and the share of markets with a positive mean reward;
for the model, the paired difference to each baseline with its own interval; and the
generalisation gap, the model's mean reward on training markets minus holdout markets.
``summary.json`` names these by composite strings (``"model/holdout"``,
``"model-vs-hold/holdout"``): :func:`policy_split_key` and :func:`difference_key` build
them when the file is written, and nothing parses them back.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Self

import numpy as np

from kalshi_pipeline.market.split import SplitName
from kalshi_pipeline.training.evaluation.policies import PolicyName
from kalshi_pipeline.training.evaluation.rollouts import Episode
from kalshi_pipeline.training.evaluation.statistics import (
    bootstrap_interval,
    interval_description,
)


def market_type(ticker: str) -> str:
    """The ticker's series prefix: ``KXBTC`` of ``KXBTC-26JAN-S0003``."""
    return ticker.split("-", 1)[0]


def policy_split_key(policy: str, split: str) -> str:
    """The name ``summary.json`` gives a policy's results on a split: ``"model/holdout"``."""
    return f"{policy}/{split}"


def difference_key(baseline: str, split: str) -> str:
    """The name ``summary.json`` gives the model minus ``baseline`` on a split:
    ``"model-vs-hold/holdout"``."""
    return f"{PolicyName.MODEL}-vs-{baseline}/{split}"


@dataclass(frozen=True, kw_only=True)
class PerMarketRow:
    """One (policy, split, market): its episodes' statistics. Money in dollars except
    ``mean_final_value_cents``; the fields are the columns of ``per_market.csv``."""

    policy: str
    split: SplitName
    market_ticker: str
    market_type: str
    episodes: int
    mean_reward: float
    std_reward: float  # population (ddof 0)
    min_reward: float
    max_reward: float
    mean_length: float
    success_rate: float  # share of episodes with a positive reward
    mean_final_value_cents: float
    max_drawdown: float  # the deepest of any episode
    mean_trades: float
    mean_contracts_traded: float
    mean_fees: float
    market_coverage: float
    avg_spread_cents: float
    round_trip_fees_cents: float
    liquid: bool  # the average spread is under the round trip's fees

    def to_json(self) -> dict:
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        return {**data, "policy": str(self.policy), "split": str(self.split)}

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        values = {f.name: data[f.name] for f in fields(cls)}
        return cls(**{**values, "split": SplitName(data["split"])})


def per_market_table(episodes: Sequence[Episode]) -> list[PerMarketRow]:
    """One row per (policy, split, market), in that order."""
    groups: dict[tuple[str, str, str], list[Episode]] = defaultdict(list)
    for e in episodes:
        groups[(e.policy, e.split, e.market_ticker)].append(e)
    return [_row(*key, group) for key, group in sorted(groups.items())]


def _row(policy: str, split: SplitName, market: str, group: list[Episode]) -> PerMarketRow:
    rewards = np.array([e.total_reward for e in group])
    spread = float(np.mean([e.avg_spread_cents for e in group]))
    round_trip = float(np.mean([e.round_trip_fees_cents for e in group]))
    return PerMarketRow(
        policy=policy,
        split=split,
        market_ticker=market,
        market_type=market_type(market),
        episodes=len(group),
        mean_reward=float(rewards.mean()),
        std_reward=float(rewards.std()),
        min_reward=float(rewards.min()),
        max_reward=float(rewards.max()),
        mean_length=float(np.mean([e.length for e in group])),
        success_rate=float(np.mean(rewards > 0)),
        mean_final_value_cents=float(np.mean([e.final_value_cents for e in group])),
        max_drawdown=max(e.max_drawdown_cents for e in group) / 100,
        mean_trades=float(np.mean([e.trades for e in group])),
        mean_contracts_traded=float(np.mean([e.contracts_traded for e in group])),
        mean_fees=float(np.mean([e.fees_cents for e in group])) / 100,
        market_coverage=float(np.mean([e.market_coverage for e in group])),
        avg_spread_cents=spread,
        round_trip_fees_cents=round_trip,
        liquid=bool(spread < round_trip),
    )


@dataclass(frozen=True, kw_only=True)
class PolicyAggregate:
    """A policy on a split, over its markets (each counts once; money in dollars)."""

    markets: int
    mean_reward: float
    mean_reward_ci95: tuple[float, float]
    positive_market_share: float

    def to_json(self) -> dict:
        return {
            "markets": self.markets,
            "mean_reward": self.mean_reward,
            "mean_reward_ci95": list(self.mean_reward_ci95),
            "positive_market_share": self.positive_market_share,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        low, high = data["mean_reward_ci95"]
        return cls(
            markets=data["markets"],
            mean_reward=data["mean_reward"],
            mean_reward_ci95=(low, high),
            positive_market_share=data["positive_market_share"],
        )


@dataclass(frozen=True, kw_only=True)
class ModelDifference:
    """The model minus a baseline on a split, paired by market (dollars per market)."""

    markets: int
    mean_difference: float  # NaN without a common market
    ci95: tuple[float, float]

    def to_json(self) -> dict:
        return {
            "markets": self.markets,
            "mean_difference": self.mean_difference,
            "ci95": list(self.ci95),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        low, high = data["ci95"]
        return cls(
            markets=data["markets"], mean_difference=data["mean_difference"], ci95=(low, high)
        )


@dataclass(frozen=True, kw_only=True)
class EvaluationSummary:
    """Aggregates keyed by ``(policy, split)``, the model's differences to each baseline
    keyed by ``(baseline, split)``, both in key order, and the generalisation gap (None
    without both the model's train and holdout results). Intervals are
    :func:`~kalshi_pipeline.training.evaluation.statistics.bootstrap_interval` with
    ``seed``."""

    aggregates: Mapping[tuple[str, SplitName], PolicyAggregate]
    differences: Mapping[tuple[str, SplitName], ModelDifference]
    generalisation_gap: float | None
    seed: int

    @property
    def intervals(self) -> str:
        return interval_description(self.seed)

    def to_json(self) -> dict:
        """Plain data; each entry carries its key as fields."""
        return {
            "aggregates": [
                {"policy": str(policy), "split": str(split), **a.to_json()}
                for (policy, split), a in self.aggregates.items()
            ],
            "differences": [
                {"baseline": str(baseline), "split": str(split), **d.to_json()}
                for (baseline, split), d in self.differences.items()
            ],
            "generalisation_gap": self.generalisation_gap,
            "seed": self.seed,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(
            aggregates={
                (a["policy"], SplitName(a["split"])): PolicyAggregate.from_json(a)
                for a in data["aggregates"]
            },
            differences={
                (d["baseline"], SplitName(d["split"])): ModelDifference.from_json(d)
                for d in data["differences"]
            },
            generalisation_gap=data["generalisation_gap"],
            seed=data["seed"],
        )

    def summary_file_json(self) -> dict:
        """The layout of ``summary.json`` (its first keys): entries named by
        :func:`policy_split_key` and :func:`difference_key`, and the intervals' method."""
        return {
            "aggregates": {
                policy_split_key(*key): a.to_json() for key, a in self.aggregates.items()
            },
            "differences": {
                difference_key(*key): d.to_json() for key, d in self.differences.items()
            },
            "generalisation_gap": self.generalisation_gap,
            "seed": self.seed,
            "intervals": self.intervals,
        }


def summarise(rows: Sequence[PerMarketRow], seed: int = 0) -> EvaluationSummary:
    """Aggregates over markets per (policy, split), paired model-vs-baseline differences
    and the generalisation gap."""
    by_key: dict[tuple[str, SplitName], dict[str, float]] = defaultdict(dict)
    for row in rows:
        by_key[(row.policy, row.split)][row.market_ticker] = row.mean_reward
    aggregates = {}
    for key, markets in sorted(by_key.items()):
        rewards = np.array(list(markets.values()))
        aggregates[key] = PolicyAggregate(
            markets=len(rewards),
            mean_reward=float(rewards.mean()),
            mean_reward_ci95=bootstrap_interval(rewards, seed),
            positive_market_share=float(np.mean(rewards > 0)),
        )
    differences = {}
    for (policy, split), markets in sorted(by_key.items()):
        model = by_key.get((PolicyName.MODEL, split))
        if policy == PolicyName.MODEL or not model:
            continue
        common = sorted(set(model) & set(markets))
        diff = np.array([model[m] - markets[m] for m in common])
        differences[(policy, split)] = ModelDifference(
            markets=len(diff),
            mean_difference=float(diff.mean()) if len(diff) else math.nan,
            ci95=bootstrap_interval(diff, seed),
        )
    return EvaluationSummary(
        aggregates=aggregates,
        differences=differences,
        generalisation_gap=_generalisation_gap(by_key),
        seed=seed,
    )


def _generalisation_gap(by_key: Mapping[tuple[str, str], Mapping[str, float]]) -> float | None:
    train, holdout = (PolicyName.MODEL, SplitName.TRAIN), (PolicyName.MODEL, SplitName.HOLDOUT)
    if train not in by_key or holdout not in by_key:
        return None
    return float(np.mean(list(by_key[train].values())) - np.mean(list(by_key[holdout].values())))
