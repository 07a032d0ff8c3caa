"""Which events end a time step, and times that never go back: on bare columns.

A market's time steps are the milliseconds at which its book changed
(:mod:`kalshi_pipeline.market.views.time_steps` says why). Reconstruction needs them
before any view exists (a trade is read against the book just before its step:
:mod:`kalshi_pipeline.market.trade_flow`), so the rule lives here, on plain arrays of
events sorted by market, and the views and the features use it from here.
"""

from __future__ import annotations

import numpy as np


def step_rows(ts: np.ndarray, repaired: np.ndarray, market_offsets: np.ndarray) -> np.ndarray:
    """The rows (of events sorted by market) that end a time step: the last of each run
    of a market's consecutive events that share a receive time. An event whose time
    cleaning replaced is not when it arrived, so it is a step of its own."""
    last = np.ones(len(ts), dtype=bool)
    last[:-1] = (ts[1:] != ts[:-1]) | repaired[1:] | repaired[:-1]
    last[market_offsets[1:] - 1] = True  # a market's last event ends its step
    return last.nonzero()[0]


def non_decreasing_times(ts: np.ndarray, market: np.ndarray) -> np.ndarray:
    """Receive times (rows sorted by ``market``) raised to the latest earlier time of
    their market: non-decreasing within each market, never looking ahead."""
    ts, market = ts.astype(np.int64), market.astype(np.int64)
    if not len(ts):
        return ts
    # Offsetting each market far above the previous one lets one running maximum work
    # across the whole session without carrying a market's time into the next.
    stride = int(ts.max() - ts.min()) + 1
    key = np.maximum.accumulate(market * stride + (ts - ts.min()))
    return key - market * stride + ts.min()
