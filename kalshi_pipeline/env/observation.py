"""The env's observation vector: the view's precomputed features at the current step,
then 16 numbers computed from the portfolio and the last order.

The 52 rows, their names and their scales are the table of
:class:`~kalshi_pipeline.env.trading_env.MarketAgnosticKalshiEnv`'s docstring (the env's
spec; docs/environment.md, "Observation"). The space is bounded (Gymnasium's checker warns
about infinite bounds): the data features stay within [-1, 2.8] by construction, and the
unbounded portfolio ratios are clipped to ``OBSERVATION_BOUND``.
"""

from __future__ import annotations

import math

import numpy as np

from kalshi_pipeline.env.portfolio import Portfolio
from kalshi_pipeline.market.features import (
    FEATURE_LAYOUT,
    FEATURE_LAYOUT_VERSION,
    FEATURE_NAMES,
    NUM_FEATURES,
)

PORTFOLIO_FEATURES = (
    "cash_ratio", "exposure", "signed_position", "unrealized_pnl", "total_return",
    "average_entry", "entry_edge", "holding_time", "drawdown", "fees_paid", "buying_power",
)  # fmt: skip
ORDER_FEATURES = (
    "last_action", "last_fill_ratio", "last_fill_price", "last_fee", "steps_since_fill",
)  # fmt: skip
OBSERVATION_NAMES = FEATURE_NAMES + PORTFOLIO_FEATURES + ORDER_FEATURES
OBSERVATION_SIZE = len(OBSERVATION_NAMES)
assert OBSERVATION_SIZE == 52
# Maker mode: an order rests instead of filling at once, so buying power and the last
# order's five values (rows 46-51) give way to each resting order's place: its distance
# from the touch, the queue ahead of it and its age, for the order on the YES bids (BID)
# and the one on the NO bids (ASK).
RESTING_ORDER_FEATURES = (
    "bid_order_distance", "bid_order_queue", "bid_order_age",
    "ask_order_distance", "ask_order_queue", "ask_order_age",
)  # fmt: skip
MAKER_OBSERVATION_NAMES = FEATURE_NAMES + PORTFOLIO_FEATURES[:-1] + RESTING_ORDER_FEATURES
assert len(MAKER_OBSERVATION_NAMES) == OBSERVATION_SIZE
# Each mode's 52 rows, by name: the view's 36 features (their layout and version), then
# the portfolio's 16 rows in the mode's layout, versioned here.
OBSERVATION_NAMES_OF = {"taker": OBSERVATION_NAMES, "maker": MAKER_OBSERVATION_NAMES}
PORTFOLIO_LAYOUTS = {"taker": "last-order-v1", "maker": "resting-orders-v1"}


def observation_layout(execution: str) -> str:
    """The name and versions of the observation's layout in ``execution`` mode, e.g.
    ``"<feature layout>-v<version>+resting-orders-v1"``."""
    return f"{FEATURE_LAYOUT}-v{FEATURE_LAYOUT_VERSION}+{PORTFOLIO_LAYOUTS[execution]}"


OBSERVATION_BOUND = 5.0


def clip(x: float) -> float:
    """``x`` within ``[-OBSERVATION_BOUND, OBSERVATION_BOUND]``."""
    return OBSERVATION_BOUND if x > OBSERVATION_BOUND else max(x, -OBSERVATION_BOUND)


def observe(
    features: np.ndarray,
    portfolio: Portfolio,
    t: int,
    mark: int,
    *,
    starting_cash_cents: int,
    order_size: int,
    max_position: int,
    resting: tuple[float, ...] | None = None,
) -> np.ndarray:
    """The observation at step ``t``: ``features`` (the view's row ``t``), then the
    portfolio's rows. ``mark`` is the held side's best bid at ``t`` (unused when flat).
    In maker mode ``resting`` holds the six values of :data:`RESTING_ORDER_FEATURES`,
    which take the last six rows (:data:`MAKER_OBSERVATION_NAMES`)."""
    position, cash, value = portfolio.position, portfolio.cash, portfolio.value
    order = order_size * 100  # the most one order can move, in cents
    held = value - cash
    if position:
        entry = portfolio.cost_basis / abs(position)
        unrealized = (held - portfolio.cost_basis) / order, entry / 100, (mark - entry) / 100
    else:
        unrealized = 0.0, 0.0, 0.0
    last_fill_step = portfolio.last_fill_step
    obs = np.empty(OBSERVATION_SIZE, dtype=np.float32)
    obs[:NUM_FEATURES] = features
    since_fill = t - last_fill_step if last_fill_step >= 0 else t + 1
    obs[NUM_FEATURES:] = (
        clip(cash / starting_cash_cents),
        held / value if value else 0.0,
        position / max_position,
        clip(unrealized[0]),
        clip((value - starting_cash_cents) / starting_cash_cents),
        unrealized[1],
        unrealized[2],
        math.log1p(t - portfolio.opened_at) / 5 if position else 0.0,
        clip((portfolio.peak - value) / starting_cash_cents),
        clip(portfolio.fees_paid / order),
        *(
            (min(cash / order, 1.0), *portfolio.last_order, math.log1p(since_fill) / 5)
            if resting is None
            else resting
        ),
    )
    return obs


def check_layout(view) -> None:
    """Refuse a view whose 36 features are not in the layout the observation is made of."""
    if (view.feature_layout, view.feature_layout_version) != (
        FEATURE_LAYOUT,
        FEATURE_LAYOUT_VERSION,
    ):
        raise ValueError(
            f"view {view.key} has feature layout {view.feature_layout} "
            f"v{view.feature_layout_version}; this environment needs {FEATURE_LAYOUT} "
            f"v{FEATURE_LAYOUT_VERSION}"
        )
