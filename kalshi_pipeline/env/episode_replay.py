"""What a maker-mode episode reads of its view, as plain Python lists.

:func:`replay_data` turns a view into the lists :class:`~.resting_orders.RestingOrders`
walks (lists index faster than arrays one value at a time); the env keeps them per view.
A view that grows while it is played (paper trading: ``kalshi_pipeline.paper``) gives
lists it extends in place (its columns' ``tolist()``) and its trades by step, to which it
adds with :func:`add_trades`.
"""

from __future__ import annotations

from kalshi_pipeline.env.execution import PAIR_PAYOUT_CENTS
from kalshi_pipeline.env.resting_orders import ASK, BID


def replay_data(view) -> tuple:
    """What an episode reads of ``view``, as Python lists: (times, prices and sizes by slot,
    best bids by slot, trades by step). The env keeps it per view, since a sampler plays
    the same views again and again. A view that grows as it is played (paper trading)
    gives lists it extends in place, and its trades by step (``trades_by_step()``)."""
    if (grown := getattr(view, "trades_by_step", None)) is not None:
        trades = grown()
    else:
        trades = add_trades(
            {}, view.trade_steps, view.trade_yes_prices, view.trade_counts, view.trade_taker_yes
        )
    return (
        view.timestamps_ms.tolist(),
        {BID: view.yes_bid_prices.tolist(), ASK: view.no_bid_prices.tolist()},
        {BID: view.yes_bid_sizes.tolist(), ASK: view.no_bid_sizes.tolist()},
        {BID: view.best_yes_bid.tolist(), ASK: view.best_no_bid.tolist()},
        trades,
    )


def add_trades(into: dict, steps, prices, counts, taker_yes) -> dict[int, list[tuple]]:
    """Trades (arrays of a view's trade fields) added to ``into``, by step, each as (the
    book it took from, the price there, contracts): a taker buying YES at ``y`` took from
    the NO bids at ``100 - y``."""
    for step, price, count, yes in zip(
        steps.tolist(), prices.tolist(), counts.tolist(), taker_yes.tolist(), strict=True
    ):
        hit = (ASK, PAIR_PAYOUT_CENTS - price) if yes else (BID, price)
        into.setdefault(step, []).append((*hit, count))
    return into
