"""Market views: one market within one session, one training episode, and how it is built.

:func:`build_market_views` cleans a raw session, reconstructs every market's book after
every event (:mod:`kalshi_pipeline.market.books`), keeps the books at each market's time
steps, computes the 36 data-only features once on them
(:mod:`kalshi_pipeline.market.features`) and cuts the session's columns into one
:class:`MarketSessionView` per accepted market. A session is cleaned as a whole, then
reconstructed and cut a group of markets at a time (:class:`SessionViews`), so its books
are never all in memory. One module per concern: ``market_view`` (the view, its config
and key), ``time_steps`` (what a step is), ``statistics`` (the figures that describe a
view), ``building`` (books to views), ``session_views`` (a session's views, whole or
streamed), ``parquet`` (the lossless round trip through Parquet: one row per step,
the statistics and the feature layout in the file's metadata) and ``integrity`` (what
a views file must carry to be read: its session, the raw copy it was built from and the
digests of its data and footer).
"""

from __future__ import annotations

from kalshi_pipeline.market.views.building import views_from_books
from kalshi_pipeline.market.views.integrity import Footer, RawCopy, ViewsChanged, ViewsDamaged
from kalshi_pipeline.market.views.market_view import (
    STATISTICS,
    STEP_ARRAYS,
    TRADE_ARRAYS,
    MarketSessionView,
    ViewConfig,
    session_of_key,
    view_key,
)
from kalshi_pipeline.market.views.parquet import (
    read_views,
    view_descriptions,
    views_footer,
    write_view_batches,
    write_views,
)
from kalshi_pipeline.market.views.session_views import SessionViews, build_market_views
from kalshi_pipeline.market.views.time_steps import time_steps

__all__ = [
    "STATISTICS",
    "STEP_ARRAYS",
    "TRADE_ARRAYS",
    "MarketSessionView",
    "SessionViews",
    "Footer",
    "RawCopy",
    "ViewConfig",
    "ViewsChanged",
    "ViewsDamaged",
    "build_market_views",
    "read_views",
    "session_of_key",
    "time_steps",
    "view_descriptions",
    "view_key",
    "views_footer",
    "views_from_books",
    "write_view_batches",
    "write_views",
]
