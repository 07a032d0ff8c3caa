"""Deterministic evaluation of a model next to baselines, per market, with bootstrap CIs.

Every policy plays one episode on every view it is given, deterministically: the model
with ``deterministic=True``, the random baseline from a generator seeded per view, and
two fixed rules: always-HOLD, and an imbalance rule (flat on a tight book: buy the side
the top-of-book imbalance favours beyond ``threshold``; holding: sell when the imbalance
turns against the position). A market seen in several sessions has several episodes.

Per market: episodes, mean/std/min/max reward (dollars), mean episode length, success
rate (share of positive-reward episodes) and mean final portfolio value. Aggregates are
over markets (each market counts once): mean reward with a 95% bootstrap interval, the
share of markets with a positive mean reward, and for the model the paired difference to
each baseline with its own bootstrap interval. The generalisation gap is the model's mean
reward on training markets minus holdout markets.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from kalshi_pipeline.env.execution import BUY_NO, BUY_YES, HOLD, SELL_NO, SELL_YES
from kalshi_pipeline.env.trading_env import EnvConfig, MarketAgnosticKalshiEnv
from kalshi_pipeline.market.features import FEATURE_NAMES
from kalshi_pipeline.market.views import MarketSessionView

Policy = Callable[[np.ndarray], int]
_IMBALANCE = FEATURE_NAMES.index("top_imbalance")
_SPREAD = FEATURE_NAMES.index("spread")
_SIGNED_POSITION = len(FEATURE_NAMES) + 2
BOOTSTRAP_SAMPLES = 2000


@dataclass(frozen=True)
class Episode:
    """One policy's episode on one view. ``view_key`` is the view's ``key``
    (``"{session}/{ticker}"``), the string that names it in reports and ``episodes.csv``,
    not the view itself."""

    policy: str
    split: str
    view_key: str
    market_ticker: str
    session_id: int
    total_reward: float  # dollars
    length: int
    final_value_cents: int


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


def rollout(policy: Policy, view: MarketSessionView, env_config: EnvConfig | None = None):
    """One episode of ``policy`` on ``view``; returns an :class:`Episode` (policy/split
    left empty)."""
    env = MarketAgnosticKalshiEnv(view, env_config)
    obs, info = env.reset(seed=0)
    total, length, done = 0.0, 0, False
    while not done:
        obs, reward, terminated, truncated, info = env.step(policy(obs))
        total += reward
        length += 1
        done = terminated or truncated
    return Episode(
        "", "", view.key, view.market_ticker, view.session_id, total, length,
        info["portfolio_value_cents"],
    )  # fmt: skip


def evaluate_policies(
    policies: dict[str, Callable[[int], Policy]],
    splits: dict[str, Sequence[MarketSessionView]],
    env_config: EnvConfig | None = None,
    seed: int = 0,
) -> list[Episode]:
    """Every policy on every view of every split. ``policies`` maps a name to a factory
    taking a per-view seed (so the random baseline is reproducible)."""
    episodes = []
    for split, views in splits.items():
        for index, view in enumerate(views):
            for name, make in policies.items():
                result = rollout(make(seed * 1_000_003 + index), view, env_config)
                episodes.append(replace(result, policy=name, split=split))
    return episodes


def baseline_policies(model=None) -> dict[str, Callable[[int], Policy]]:
    policies: dict[str, Callable[[int], Policy]] = {}
    if model is not None:
        policies["model"] = lambda seed: model_policy(model)
    policies["random"] = random_policy
    policies["hold"] = lambda seed: hold_policy()
    policies["imbalance_rule"] = lambda seed: imbalance_policy()
    return policies


def per_market_table(episodes: Sequence[Episode]) -> list[dict]:
    """One row per (policy, split, market)."""
    groups: dict[tuple[str, str, str], list[Episode]] = defaultdict(list)
    for e in episodes:
        groups[(e.policy, e.split, e.market_ticker)].append(e)
    rows = []
    for (policy, split, market), group in sorted(groups.items()):
        rewards = np.array([e.total_reward for e in group])
        rows.append(
            {
                "policy": policy,
                "split": split,
                "market_ticker": market,
                "episodes": len(group),
                "mean_reward": float(rewards.mean()),
                "std_reward": float(rewards.std()),
                "min_reward": float(rewards.min()),
                "max_reward": float(rewards.max()),
                "mean_length": float(np.mean([e.length for e in group])),
                "success_rate": float(np.mean(rewards > 0)),
                "mean_final_value_cents": float(np.mean([e.final_value_cents for e in group])),
            }
        )
    return rows


def bootstrap_interval(
    values: np.ndarray, seed: int = 0, samples: int = BOOTSTRAP_SAMPLES
) -> tuple[float, float]:
    """95% percentile bootstrap interval of the mean."""
    values = np.asarray(values, dtype=np.float64)
    if len(values) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = values[rng.integers(0, len(values), size=(samples, len(values)))].mean(axis=1)
    low, high = np.percentile(means, [2.5, 97.5])
    return float(low), float(high)


def summarise(rows: Sequence[dict], seed: int = 0) -> dict:
    """Aggregates over markets per (policy, split), paired model-vs-baseline differences
    and the generalisation gap."""
    by_key: dict[tuple[str, str], dict[str, float]] = defaultdict(dict)
    for row in rows:
        by_key[(row["policy"], row["split"])][row["market_ticker"]] = row["mean_reward"]
    aggregates = {}
    for (policy, split), markets in sorted(by_key.items()):
        rewards = np.array(list(markets.values()))
        aggregates[f"{policy}/{split}"] = {
            "markets": len(rewards),
            "mean_reward": float(rewards.mean()),
            "mean_reward_ci95": bootstrap_interval(rewards, seed),
            "positive_market_share": float(np.mean(rewards > 0)),
        }
    differences = {}
    for (policy, split), markets in sorted(by_key.items()):
        if policy == "model":
            continue
        model = by_key.get(("model", split))
        if not model:
            continue
        common = sorted(set(model) & set(markets))
        diff = np.array([model[m] - markets[m] for m in common])
        differences[f"model-vs-{policy}/{split}"] = {
            "markets": len(diff),
            "mean_difference": float(diff.mean()) if len(diff) else float("nan"),
            "ci95": bootstrap_interval(diff, seed),
        }
    gap = None
    if ("model", "train") in by_key and ("model", "holdout") in by_key:
        gap = float(
            np.mean(list(by_key[("model", "train")].values()))
            - np.mean(list(by_key[("model", "holdout")].values()))
        )
    return {"aggregates": aggregates, "differences": differences, "generalisation_gap": gap}
