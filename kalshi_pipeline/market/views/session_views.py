"""Building a session's views a group of markets at a time, whole or streamed.

:class:`SessionViews` cleans a raw session (:mod:`kalshi_pipeline.market.cleaning`),
then reconstructs (:mod:`kalshi_pipeline.market.books`) and cuts (:mod:`.building`) a group
of markets at a time, so a session's books are never all in memory;
:meth:`SessionViews.streamed` does the same for a session read a batch at a time.
:func:`build_market_views` is the whole session's views as one list.
"""

from __future__ import annotations

import copy
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from kalshi_pipeline.market.books import books_from_events
from kalshi_pipeline.market.cleaning.events import CleanEvents
from kalshi_pipeline.market.cleaning.pipeline import clean_session
from kalshi_pipeline.market.grouped_cleaning import CleanedGroups
from kalshi_pipeline.market.spill import GrowingArray
from kalshi_pipeline.market.views.building import views_from_books
from kalshi_pipeline.market.views.market_view import MarketSessionView, ViewConfig
from kalshi_pipeline.market.views.statistics import SessionSteps
from kalshi_pipeline.market.views.time_steps import receive_times
from kalshi_pipeline.sources.raw import RawSession, SessionBatches


def build_market_views(
    raw_session: RawSession, config: ViewConfig | None = None
) -> list[MarketSessionView]:
    """One view per accepted market of ``raw_session``, sorted by ticker."""
    builder = SessionViews(raw_session, config)
    return [view for batch in builder.batches() for view in batch]


class SessionViews:
    """The views of one session, built a group of markets at a time (the chunked path).

    Made from a raw session in memory, cleaning runs once over the whole session and
    keeps only narrow columns (about 40 bytes per event). Reconstruction, features and
    views, which hold about 800 bytes per event, then run on groups of whole markets of
    at most ``ViewConfig.chunk_events`` events (a bigger market is a group of its own),
    and each group's views are handed over before the next is built. Every view depends
    only on its own market's events and on :class:`SessionSteps`, known once the whole
    session is cleaned, so the views are the same whatever the chunk size. Peak memory
    is the raw session plus cleaning plus one group, not the whole session's books.

    :meth:`streamed` builds the same views from a session read a batch at a time (a
    stored session too big to load): it is cleaned a group of markets at a time too
    (:class:`~kalshi_pipeline.market.grouped_cleaning.CleanedGroups`, groups of
    ``ViewConfig.clean_events``), and what holds a value per event of the whole session
    (the step times behind coverage among them) is a memory-mapped scratch file, so
    memory holds one group whatever the session's size. Figures for both are measured in
    ``benchmarks/bench_views.py`` (docs/data-quality.md).

    ``report`` holds cleaning's repairs, the crossed books of every group built so far and
    the markets rejected when their view was cut.
    """

    def __init__(self, raw_session: RawSession, config: ViewConfig | None = None) -> None:
        self.config = config or ViewConfig()
        events = clean_session(raw_session)
        self.session = SessionSteps.of_events(events)
        self.report = copy.deepcopy(events.report)
        self._cleaned: Callable[[], Iterable[CleanEvents]] = lambda: (events,)
        self._scratch: tempfile.TemporaryDirectory | None = None

    @classmethod
    def streamed(
        cls,
        session: SessionBatches,
        config: ViewConfig | None = None,
        scratch: str | os.PathLike[str] | None = None,
    ) -> SessionViews:
        """The views of a session read a batch at a time, cleaned and spilled a group of
        markets at a time into a temporary directory under ``scratch`` (the system's
        temporary directory by default), removed by :meth:`close`."""
        builder = cls.__new__(cls)
        builder.config = config or ViewConfig()
        builder._scratch = tempfile.TemporaryDirectory(prefix="views-", dir=scratch)
        try:
            scratch_dir = Path(builder._scratch.name)
            groups = CleanedGroups(session, builder.config.clean_events, scratch_dir)
            times = GrowingArray(np.int64, scratch_dir / "receive-times")
            for events in groups.clean():
                times.append(receive_times(events))
            all_times = times.array()  # memory-mapped: sorted in place, in its file
            all_times.sort()
        except BaseException:
            builder.close()
            raise
        builder.session = SessionSteps(
            receive_times=all_times, quality_factor=1.0 - groups.report.missing_fraction
        )
        builder.report = copy.deepcopy(groups.report)
        builder._cleaned = groups.cleaned
        return builder

    def batches(self) -> Iterator[list[MarketSessionView]]:
        """Lists of views, by ticker, one per group of markets."""
        for events in self._cleaned():
            for group in events.market_groups(self.config.chunk_events):
                books = books_from_events(
                    group, top_levels=self.config.top_levels, report=self.report
                )
                yield views_from_books(books, self.config, self.session)

    def close(self) -> None:
        """Remove the scratch files of :meth:`streamed` (nothing to do otherwise)."""
        if self._scratch is not None:
            self._scratch.cleanup()

    def __enter__(self) -> SessionViews:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
