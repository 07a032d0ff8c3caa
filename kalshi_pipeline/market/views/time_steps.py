"""A view's time steps: the milliseconds at which its market's book changed.

A view's steps are the market's *time steps*: the milliseconds at which its book changed,
in order, each holding the book after the last event of that millisecond
(:func:`time_steps`). One book change on Kalshi arrives as several deltas sharing a
millisecond (a level cleared, another set); the half-applied books between them never
existed for anyone to trade on, so they are not steps: an agent acts once per book change,
and features such as momentum and activity count book changes, not deltas. Nothing is
lost: each step's ``sequence_numbers`` entry is the last event it includes, and every
event still goes through reconstruction and cleaning. Only consecutive events of a market
with the same receive time merge (an event whose time went backwards is a step of its
own), so a step never includes an event that arrived after the next step began.
"""

from __future__ import annotations

import numpy as np

from kalshi_pipeline.market.books import SessionBooks
from kalshi_pipeline.market.cleaning.events import CleanEvents
from kalshi_pipeline.market.steps import step_rows

__all__ = ["receive_times", "step_rows", "time_steps"]


def receive_times(events: CleanEvents) -> np.ndarray:
    """The receive times of the time steps of ``events`` (in event order)."""
    offsets = np.searchsorted(events.market, np.arange(len(events.tickers) + 1))
    return events.timestamp_ms[step_rows(events.timestamp_ms, events.time_repaired, offsets)]


def time_steps(books: SessionBooks) -> SessionBooks:
    """The books at each market's time steps: the last of each run of its events that
    share a receive time."""
    return books.take(step_rows(books.timestamp_ms, books.time_repaired, books.market_offsets))
