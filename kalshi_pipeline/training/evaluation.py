"""Deterministic evaluation of a model next to baselines, per market, with bootstrap CIs.

Every policy plays one episode on every view it is given, deterministically: the model
with ``deterministic=True``, the random baseline from a generator seeded per view, and
two fixed rules: always-HOLD, and an imbalance rule (flat on a tight book: buy the side
the top-of-book imbalance favours beyond ``threshold``; holding: sell when the imbalance
turns against the position). A market seen in several sessions has several episodes.

An episode records what its steps reported (the env's ``info``: portfolio value,
``filled`` contracts and ``fees_cents``), so nothing here re-implements execution:
trades (steps with a fill), contracts traded (the turnover), fees, the deepest drawdown
from the episode's running peak value, and how often each action was chosen. It also
carries the view's statistics the report groups by (coverage, average spread and mid).

Per market: episodes, mean/std/min/max reward (dollars), mean episode length, success
rate (share of positive-reward episodes), mean final portfolio value, the worst drawdown,
mean trades, contracts and fees per episode, and whether the market is liquid enough to
trade (:func:`round_trip_fees_cents`). Aggregates are over markets (each market counts
once): mean reward with a 95% BCa bootstrap interval (:func:`bootstrap_interval`), the
share of markets with a positive mean reward, and for the model the paired difference to
each baseline with its own interval. The generalisation gap is the model's mean reward on
training markets minus holdout markets. :func:`analyse` adds what the report states on
top: its first line, the action distribution, results by market type and difficulty band,
Spearman correlations and the plan's target shares.
"""

from __future__ import annotations

import math
import time
import warnings
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np
from scipy import stats

from kalshi_pipeline.env.execution import ACTION_NAMES, BUY_NO, BUY_YES, HOLD, SELL_NO, SELL_YES
from kalshi_pipeline.env.trading_env import EnvConfig, MarketAgnosticKalshiEnv
from kalshi_pipeline.market.features import FEATURE_NAMES
from kalshi_pipeline.market.fees import taker_fee_cents
from kalshi_pipeline.market.views import MarketSessionView

Policy = Callable[[np.ndarray], int]
_IMBALANCE = FEATURE_NAMES.index("top_imbalance")
_SPREAD = FEATURE_NAMES.index("spread")
_SIGNED_POSITION = len(FEATURE_NAMES) + 2
BOOTSTRAP_SAMPLES = 2000
CONFIDENCE = 0.95
DIFFICULTY_BANDS = 5
# The plan's targets: the share of markets with a positive average reward.
TARGET_SHARES = {"phase2": 0.5, "model": 0.8}
TARGET_PHASES = {"phase2": 2, "model": 3}


@dataclass(frozen=True)
class Episode:
    """One policy's episode on one view. ``view_key`` is the view's ``key``
    (``"{session}/{ticker}"``), the string that names it in reports and ``episodes.csv``,
    not the view itself. Money is in cents except ``total_reward`` (dollars, as the env
    rewards); the view statistics are NaN when unknown (an episode made by hand)."""

    policy: str
    split: str
    view_key: str
    market_ticker: str
    session_id: int
    total_reward: float  # dollars
    length: int
    final_value_cents: int
    trades: int = 0  # steps at which an order filled
    contracts_traded: int = 0  # the turnover: contracts bought plus sold
    fees_cents: int = 0
    max_drawdown_cents: int = 0  # deepest fall below the episode's running peak value
    hold_actions: int = 0
    buy_yes_actions: int = 0
    sell_yes_actions: int = 0
    buy_no_actions: int = 0
    sell_no_actions: int = 0
    market_coverage: float = math.nan  # the view's
    avg_spread_cents: float = math.nan  # the view's
    mean_mid_cents: float = math.nan  # the view's, over steps with both sides quoted
    round_trip_fees_cents: float = math.nan  # per contract, at that mid (see below)

    @property
    def action_counts(self) -> tuple[int, int, int, int, int]:
        """Actions chosen, in ``ACTION_NAMES`` order."""
        return (
            self.hold_actions, self.buy_yes_actions, self.sell_yes_actions,
            self.buy_no_actions, self.sell_no_actions,
        )  # fmt: skip

    @property
    def liquid(self) -> bool:
        """The view is liquid enough to trade (:func:`round_trip_fees_cents`)."""
        return bool(self.avg_spread_cents < self.round_trip_fees_cents)


