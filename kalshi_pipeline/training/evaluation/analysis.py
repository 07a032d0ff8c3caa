"""What the report states on top of the summary over markets: plain data for summary.json.

:func:`analyse` gathers the first two lines (:mod:`.headline`), the action distribution
with trades, turnover and fees, results by market type and by difficulty band, Spearman
correlations of reward with episode length, coverage and difficulty, and the plan's
target shares (docs/training.md). Each is JSON-ready data, written into ``summary.json``
as it is; tables per policy and split are named by
:func:`~kalshi_pipeline.training.evaluation.tables.policy_split_key`.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence

import numpy as np

from kalshi_pipeline.env.execution import ACTION_NAMES
from kalshi_pipeline.training.evaluation.headline import headline, walk_forward
from kalshi_pipeline.training.evaluation.policies import PolicyName
from kalshi_pipeline.training.evaluation.rollouts import Episode
from kalshi_pipeline.training.evaluation.statistics import bootstrap_interval, spearman
from kalshi_pipeline.training.evaluation.tables import PerMarketRow, policy_split_key

DIFFICULTY_BANDS = 5
# The plan's targets: the share of markets with a positive average reward.
TARGET_SHARES = {PolicyName.PHASE2: 0.5, PolicyName.MODEL: 0.8}
TARGET_PHASES = {PolicyName.PHASE2: 2, PolicyName.MODEL: 3}
SPEARMAN_WITH = ("length", "coverage", "difficulty")


def analyse(
    episodes: Sequence[Episode],
    rows: Sequence[PerMarketRow],
    difficulties: Mapping[str, float],
    seed: int = 0,
) -> dict:
    """Everything the report states besides
    :func:`~kalshi_pipeline.training.evaluation.tables.summarise`: its first line, the
    action distribution, results by market type and by difficulty band, Spearman
    correlations and the plan's target shares. Deterministic given ``seed``."""
    market_difficulty = _market_difficulty(episodes, difficulties)
    bands = difficulty_bands(market_difficulty)
    return {
        "headline": headline(episodes, rows, seed),
        "walk_forward": walk_forward(episodes, rows, seed),
        "actions": action_distribution(episodes),
        "by_market_type": grouped(rows, lambda r: r.market_type),
        "by_difficulty_band": grouped(rows, lambda r: bands.get((r.split, r.market_ticker))),
        "spearman": spearman_table(episodes, difficulties),
        "targets": target_shares(rows, seed),
    }


def _by_policy_and_split(episodes: Sequence[Episode]) -> dict[str, list[Episode]]:
    """Episodes under :func:`policy_split_key`, in key order."""
    groups: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        groups[policy_split_key(e.policy, e.split)].append(e)
    return dict(sorted(groups.items()))


def action_distribution(episodes: Sequence[Episode]) -> dict[str, dict]:
    """Per ``policy/split``: the share of steps given to each action, and per episode the
    trades, contracts traded (turnover) and fees (dollars), and the share of episodes
    with at least one fill."""
    out = {}
    for key, group in _by_policy_and_split(episodes).items():
        counts = np.sum([e.action_counts for e in group], axis=0)
        total = max(int(counts.sum()), 1)
        out[key] = {
            "episodes": len(group),
            "steps": int(counts.sum()),
            "action_share": {
                name: float(c / total) for name, c in zip(ACTION_NAMES, counts, strict=True)
            },
            "trades_per_episode": float(np.mean([e.trades for e in group])),
            "contracts_per_episode": float(np.mean([e.contracts_traded for e in group])),
            "fees_per_episode": float(np.mean([e.fees_cents for e in group])) / 100,
            "episodes_with_a_fill": float(np.mean([e.contracts_traded > 0 for e in group])),
        }
    return out


def _market_difficulty(
    episodes: Sequence[Episode], difficulties: Mapping[str, float]
) -> dict[tuple[str, str], float]:
    """(split, market) -> the mean difficulty of its views (markets without one left
    out)."""
    views: dict[tuple[str, str], set[str]] = defaultdict(set)
    for e in episodes:
        if e.view_key in difficulties:
            views[(e.split, e.market_ticker)].add(e.view_key)
    return {k: float(np.mean([difficulties[v] for v in sorted(keys)])) for k, keys in views.items()}


