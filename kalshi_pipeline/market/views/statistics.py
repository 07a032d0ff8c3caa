"""A view's statistics: figures over the whole view that describe the episode.

They never enter an observation:

* ``avg_spread``: mean YES spread in cents over the steps with both sides quoted
  (100 when there are none).
* ``volatility_score``: standard deviation of the per-step mid change in cents over
  two-sided steps (0 with fewer than two).
* ``market_coverage``: the share of the session's time steps (those of all its
  markets) whose receive times fall within this market's earliest and latest.
* ``data_quality_score``: how much real information survived, in [0, 1]; 1.0 for clean
  data::

      T / (T + defects of this market)      T steps, defects counted per event
      * (1 - R / T)                         R steps whose receive time was replaced
      * share of the session-wide sequence that arrived

  Defects are the repairs that mean the market's own data was wrong
  (:data:`kalshi_pipeline.market.cleaning.report.DEFECTS`: dropped bad events and events
  after which the book crossed); sorting rows, dropping exact copies and ignoring stored
  asks are not. A step whose time was replaced (``timestamp_out_of_window``: the event's
  time lay outside the session's recorded window and took its market's previous time)
  holds a book but no real time, so the middle factor takes it out, once (it is not a
  defect as well): a view whose times were all replaced (times in seconds instead of
  ms, another session's rows, a start after the end) scores 0 and fails the
  ``min_data_quality`` filter, and one whose times were a third replaced scores about
  two thirds. Clean data has ``R = 0``: its score is as without the factor.
* ``activity_bursts``: runs of at least ``burst_min_events`` steps each within
  ``burst_gap_ms`` of the previous one; ``quiet_periods``: gaps longer than
  ``quiet_gap_ms``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from kalshi_pipeline.market.books import SessionBooks
from kalshi_pipeline.market.cleaning.events import CleanEvents
from kalshi_pipeline.market.cleaning.report import IngestReport
from kalshi_pipeline.market.features import clamped_times, market_of_rows, quotes
from kalshi_pipeline.market.views.market_view import ViewConfig
from kalshi_pipeline.market.views.time_steps import receive_times


@dataclass(frozen=True, kw_only=True, eq=False)
class SessionSteps:
    """What a view's statistics read from its whole session rather than its own market.

    ``receive_times``: the sorted receive times of the time steps of every market (the
    denominator of ``market_coverage``); ``quality_factor``: the share of the
    session-wide sequence that arrived (a factor of ``data_quality_score``).
    """

    receive_times: np.ndarray
    quality_factor: float

    @classmethod
    def of_events(cls, events: CleanEvents) -> SessionSteps:
        """From cleaned events alone: no book needs to be built to know them."""
        return cls(
            receive_times=np.sort(receive_times(events)),
            quality_factor=1.0 - events.report.missing_fraction,
        )


def view_statistics(books: SessionBooks, config: ViewConfig, session: SessionSteps) -> dict:
    """Every market's statistics but data quality, as Python numbers by name.

    Whole-column: each statistic is a sum, count or extreme per market, never a Python
    loop over markets; sums are of integers, so no figure depends on the other markets
    built with it.
    """
    markets = len(books.tickers)
    market = market_of_rows(books)
    starts = books.market_offsets[:-1]
    first_row = np.zeros(len(books), dtype=bool)
    first_row[starts] = True
    ts = clamped_times(books)
    yes_bid, yes_ask = quotes(books)
    two_sided = (books.best_yes_bid > 0) & (books.best_no_bid > 0)
    mid_x2 = yes_bid + yes_ask

    quoted = np.bincount(market[two_sided], minlength=markets)
    spread_sum = np.bincount(
        market[two_sided], weights=(yes_ask - yes_bid)[two_sided], minlength=markets
    )
    avg_spread = np.where(quoted > 0, spread_sum / np.maximum(quoted, 1), 100.0)

    moved = two_sided & ~first_row
    moved[1:] &= two_sided[:-1]
    doubled_moves = (mid_x2[1:] - mid_x2[:-1])[moved[1:]]
    volatility = _grouped_std_of_halves(doubled_moves, market[moved], markets)

    # Coverage counts receive times as recorded: a market's time that jumped ahead moves
    # its own span, never the session's other steps (the clamped times would carry the
    # jump into every later step of that market).
    received = books.timestamp_ms
    first, last = np.minimum.reduceat(received, starts), np.maximum.reduceat(received, starts)
    times = session.receive_times
    inside = np.searchsorted(times, last, side="right") - np.searchsorted(times, first)

    gap = np.r_[0, np.diff(ts)]
    close = (gap <= config.burst_gap_ms) & ~first_row
    edges = np.diff(np.r_[close, False].astype(np.int8))
    run_start, run_end = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
    long_runs = run_end - run_start + 1 >= config.burst_min_events
    bursts = np.bincount(market[run_start[long_runs] + 1], minlength=markets)
    quiet = np.bincount(market[(gap > config.quiet_gap_ms) & ~first_row], minlength=markets)
    return {
        "avg_spread": avg_spread.tolist(),
        "volatility_score": volatility.tolist(),
        "market_coverage": (inside / max(len(times), 1)).tolist(),
        "activity_bursts": bursts.tolist(),
        "quiet_periods": quiet.tolist(),
    }


def _grouped_std_of_halves(doubled: np.ndarray, group: np.ndarray, groups: int) -> np.ndarray:
    """Population standard deviation per group of ``doubled / 2`` (``doubled`` integers
    sorted by group); 0 for groups of fewer than two values.

    The sums are exact integers and the variance ``(n * sum(d^2) - sum(d)^2) / (4 n^2)``
    is rounded once, so it does not depend on how the values are ordered or grouped.
    """
    counts = np.bincount(group, minlength=groups)
    ends = np.cumsum(counts)
    begins = ends - counts
    sums = np.r_[0, np.cumsum(doubled)]
    squares = np.r_[0, np.cumsum(doubled * doubled)]
    s1, s2 = sums[ends] - sums[begins], squares[ends] - squares[begins]
    spread = counts * s2 - s1 * s1
    variance = np.where(counts > 1, spread / (4.0 * np.maximum(counts, 1) ** 2), 0.0)
    return np.sqrt(variance)


def data_quality(report: IngestReport, ticker: str, length: int, time_repaired: int) -> float:
    """A view's ``data_quality_score`` before the session's factor: ``T / (T + defects)``
    times the share of its ``T`` steps whose time was not replaced (``time_repaired``)."""
    real_time = (length - time_repaired) / length
    return length / (length + report.market_defects[ticker]) * real_time