def round_trip_fees_cents(mid_cents: float, order_size: int) -> float:
    """Fees per contract of buying and selling one order (``order_size`` contracts) at
    ``mid_cents``: ``2 * taker_fee(order_size, mid) / order_size``.

    A round trip costs the spread plus these fees. A market is *liquid enough to trade*
    when its average spread is below them, i.e. when the spread is the smaller part of
    the round trip's cost (at 50 cents and 10 contracts: 3.6 cents, so spreads of 1-3
    cents qualify and 4 do not; at 10 cents: 1.4). NaN (never liquid) without a quote.
    """
    if not math.isfinite(mid_cents):
        return math.nan
    price = min(max(round(mid_cents), 1), 99)
    return 2 * taker_fee_cents(order_size, price) / order_size


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
    left empty). Trades, turnover, fees and drawdown are read from each step's ``info``."""
    config = env_config or EnvConfig()
    env = MarketAgnosticKalshiEnv(view, config)
    obs, info = env.reset(seed=0)
    peak = info["portfolio_value_cents"]
    total, length, done = 0.0, 0, False
    trades = contracts = fees = drawdown = 0
    actions = [0] * len(ACTION_NAMES)
    while not done:
        action = policy(obs)
        actions[action] += 1
        obs, reward, terminated, truncated, info = env.step(action)
        total += reward
        length += 1
        trades += info["filled"] != 0
        contracts += abs(info["filled"])
        fees += info["fees_cents"]
        value = info["portfolio_value_cents"]
        peak = max(peak, value)
        drawdown = max(drawdown, peak - value)
        done = terminated or truncated
    mid = _mean_mid_cents(view)
    return Episode(
        "", "", view.key, view.market_ticker, view.session_id, total, length,
        info["portfolio_value_cents"], trades, contracts, fees, drawdown, *actions,
        float(view.market_coverage), float(view.avg_spread), mid,
        round_trip_fees_cents(mid, config.order_size),
    )  # fmt: skip


def _mean_mid_cents(view: MarketSessionView) -> float:
    bid, ask = view.best_yes_bid.astype(np.float64), view.best_yes_ask.astype(np.float64)
    quoted = (bid > 0) & (ask > 0)
    return float(((bid + ask) / 2)[quoted].mean()) if quoted.any() else math.nan


def evaluate_policies(
    policies: dict[str, Callable[[int], Policy]],
    splits: dict[str, Sequence[MarketSessionView]],
    env_config: EnvConfig | None = None,
    seed: int = 0,
    on_progress: Callable[[str], None] | None = None,
    every_seconds: float = 5.0,
) -> list[Episode]:
    """Every policy on every view of every split. ``policies`` maps a name to a factory
    taking a per-view seed (so the random baseline is reproducible). ``on_progress``
    gets a line with the episodes played so far at most every ``every_seconds`` of wall
    time, and one at the end."""
    episodes: list[Episode] = []
    total = len(policies) * sum(len(views) for views in splits.values())
    last = time.monotonic()
    for split, views in splits.items():
        for index, view in enumerate(views):
            for name, make in policies.items():
                result = rollout(make(seed * 1_000_003 + index), view, env_config)
                episodes.append(replace(result, policy=name, split=split))
            if on_progress is not None and time.monotonic() - last >= every_seconds:
                on_progress(f"evaluating: {len(episodes):,}/{total:,} episodes ({split} views)")
                last = time.monotonic()
    if on_progress is not None:
        on_progress(f"evaluated: {len(episodes):,} episodes ({len(policies)} policies)")
    return episodes


def baseline_policies(model=None, *, phase2_model=None) -> dict[str, Callable[[int], Policy]]:
    """The model (``"model"``, the phase-3 one), the baselines, and when given the
    phase-2 model (``"phase2"``), whose target share the report then states too."""
    policies: dict[str, Callable[[int], Policy]] = {}
    if model is not None:
        policies["model"] = lambda seed: model_policy(model)
    if phase2_model is not None:
        policies["phase2"] = lambda seed: model_policy(phase2_model)
    policies["random"] = random_policy
    policies["hold"] = lambda seed: hold_policy()
    policies["imbalance_rule"] = lambda seed: imbalance_policy()
    return policies