def difficulty_bands(
    market_difficulty: Mapping[tuple[str, str], float], bands: int = DIFFICULTY_BANDS
) -> dict[tuple[str, str], str]:
    """(split, market) -> its difficulty band within its split: the split's markets
    ranked by difficulty (ties by ticker) and cut into ``bands`` groups of equal size
    (quintiles by default; fewer bands than markets never), labelled
    ``"Q1 (0.10-0.25)"`` from the easiest, with the band's difficulty range."""
    by_split: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for (split, market), difficulty in market_difficulty.items():
        by_split[split].append((difficulty, market))
    labels = {}
    for split, markets in by_split.items():
        markets.sort()
        count = min(bands, len(markets))
        index = [rank * count // len(markets) for rank in range(len(markets))]
        for band in range(count):
            members = [m for m, b in zip(markets, index, strict=True) if b == band]
            label = f"Q{band + 1} ({members[0][0]:.2f}-{members[-1][0]:.2f})"
            for _, market in members:
                labels[(split, market)] = label
    return labels


def grouped(
    rows: Sequence[PerMarketRow], group_of: Callable[[PerMarketRow], str | None]
) -> dict[str, dict]:
    """Per split and group: markets, and per policy the mean over markets of the mean
    reward and the share of markets whose mean reward is positive; plus the mean
    model-minus-HOLD difference when both were evaluated. Rows whose group is None (no
    difficulty known) are left out."""
    cells: dict[tuple[str, str], dict[str, dict[str, float]]] = defaultdict(
        lambda: defaultdict(dict)
    )
    for r in rows:
        group = group_of(r)
        if group is not None:
            cells[(r.split, group)][r.policy][r.market_ticker] = r.mean_reward
    out: dict[str, dict] = defaultdict(dict)
    for (split, group), policies in sorted(cells.items()):
        markets = set().union(*policies.values())
        cell = {
            "markets": len(markets),
            "mean_reward": {p: float(np.mean(list(m.values()))) for p, m in policies.items()},
            "positive_share": {
                p: float(np.mean([v > 0 for v in m.values()])) for p, m in policies.items()
            },
        }
        if PolicyName.MODEL in policies and PolicyName.HOLD in policies:
            model, hold = policies[PolicyName.MODEL], policies[PolicyName.HOLD]
            common = sorted(set(model) & set(hold))
            cell["model_minus_hold"] = float(np.mean([model[m] - hold[m] for m in common]))
        out[split][group] = cell
    return dict(out)


def spearman_table(
    episodes: Sequence[Episode], difficulties: Mapping[str, float]
) -> dict[str, dict]:
    """Per ``policy/split``: Spearman's rank correlation
    (:func:`~kalshi_pipeline.training.evaluation.statistics.spearman`) of the episode
    reward with the episode length, the view's market coverage and its difficulty, over
    the episodes where both are known. ``rho`` and ``p_value`` are None where the
    correlation is undefined (fewer than 3 episodes, or a constant series: always-HOLD's
    reward, for one)."""
    out = {}
    for key, group in _by_policy_and_split(episodes).items():
        reward = np.array([e.total_reward for e in group])
        against = {
            "length": np.array([e.length for e in group], dtype=np.float64),
            "coverage": np.array([e.market_coverage for e in group]),
            "difficulty": np.array([difficulties.get(e.view_key, math.nan) for e in group]),
        }
        out[key] = {name: spearman(x, reward) for name, x in against.items()}
    return out


def target_shares(rows: Sequence[PerMarketRow], seed: int = 0) -> dict[str, dict]:
    """The plan's targets: the share of markets whose mean reward is positive, after
    phase 2 (50%, policy ``phase2``, measured only when that model was evaluated) and
    after phase 3 (80%, the model), per split, over all markets and over the markets
    liquid enough to trade
    (:func:`~kalshi_pipeline.training.evaluation.rollouts.round_trip_fees_cents`), each
    share with its 95% bootstrap interval (``bootstrap_interval`` of the 0/1 outcomes)."""
    out = {}
    for policy in (PolicyName.MODEL, PolicyName.PHASE2):
        target = TARGET_SHARES[policy]
        entry: dict = {
            "phase": TARGET_PHASES[policy],
            "policy": str(policy),
            "target": target,
            "splits": {},
        }
        for split in sorted({r.split for r in rows if r.policy == policy}):
            mine = [r for r in rows if r.policy == policy and r.split == split]
            entry["splits"][split] = {
                **_share(mine, target, seed, ""),
                **_share([r for r in mine if r.liquid], target, seed, "liquid_"),
            }
        entry["measured"] = bool(entry["splits"])
        out[f"phase{TARGET_PHASES[policy]}"] = entry
    return out


def _share(rows: Sequence[PerMarketRow], target: float, seed: int, prefix: str) -> dict:
    positive = np.array([r.mean_reward > 0 for r in rows], dtype=np.float64)
    share = float(positive.mean()) if len(positive) else None
    return {
        f"{prefix}markets": len(positive),
        f"{prefix}positive_share": share,
        f"{prefix}positive_share_ci95": bootstrap_interval(positive, seed)
        if len(positive)
        else None,
        f"{prefix}met": None if share is None else share >= target,
    }
