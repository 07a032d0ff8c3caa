"""Order-book reconstruction, market views, features and difficulty (pure domain code)."""

from kalshi_pipeline.market.books import SessionBooks, books_from_events, reconstruct_books
from kalshi_pipeline.market.cleaning.events import CleanEvents
from kalshi_pipeline.market.cleaning.pipeline import clean_session
from kalshi_pipeline.market.cleaning.report import DataIssue, IngestReport
from kalshi_pipeline.market.difficulty import FilterConfig, difficulty_score, score_views
from kalshi_pipeline.market.features import FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION, FEATURE_NAMES
from kalshi_pipeline.market.views import (
    MarketSessionView,
    ViewConfig,
    build_market_views,
    read_views,
    view_descriptions,
    write_views,
)

__all__ = [
    "FEATURE_LAYOUT",
    "FEATURE_LAYOUT_VERSION",
    "FEATURE_NAMES",
    "CleanEvents",
    "DataIssue",
    "FilterConfig",
    "IngestReport",
    "MarketSessionView",
    "SessionBooks",
    "ViewConfig",
    "books_from_events",
    "build_market_views",
    "clean_session",
    "difficulty_score",
    "read_views",
    "reconstruct_books",
    "score_views",
    "view_descriptions",
    "write_views",
]
