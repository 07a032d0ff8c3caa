"""Cutting reconstructed books into views.

:func:`views_from_books` keeps the books at each market's time steps
(:mod:`.time_steps`), computes the 36 data-only features once on them
(:mod:`kalshi_pipeline.market.features`) and the statistics (:mod:`.statistics`), and
cuts the columns into one :class:`~.market_view.MarketSessionView` per market, with its
market's trades at their steps where the session has a trade tape
(:mod:`kalshi_pipeline.market.trade_flow`). Everything is columnar. A view with a
non-finite feature or statistic is rejected by name.
"""

from __future__ import annotations

import numpy as np

from kalshi_pipeline.market.books import SessionBooks
from kalshi_pipeline.market.features import compute_features, market_of_rows
from kalshi_pipeline.market.views.market_view import MarketSessionView, ViewConfig, non_finite
from kalshi_pipeline.market.views.statistics import SessionSteps, data_quality, view_statistics
from kalshi_pipeline.market.views.time_steps import time_steps


def views_from_books(
    books: SessionBooks, config: ViewConfig | None = None, session: SessionSteps | None = None
) -> list[MarketSessionView]:
    """Cut reconstructed books into views (the part of
    :func:`~.session_views.build_market_views` after reconstruction). ``session``
    defaults to what ``books`` tell of their session: pass it when ``books`` hold only
    some of the session's markets."""
    config = config or ViewConfig()
    if not len(books):
        return []
    books = time_steps(books)
    if session is None:
        session = SessionSteps(
            receive_times=np.sort(books.timestamp_ms),
            quality_factor=1.0 - books.report.missing_fraction,
        )
    stats = view_statistics(books, config, session)
    features = compute_features(books)
    market = market_of_rows(books)
    bad_rows = np.bincount(market[~np.isfinite(features).all(axis=1)], minlength=len(books.tickers))
    time_repaired = np.bincount(market[books.time_repaired], minlength=len(books.tickers))
    views = []
    for index, ticker in enumerate(books.tickers):
        rows = slice(int(books.market_offsets[index]), int(books.market_offsets[index + 1]))
        view = MarketSessionView(
            **_trades_of(books, index),
            session_id=books.session_id,
            market_ticker=ticker,
            **step_columns(books, rows, features[rows]),
            **{name: values[index] for name, values in stats.items()},
            data_quality_score=data_quality(
                books.report, ticker, rows.stop - rows.start, int(time_repaired[index])
            )
            * session.quality_factor,
        )
        problem = None
        if bad_rows[index] or not np.isfinite(list(view.statistics().values())).all():
            problem = non_finite(view)
        if problem is None:
            views.append(view)
        else:
            books.report.reject(ticker, problem[0], problem[1])
    return views


def step_columns(books: SessionBooks, rows: slice, features: np.ndarray) -> dict[str, np.ndarray]:
    """A view's per-step columns: ``books``' rows ``rows`` (time steps) and their
    ``features``, by field name. The live path cuts its new steps with it too
    (:mod:`kalshi_pipeline.market.streaming`)."""
    return {
        "timestamps_ms": books.timestamp_ms[rows],
        "sequence_numbers": books.sequence_number[rows],
        "best_yes_bid": books.best_yes_bid[rows],
        "best_yes_ask": books.best_yes_ask[rows],
        "best_no_bid": books.best_no_bid[rows],
        "best_no_ask": books.best_no_ask[rows],
        "yes_bid_prices": books.yes_bid_prices[rows],
        "yes_bid_sizes": books.yes_bid_depth[rows],
        "no_bid_prices": books.no_bid_prices[rows],
        "no_bid_sizes": books.no_bid_depth[rows],
        "features": features,
    }


def _trades_of(books: SessionBooks, index: int) -> dict:
    """The trade fields of market ``index``'s view (none without a tape)."""
    if books.trades is None:
        return {}
    return {"trade_tape": True, **trade_columns(books.trades.of_market(index))}


def trade_columns(trades: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A view's trade columns from its market's trade flow
    (:meth:`~kalshi_pipeline.market.trade_flow.TradeFlow.of_market`), by field name."""
    return {
        "trade_steps": trades["step"],
        "trade_yes_prices": trades["yes_price"],
        "trade_counts": trades["count"],
        "trade_taker_yes": trades["taker_yes"],
        "trade_off_book": trades["off_book"],
    }
