"""Playing episodes: every policy once on every view, deterministically, as :class:`Episode`.

An episode records what its steps reported (the env's ``info``: portfolio value,
``filled`` contracts, or in maker mode each of the step's ``fills``, and ``fees_cents``),
so nothing here re-implements execution:
trades (steps with a fill), contracts traded (the turnover), fees, the deepest drawdown
from the episode's running peak value, and how often each action was chosen. It also
carries the view's statistics the report groups by (coverage, average spread and mid)
and whether the view is liquid enough to trade (:func:`round_trip_fees_cents`). A market
seen in several sessions has several episodes. The environment and its rules are
docs/environment.md's.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Self

import numpy as np

from kalshi_pipeline.env.execution import ACTION_NAMES
from kalshi_pipeline.env.trading_env import EnvConfig, MarketAgnosticKalshiEnv
from kalshi_pipeline.market.fees import taker_fee_cents
from kalshi_pipeline.market.split import SplitName
from kalshi_pipeline.market.views import MarketSessionView
from kalshi_pipeline.training.evaluation.policies import Policy, PolicyFactory


@dataclass(frozen=True, kw_only=True)
class Episode:
    """One policy's episode on one view. ``view_key`` is the view's ``key``
    (``"{session}/{ticker}"``), the string that names it in reports and ``episodes.csv``,
    not the view itself. Money is in cents except ``total_reward`` (dollars, as the env
    rewards); the view statistics are NaN when unknown (an episode made by hand). The
    fields are the columns of ``episodes.csv``, in order. ``policy`` and ``split`` are
    empty for an episode played outside :func:`evaluate_policies`."""

    policy: str = ""
    split: SplitName | None = None
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

    def to_json(self) -> dict:
        """Every field, in column order; the split as its plain string ("" for none)."""
        data = {f.name: getattr(self, f.name) for f in fields(self)}
        data["policy"] = str(self.policy)
        data["split"] = "" if self.split is None else str(self.split)
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        values = {f.name: data[f.name] for f in fields(cls) if f.name in data}
        values["split"] = SplitName(data["split"]) if data.get("split") else None
        return cls(**values)


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


def rollout(
    policy: Policy,
    view: MarketSessionView,
    env_config: EnvConfig | None = None,
    *,
    name: str = "",
    split: SplitName | None = None,
) -> Episode:
    """One episode of ``policy`` on ``view``, recorded under ``name`` and ``split``.
    Trades, turnover, fees and drawdown are read from each step's ``info``."""
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
        traded = _contracts(info)
        trades += traded != 0
        contracts += traded
        fees += info["fees_cents"]
        value = info["portfolio_value_cents"]
        peak = max(peak, value)
        drawdown = max(drawdown, peak - value)
        done = terminated or truncated
    mid = _mean_mid_cents(view)
    hold, buy_yes, sell_yes, buy_no, sell_no = actions
    return Episode(
        policy=name, split=split, view_key=view.key, market_ticker=view.market_ticker,
        session_id=view.session_id, total_reward=total, length=length,
        final_value_cents=info["portfolio_value_cents"], trades=trades,
        contracts_traded=contracts, fees_cents=fees, max_drawdown_cents=drawdown,
        hold_actions=hold, buy_yes_actions=buy_yes, sell_yes_actions=sell_yes,
        buy_no_actions=buy_no, sell_no_actions=sell_no,
        market_coverage=float(view.market_coverage), avg_spread_cents=float(view.avg_spread),
        mean_mid_cents=mid, round_trip_fees_cents=round_trip_fees_cents(mid, config.order_size),
    )  # fmt: skip


def _contracts(info: Mapping) -> int:
    """Contracts a step traded: in maker mode the sum of its fills (a step may fill
    orders on both books, whose signed sum, ``filled``, would net them), else
    ``filled``'s size."""
    fills = info.get("fills")
    if fills is not None:
        return sum(fill.contracts for fill in fills)
    return abs(info["filled"])


def _mean_mid_cents(view: MarketSessionView) -> float:
    bid, ask = view.best_yes_bid.astype(np.float64), view.best_yes_ask.astype(np.float64)
    quoted = (bid > 0) & (ask > 0)
    return float(((bid + ask) / 2)[quoted].mean()) if quoted.any() else math.nan


def evaluate_policies(
    policies: Mapping[str, PolicyFactory],
    splits: Mapping[str, Sequence[MarketSessionView]],
    env_config: EnvConfig | None = None,
    seed: int = 0,
    on_progress: Callable[[str], None] | None = None,
    every_seconds: float = 5.0,
) -> list[Episode]:
    """Every policy on every view of every split (named by :class:`SplitName`'s values).
    ``policies`` maps a name to a factory taking a per-view seed (so the random baseline
    is reproducible). ``on_progress`` gets a line with the episodes played so far at
    most every ``every_seconds`` of wall time, and one at the end."""
    episodes: list[Episode] = []
    total = len(policies) * sum(len(views) for views in splits.values())
    last = time.monotonic()
    for split, views in splits.items():
        for index, view in enumerate(views):
            for name, make in policies.items():
                policy = make(seed * 1_000_003 + index)
                episodes.append(
                    rollout(policy, view, env_config, name=name, split=SplitName(split))
                )
            if on_progress is not None and time.monotonic() - last >= every_seconds:
                on_progress(f"evaluating: {len(episodes):,}/{total:,} episodes ({split} views)")
                last = time.monotonic()
    if on_progress is not None:
        on_progress(f"evaluated: {len(episodes):,} episodes ({len(policies)} policies)")
    return episodes
