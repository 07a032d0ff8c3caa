"""The live path's step rows: a market's new time steps, its window of earlier ones, and
the view columns cut from them (:mod:`.streaming`).

The windows are one-market :class:`~.books.SessionBooks`; what the batch views cut from
the books (:func:`~.views.building.views_from_books`) is cut here from the same columns.
"""

from __future__ import annotations

import numpy as np

from kalshi_pipeline.market.books import ROW_COLUMNS, SessionBooks
from kalshi_pipeline.market.features import compute_features
from kalshi_pipeline.market.steps import step_rows
from kalshi_pipeline.market.views.building import step_columns, trade_columns


def step_ends(books: SessionBooks, rows: slice) -> np.ndarray:
    """The rows of ``books`` (within one market's ``rows``) that end its time steps."""
    offsets = np.array([0, rows.stop - rows.start])
    return step_rows(books.timestamp_ms[rows], books.time_repaired[rows], offsets) + rows.start


def fresh_features(books: SessionBooks, fresh: np.ndarray) -> dict[int, np.ndarray]:
    """The features of the steps of the markets seen for the first time (``fresh``), by
    market index, computed together (as the batch path does: they start here)."""
    markets = fresh.nonzero()[0]
    if len(markets) < 2:  # one market: its own window is as quick
        return {}
    ends = [step_ends(books, slice(*books.market_offsets[i : i + 2].tolist())) for i in markets]
    stepped = books.take(np.concatenate(ends))
    features = compute_features(stepped)
    bounds = stepped.market_offsets
    return {int(i): features[bounds[i] : bounds[i + 1]] for i in markets}


def concat(a: SessionBooks, b: SessionBooks) -> SessionBooks:
    columns = {name: np.concatenate((getattr(a, name), getattr(b, name))) for name in ROW_COLUMNS}
    return _one_market(b, columns, trades=None)


def take_rows(books: SessionBooks, rows: np.ndarray | slice, tickers=None) -> SessionBooks:
    """``books``' ``rows`` (indices, or a slice: views) as one market's books, named
    ``tickers`` (else as ``books``' are)."""
    columns = {name: getattr(books, name)[rows] for name in ROW_COLUMNS}
    return _one_market(books, columns, trades=books.trades, tickers=tickers)


def _one_market(like: SessionBooks, columns: dict, trades, tickers=None) -> SessionBooks:
    """Books of ``like``'s one market holding ``columns`` (its session and report, and
    its tickers unless given)."""
    return SessionBooks(
        session_id=like.session_id,
        tickers=like.tickers if tickers is None else tickers,
        market_offsets=np.array([0, len(columns["timestamp_ms"])], np.int64),
        report=like.report,
        trades=trades,
        **columns,
    )


def empty_like(books: SessionBooks) -> SessionBooks:
    return take_rows(books, np.zeros(0, np.int64))


def view_columns(books: SessionBooks, features: np.ndarray) -> dict[str, np.ndarray]:
    """The view columns of one market's new steps, cut as the batch views are."""
    return step_columns(books, slice(None), features)


def trade_arrays(trades: dict | None) -> dict[str, np.ndarray]:
    """The view's trade columns of one market's placed trades (empty without a tape)."""
    if trades is None:
        names = ("trade_steps", "trade_yes_prices", "trade_counts", "trade_taker_yes")
        return {name: np.zeros(0) for name in (*names, "trade_off_book")}
    columns = trade_columns(trades)
    columns["trade_steps"] = columns["trade_steps"].astype(np.int64)
    return columns
