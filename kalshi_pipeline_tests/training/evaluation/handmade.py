"""Hand-made episodes and per-market rows, whose figures a test works out by hand."""

from __future__ import annotations

from dataclasses import replace

from kalshi_pipeline.market.split import SplitName
from kalshi_pipeline.training.evaluation import Episode, PerMarketRow


def episode(policy, split, market, session, reward, length=100, final=10_000) -> Episode:
    return Episode(
        policy=policy, split=SplitName(split), view_key=f"{session}/{market}",
        market_ticker=market, session_id=session, total_reward=reward, length=length,
        final_value_cents=final,
    )  # fmt: skip


def full(policy, split, market, session, reward, **fields) -> Episode:
    """A hand-made episode with the fields the report reads."""
    return replace(episode(policy, split, market, session, reward), **fields)


def row(policy, split, market, mean_reward, **fields) -> PerMarketRow:
    """A market's row with ``mean_reward`` (one episode of it); ``fields`` set the rest."""
    base = PerMarketRow(
        policy=policy, split=SplitName(split), market_ticker=market, market_type="",
        episodes=1, mean_reward=mean_reward, std_reward=0.0, min_reward=mean_reward,
        max_reward=mean_reward, mean_length=100.0, success_rate=float(mean_reward > 0),
        mean_final_value_cents=10_000.0, max_drawdown=0.0, mean_trades=0.0,
        mean_contracts_traded=0.0, mean_fees=0.0, market_coverage=1.0, avg_spread_cents=2.0,
        round_trip_fees_cents=3.6, liquid=True,
    )  # fmt: skip
    return replace(base, **fields)