def market_type(ticker: str) -> str:
    """The ticker's series prefix: ``KXBTC`` of ``KXBTC-26JAN-S0003``."""
    return ticker.split("-", 1)[0]


def per_market_table(episodes: Sequence[Episode]) -> list[dict]:
    """One row per (policy, split, market); money in dollars."""
    groups: dict[tuple[str, str, str], list[Episode]] = defaultdict(list)
    for e in episodes:
        groups[(e.policy, e.split, e.market_ticker)].append(e)
    rows = []
    for (policy, split, market), group in sorted(groups.items()):
        rewards = np.array([e.total_reward for e in group])
        spread = float(np.mean([e.avg_spread_cents for e in group]))
        round_trip = float(np.mean([e.round_trip_fees_cents for e in group]))
        rows.append(
            {
                "policy": policy,
                "split": split,
                "market_ticker": market,
                "market_type": market_type(market),
                "episodes": len(group),
                "mean_reward": float(rewards.mean()),
                "std_reward": float(rewards.std()),
                "min_reward": float(rewards.min()),
                "max_reward": float(rewards.max()),
                "mean_length": float(np.mean([e.length for e in group])),
                "success_rate": float(np.mean(rewards > 0)),
                "mean_final_value_cents": float(np.mean([e.final_value_cents for e in group])),
                "max_drawdown": max(e.max_drawdown_cents for e in group) / 100,
                "mean_trades": float(np.mean([e.trades for e in group])),
                "mean_contracts_traded": float(np.mean([e.contracts_traded for e in group])),
                "mean_fees": float(np.mean([e.fees_cents for e in group])) / 100,
                "market_coverage": float(np.mean([e.market_coverage for e in group])),
                "avg_spread_cents": spread,
                "round_trip_fees_cents": round_trip,
                "liquid": bool(spread < round_trip),
            }
        )
    return rows


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


def wins_needed(markets: int, seed: int = 0) -> int | None:
    """The fewest of ``markets`` markets a model must beat HOLD on (all by the same amount,
    the others tied) for :func:`bootstrap_interval`'s lower end to be above 0: what
    "beyond noise" asks of a model that trades in a few markets only. ``None`` when even
    all markets are not enough (a single market: a constant has a zero-width interval at
    its value, so one is; none: nothing is).

    On the validation markets this is what selection asks of a model
    (:func:`~kalshi_pipeline.training.callbacks.validation_rank`): with 13 markets, 3
    wins, 23% of them, which a model that can only profit in the liquid fifth of a store
    seldom has (docs/learning.md).
    """
    for wins in range(1, markets + 1):
        values = np.zeros(markets)
        values[:wins] = 1.0
        if bootstrap_interval(values, seed)[0] > 0:
            return wins
    return None


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
            "mean_difference": float(diff.mean()) if len(diff) else math.nan,
            "ci95": bootstrap_interval(diff, seed),
        }
    gap = None
    if ("model", "train") in by_key and ("model", "holdout") in by_key:
        gap = float(
            np.mean(list(by_key[("model", "train")].values()))
            - np.mean(list(by_key[("model", "holdout")].values()))
        )
    return {
        "aggregates": aggregates,
        "differences": differences,
        "generalisation_gap": gap,
        "seed": seed,
        "intervals": f"{CONFIDENCE:.0%} BCa bootstrap of the mean over markets, "
        f"{BOOTSTRAP_SAMPLES} resamples, seed {seed}",
    }


# -- what the report states on top of the aggregates --------------------------------------
def analyse(
    episodes: Sequence[Episode],
    rows: Sequence[dict],
    difficulties: Mapping[str, float],
    seed: int = 0,
) -> dict:
    """Everything the report states besides :func:`summarise`: its first line, the
    action distribution, results by market type and by difficulty band, Spearman
    correlations and the plan's target shares. Deterministic given ``seed``."""
    market_difficulty = _market_difficulty(episodes, difficulties)
    bands = difficulty_bands(market_difficulty)
    return {
        "headline": headline(episodes, rows, seed),
        "walk_forward": walk_forward(episodes, rows, seed),
        "actions": action_distribution(episodes),
        "by_market_type": grouped(rows, lambda r: r["market_type"]),
        "by_difficulty_band": grouped(rows, lambda r: bands.get((r["split"], r["market_ticker"]))),
        "spearman": spearman_table(episodes, difficulties),
        "targets": target_shares(rows, seed),
    }


