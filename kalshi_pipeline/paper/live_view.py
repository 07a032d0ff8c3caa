"""A market's view that grows while the env plays it: the paper trader's view.

:class:`LiveView` has the fields of a :class:`~kalshi_pipeline.market.views.MarketSessionView`
that the env reads (docs/paper-trading.md), as columns that grow a
:class:`~kalshi_pipeline.market.streaming.StepChunk` at a time. ``column.tolist()``
returns the column's own list, which later steps extend in place, so an env that loaded
the view at its first step reads each new step as it arrives, with the env's own code:
nothing of the env, its execution or its observation is copied here.
"""

from __future__ import annotations

import numpy as np

from kalshi_pipeline.env.episode_replay import add_trades
from kalshi_pipeline.market.features import FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION
from kalshi_pipeline.market.streaming import StepChunk
from kalshi_pipeline.market.views import view_key


class GrowingColumn:
    """One per-step column: rows by index (arrays, for a 2-D column), and its values as
    Python lists (``tolist()``: the same list every time, extended as rows arrive). A 2-D
    column's lists are made on the first ``tolist()`` (the env asks for the books', never
    the features'): a session's steps are kept once, not twice."""

    def __init__(self, two_d: bool = False) -> None:
        self._rows: list = []
        self._two_d = two_d
        self._values: list | None = None if two_d else self._rows

    def extend(self, values: np.ndarray) -> None:
        if not self._two_d:
            self._rows.extend(values.tolist())
            return
        self._rows.extend(values)
        if self._values is not None:
            self._values.extend(values.tolist())

    def __getitem__(self, index: int):
        return self._rows[index]

    def __len__(self) -> int:
        return len(self._rows)

    def tolist(self) -> list:
        if self._values is None:
            self._values = [row.tolist() for row in self._rows]
        return self._values


_COLUMNS = (
    "timestamps_ms", "sequence_numbers", "best_yes_bid", "best_yes_ask", "best_no_bid",
    "best_no_ask", "yes_bid_prices", "yes_bid_sizes", "no_bid_prices", "no_bid_sizes",
    "features",
)  # fmt: skip
_TWO_D = ("yes_bid_prices", "yes_bid_sizes", "no_bid_prices", "no_bid_sizes", "features")


class LiveView:
    """One market of a session followed live; ``append`` adds its next steps."""

    feature_layout = FEATURE_LAYOUT
    feature_layout_version = FEATURE_LAYOUT_VERSION

    def __init__(self, session_id: int, market_ticker: str) -> None:
        self.session_id = session_id
        self.market_ticker = market_ticker
        for name in _COLUMNS:
            setattr(self, name, GrowingColumn(two_d=name in _TWO_D))
        self._trades: dict[int, list[tuple]] = {}

    @property
    def key(self) -> str:
        return view_key(self.session_id, self.market_ticker)

    def __len__(self) -> int:
        return len(self.timestamps_ms)

    def append(self, chunk: StepChunk) -> None:
        """Add ``chunk``'s steps (the next ones of this market) and their trades."""
        if chunk.first_step != len(self):
            raise ValueError(
                f"market {self.market_ticker} of session {self.session_id}: steps from "
                f"{chunk.first_step} arrived after {len(self)} steps"
            )
        for name in _COLUMNS:
            getattr(self, name).extend(chunk.columns[name])
        trades = chunk.trades
        add_trades(
            self._trades, trades["trade_steps"].astype(np.int64),
            trades["trade_yes_prices"].astype(np.int64), trades["trade_counts"].astype(np.int64),
            trades["trade_taker_yes"].astype(bool),
        )  # fmt: skip

    def trades_by_step(self) -> dict[int, list[tuple]]:
        """The view's trades by step, as the maker replay reads them
        (:func:`~kalshi_pipeline.env.episode_replay.replay_data`): the view's own dict,
        which later steps add to."""
        return self._trades
