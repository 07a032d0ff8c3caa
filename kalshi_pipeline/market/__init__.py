"""Order-book reconstruction, market views, features and difficulty (pure domain code)."""

from kalshi_pipeline.market.books import SessionBooks, books_from_events, reconstruct_books
from kalshi_pipeline.market.cleaning import CleanEvents, DataIssue, IngestReport, clean_session

__all__ = [
    "CleanEvents",
    "DataIssue",
    "IngestReport",
    "SessionBooks",
    "books_from_events",
    "clean_session",
    "reconstruct_books",
]