def _primary_split(episodes: Sequence[Episode]) -> str | None:
    splits = sorted({e.split for e in episodes})
    return "holdout" if "holdout" in splits else (splits[0] if splits else None)


def headline(episodes: Sequence[Episode], rows: Sequence[dict], seed: int = 0) -> str:
    """The report's first line: the model's result on the holdout (or the one split
    evaluated), or first of all that the model never trades or ties always-HOLD."""
    split = _primary_split(episodes)
    if split is None:
        return "Nothing was evaluated: no episode."
    return split_result(episodes, rows, split, seed)


def walk_forward(episodes: Sequence[Episode], rows: Sequence[dict], seed: int = 0) -> str:
    """The report's second line: the model on the sessions recorded after every session it
    was trained on (the ``walk_forward`` split), or why there is no such evaluation."""
    views = {(e.session_id, e.view_key) for e in episodes if e.split == "walk_forward"}
    if not views:
        return (
            "No walk-forward evaluation: no session was recorded after the training sessions "
            "(one session only, or walk_forward_sessions 0)."
        )
    sessions = ", ".join(str(s) for s in sorted({s for s, _ in views}))
    return (
        f"Walk-forward, on the {len(views)} views of session(s) {sessions}, recorded after "
        f"every training session: {split_result(episodes, rows, 'walk_forward', seed)}"
    )


def split_result(episodes: Sequence[Episode], rows: Sequence[dict], split: str, seed: int) -> str:
    """The model's result on ``split``: that it never trades or ties always-HOLD, else
    model minus HOLD with its interval and the share of markets it makes money on."""
    model = [e for e in episodes if e.policy == "model" and e.split == split]
    where = "walk-forward views" if split == "walk_forward" else split
    if not model:
        return f"No model was evaluated: baselines only, on the {where}."
    if sum(e.contracts_traded for e in model) == 0:
        actions = np.sum([e.action_counts for e in model], axis=0)
        held = actions[HOLD] / max(actions.sum(), 1)
        return (
            f"The model never trades on the {where}: not one order filled in its "
            f"{len(model)} episodes ({held:.0%} of its actions were HOLD), so it earns "
            f"exactly what always-HOLD earns."
        )
    differences = _paired(rows, "model", "hold", split)
    if differences is not None and len(differences) and np.all(np.abs(differences) < 1e-12):
        return (
            f"The model ties always-HOLD on the {where}: model minus HOLD is 0 on every one "
            f"of its {len(differences)} markets."
        )
    model_rewards = np.array(
        [r["mean_reward"] for r in rows if r["policy"] == "model" and r["split"] == split]
    )
    share = float(np.mean(model_rewards > 0))
    if differences is None or not len(differences):
        low, high = bootstrap_interval(model_rewards, seed)
        return (
            f"The model's mean reward on the {where}: {model_rewards.mean():+.3f} dollars per "
            f"market, 95% CI [{low:+.3f}, {high:+.3f}] over {len(model_rewards)} markets; "
            f"positive on {share:.0%} of them."
        )
    low, high = bootstrap_interval(differences, seed)
    return (
        f"Model minus always-HOLD on the {where}: {differences.mean():+.3f} dollars per "
        f"market, 95% CI [{low:+.3f}, {high:+.3f}] over {len(differences)} markets; the "
        f"model's average reward is positive on {share:.0%} of them."
    )


def _paired(rows: Sequence[dict], policy: str, other: str, split: str) -> np.ndarray | None:
    """``policy`` minus ``other`` per market of ``split`` (None without ``other``)."""
    mine = {r["market_ticker"]: r["mean_reward"] for r in rows
            if r["policy"] == policy and r["split"] == split}  # fmt: skip
    theirs = {r["market_ticker"]: r["mean_reward"] for r in rows
              if r["policy"] == other and r["split"] == split}  # fmt: skip
    if not theirs:
        return None
    return np.array([mine[m] - theirs[m] for m in sorted(set(mine) & set(theirs))])


def action_distribution(episodes: Sequence[Episode]) -> dict[str, dict]:
    """Per ``policy/split``: the share of steps given to each action, and per episode the
    trades, contracts traded (turnover) and fees (dollars), and the share of episodes
    with at least one fill."""
    groups: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        groups[f"{e.policy}/{e.split}"].append(e)
    out = {}
    for key, group in sorted(groups.items()):
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


def grouped(rows: Sequence[dict], group_of: Callable[[dict], str | None]) -> dict[str, dict]:
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
            cells[(r["split"], group)][r["policy"]][r["market_ticker"]] = r["mean_reward"]
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
        if "model" in policies and "hold" in policies:
            model, hold = policies["model"], policies["hold"]
            common = sorted(set(model) & set(hold))
            cell["model_minus_hold"] = float(np.mean([model[m] - hold[m] for m in common]))
        out[split][group] = cell
    return dict(out)


SPEARMAN_WITH = ("length", "coverage", "difficulty")


def spearman_table(
    episodes: Sequence[Episode], difficulties: Mapping[str, float]
) -> dict[str, dict]:
    """Per ``policy/split``: Spearman's rank correlation (``scipy.stats.spearmanr``) of
    the episode reward with the episode length, the view's market coverage and its
    difficulty, over the episodes where both are known. ``rho`` and ``p_value`` are None
    where the correlation is undefined (fewer than 3 episodes, or a constant series:
    always-HOLD's reward, for one)."""
    groups: dict[str, list[Episode]] = defaultdict(list)
    for e in episodes:
        groups[f"{e.policy}/{e.split}"].append(e)
    out = {}
    for key, group in sorted(groups.items()):
        reward = np.array([e.total_reward for e in group])
        against = {
            "length": np.array([e.length for e in group], dtype=np.float64),
            "coverage": np.array([e.market_coverage for e in group]),
            "difficulty": np.array([difficulties.get(e.view_key, math.nan) for e in group]),
        }
        out[key] = {name: spearman(x, reward) for name, x in against.items()}
    return out


def spearman(x: np.ndarray, y: np.ndarray) -> dict:
    """Spearman's rho of ``x`` and ``y`` over the pairs where both are finite."""
    known = np.isfinite(x) & np.isfinite(y)
    x, y = x[known], y[known]
    n = int(len(x))
    if n < 3 or np.all(x == x[0]) or np.all(y == y[0]):
        return {"rho": None, "p_value": None, "n": n}
    result = stats.spearmanr(x, y)
    return {"rho": float(result.statistic), "p_value": float(result.pvalue), "n": n}


def target_shares(rows: Sequence[dict], seed: int = 0) -> dict[str, dict]:
    """The plan's targets: the share of markets whose mean reward is positive, after
    phase 2 (50%, policy ``phase2``, measured only when that model was evaluated) and
    after phase 3 (80%, the model), per split, over all markets and over the markets
    liquid enough to trade (:func:`round_trip_fees_cents`), each share with its 95%
    bootstrap interval (:func:`bootstrap_interval` of the 0/1 outcomes)."""
    out = {}
    for policy in ("model", "phase2"):
        entry: dict = {
            "phase": TARGET_PHASES[policy],
            "policy": policy,
            "target": TARGET_SHARES[policy],
            "splits": {},
        }
        for split in sorted({r["split"] for r in rows if r["policy"] == policy}):
            mine = [r for r in rows if r["policy"] == policy and r["split"] == split]
            entry["splits"][split] = {
                **_share(mine, TARGET_SHARES[policy], seed, ""),
                **_share([r for r in mine if r["liquid"]], TARGET_SHARES[policy], seed, "liquid_"),
            }
        entry["measured"] = bool(entry["splits"])
        out[f"phase{TARGET_PHASES[policy]}"] = entry
    return out


def _share(rows: Sequence[dict], target: float, seed: int, prefix: str) -> dict:
    positive = np.array([r["mean_reward"] > 0 for r in rows], dtype=np.float64)
    share = float(positive.mean()) if len(positive) else None
    return {
        f"{prefix}markets": len(positive),
        f"{prefix}positive_share": share,
        f"{prefix}positive_share_ci95": bootstrap_interval(positive, seed)
        if len(positive)
        else None,
        f"{prefix}met": None if share is None else share >= target,
    }
