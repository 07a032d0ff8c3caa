"""The realism measurement: the figures the recorded Kalshi reference describes, counted
on sessions in the raw schema.

:func:`measure` reads sessions one at a time (only one is held) and returns
:class:`SimulatedFigures`; ``benchmarks/realism.py`` compares them with the recorded
reference and holds the tolerances (``docs/realism.md`` explains both).

The rules of the measurement:

* Books come from the library (:func:`~kalshi_pipeline.market.cleaning.clean_session`
  and :func:`~kalshi_pipeline.market.books.books_from_events`), a group of markets at a
  time, so a measured book is the book every other part of the pipeline sees.
* An *update* (an observation) is one book change of a market: a millisecond in which it
  had events, read after all of them (the views' time steps,
  :func:`~kalshi_pipeline.market.views.time_steps.step_rows`).
* The spread is ``best YES ask - best YES bid`` with ``ask = 100 - best NO bid`` (the
  *true* spread); an update with an empty side has none. The reference lists spreads one
  cent below the true one (its asks were ``99 - bid``), so every spread here is kept as
  the *listed* spread, ``true - 1``.
* Per market (markets with at least :data:`MIN_UPDATES` updates, as the reference kept):
  the plain mean and the standard deviation (``ddof=0``) of the listed spread over its
  quoted updates, updates per second between its first and last update, and the median
  resting size over every nonzero level of both bid books at every update.
* Trades: a row with a missing or non-positive count, an unknown taker side or no time is
  skipped and counted; a trade *follows* another when the previous trade of its market
  (by trade time, the exchange's where recorded) is at most :data:`FOLLOW_WINDOW_MS`
  earlier.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kalshi_pipeline.market.books import books_from_events
from kalshi_pipeline.market.cleaning import IngestReport, clean_session
from kalshi_pipeline.market.views.time_steps import step_rows
from kalshi_pipeline.sources.raw import LEVELS, RawSession
from kalshi_pipeline.sources.trades import TAKER_SIDES

# Markets with fewer updates were dropped from the reference's market profiles.
MIN_UPDATES = 10
# Recorded spreads are this much below the true spread (asks derived as 99 - bid).
LISTED_OFFSET = 1
# Events replayed at once: a group's books hold every level (99 per side) per event.
GROUP_EVENTS = 20_000
# A trade follows another of its market at most this long after it (ms), as the reference.
FOLLOW_WINDOW_MS = 5_000
# Listed spreads range over -99..97 (a crossed book has a true spread <= 0).
_LOWEST_LISTED = -99
_SPREAD_VALUES = np.arange(_LOWEST_LISTED, 98)
# The trade-size buckets of the reference (contracts, inclusive; None: no upper bound).
TRADE_SIZE_BUCKETS = (
    ("1-9", 1, 9), ("10-24", 10, 24), ("25-49", 25, 49), ("50-99", 50, 99),
    ("100-249", 100, 249), ("250-499", 250, 499), ("500-999", 500, 999), ("1000+", 1000, None),
)  # fmt: skip


@dataclass(frozen=True)
class MarketFigures:
    """One market in one session. ``None``: never quoted on both sides (spreads) or never
    a resting level (size)."""

    session_id: int
    ticker: str
    updates: int
    avg_listed_spread: float | None
    spread_volatility: float | None
    update_frequency_per_s: float | None
    resting_size_median: float | None


@dataclass
class TradeFigures:
    """The trade tapes of the sessions that recorded one."""

    sessions_with_tape: int = 0
    sessions_without_tape: int = 0
    trades: int = 0
    skipped: int = 0
    taker_yes: int = 0
    follows: int = 0
    follows_same_side: int = 0
    size_counts: np.ndarray = field(
        default_factory=lambda: np.zeros(len(TRADE_SIZE_BUCKETS), np.int64)
    )

    def size_shares(self) -> dict[str, float]:
        total = max(int(self.size_counts.sum()), 1)
        names = [name for name, _, _ in TRADE_SIZE_BUCKETS]
        return {name: int(n) / total for name, n in zip(names, self.size_counts, strict=True)}


@dataclass
class SimulatedFigures:
    """Everything :func:`measure` counts, pooled over sessions."""

    sessions: int = 0
    # Observations by listed spread: entry i counts listed spread _SPREAD_VALUES[i].
    listed_spread_counts: np.ndarray = field(
        default_factory=lambda: np.zeros(len(_SPREAD_VALUES), np.int64)
    )
    markets: list[MarketFigures] = field(default_factory=list)
    # Resting size -> level observations, over the profiled markets' updates.
    level_sizes: Counter = field(default_factory=Counter)
    # (session id, deltas per market per hour of the session).
    deltas_per_market_hour: list[tuple[int, float]] = field(default_factory=list)
    trades: TradeFigures = field(default_factory=TradeFigures)

    @property
    def observations(self) -> int:
        return int(self.listed_spread_counts.sum())

    def spread_quantile(self, q: float) -> float:
        """The ``q`` quantile (0..1) of the listed spread over observations, interpolated
        linearly as ``numpy.percentile`` on the observations themselves."""
        return counted_quantile(_SPREAD_VALUES, self.listed_spread_counts, q)

    def spread_share(self, low: float | None, high: float | None) -> float:
        """The share of observations with ``low <= listed spread < high``."""
        keep = np.ones(len(_SPREAD_VALUES), bool)
        if low is not None:
            keep &= low <= _SPREAD_VALUES
        if high is not None:
            keep &= high > _SPREAD_VALUES
        return int(self.listed_spread_counts[keep].sum()) / max(self.observations, 1)

    def profiled(self) -> list[MarketFigures]:
        """The markets with at least :data:`MIN_UPDATES` updates."""
        return [m for m in self.markets if m.updates >= MIN_UPDATES]


def counted_quantile(values: np.ndarray, counts: np.ndarray, q: float) -> float:
    """The ``q`` quantile of ``values`` each repeated ``counts`` times (sorted values),
    with numpy's linear interpolation, without expanding them."""
    total = int(counts.sum())
    if total == 0:
        return float("nan")
    position = (total - 1) * q
    below = int(np.floor(position))
    ends = np.cumsum(counts)
    lower = values[np.searchsorted(ends, below, side="right")]
    upper = values[np.searchsorted(ends, min(below + 1, total - 1), side="right")]
    return float(lower + (upper - lower) * (position - below))


def measure(sessions: Iterable[RawSession]) -> SimulatedFigures:
    """The figures of ``sessions``, read one at a time."""
    figures = SimulatedFigures()
    for raw in sessions:
        measure_session(raw, figures)
    return figures


def measure_session(raw: RawSession, figures: SimulatedFigures) -> None:
    """Add one session's books and trades to ``figures``."""
    figures.sessions += 1
    events = clean_session(raw)
    for group in events.market_groups(GROUP_EVENTS):
        books = books_from_events(group, top_levels=LEVELS, report=IngestReport(raw.session_id))
        rows = step_rows(books.timestamp_ms, books.time_repaired, books.market_offsets)
        updates = books.take(rows)
        for index, ticker in enumerate(updates.tickers):
            at = slice(int(updates.market_offsets[index]), int(updates.market_offsets[index + 1]))
            _measure_market(raw.session_id, ticker, updates, at, figures)
    figures.deltas_per_market_hour.append((raw.session_id, _deltas_per_market_hour(raw)))
    _measure_trades(raw.trades, figures.trades)


def _measure_market(session_id: int, ticker: str, books, at: slice, figures) -> None:
    yes, no = books.best_yes_bid[at].astype(np.int64), books.best_no_bid[at].astype(np.int64)
    quoted = (yes > 0) & (no > 0)
    listed = (100 - no[quoted]) - yes[quoted] - LISTED_OFFSET
    figures.listed_spread_counts += np.bincount(
        listed - _LOWEST_LISTED, minlength=len(_SPREAD_VALUES)
    )
    times = books.timestamp_ms[at]
    span_s = (int(times.max()) - int(times.min())) / 1000.0
    sizes = np.concatenate([books.yes_bid_depth[at].ravel(), books.no_bid_depth[at].ravel()])
    sizes = sizes[sizes > 0]
    market = MarketFigures(
        session_id=session_id,
        ticker=ticker,
        updates=len(times),
        avg_listed_spread=float(listed.mean()) if len(listed) else None,
        spread_volatility=float(listed.std()) if len(listed) else None,
        update_frequency_per_s=len(times) / span_s if span_s > 0 else None,
        resting_size_median=float(np.median(sizes)) if len(sizes) else None,
    )
    figures.markets.append(market)
    if market.updates >= MIN_UPDATES:
        values, counts = np.unique(sizes, return_counts=True)
        figures.level_sizes.update(dict(zip(values.tolist(), counts.tolist(), strict=True)))


def _deltas_per_market_hour(raw: RawSession) -> float:
    """Delta rows per recorded market per hour of the session (its start to its end, or
    to its last event when it has no end)."""
    info = raw.info
    markets = len(info.market_tickers) or len(
        set(raw.deltas.column("market_ticker").to_pylist())
        | set(raw.snapshots.column("market_ticker").to_pylist())
    )
    start_ms = info.started_at.timestamp() * 1000
    if info.ended_at is not None:
        end_ms = info.ended_at.timestamp() * 1000
    else:
        ends = [pc.max(t.column("timestamp_ms")).as_py() for t in (raw.snapshots, raw.deltas)]
        end_ms = max((e for e in ends if e is not None), default=start_ms)
    hours = (end_ms - start_ms) / 3_600_000
    if markets == 0 or hours <= 0:
        return float("nan")
    return raw.deltas.num_rows / markets / hours


def _measure_trades(trades: pa.Table | None, out: TradeFigures) -> None:
    """Count one session's tape (None: the session recorded no tape)."""
    if trades is None:
        out.sessions_without_tape += 1
        return
    out.sessions_with_tape += 1
    when = pc.coalesce(trades.column("exchange_ts_ms"), trades.column("timestamp_ms"))
    valid = pc.and_(
        pc.and_(pc.greater(trades.column("count"), 0), pc.is_valid(when)),
        pc.and_(
            pc.is_in(trades.column("taker_side"), value_set=pa.array(TAKER_SIDES)),
            pc.is_valid(trades.column("market_ticker")),
        ),
    )
    valid = pc.fill_null(valid, False)
    out.skipped += trades.num_rows - int(pc.sum(valid.cast(pa.int64())).as_py() or 0)
    tape = pa.table(
        {
            "market": trades.column("market_ticker"),
            "when": when,
            "sequence": pc.fill_null(trades.column("sequence_number"), -1),
            "id": trades.column("id"),
            "count": trades.column("count"),
            "taker_yes": pc.equal(trades.column("taker_side"), "yes"),
        }
    ).filter(valid)
    tape = tape.sort_by([(name, "ascending") for name in ("market", "when", "sequence", "id")])
    count = tape.column("count").to_numpy()
    taker_yes = tape.column("taker_yes").to_numpy(zero_copy_only=False)
    out.trades += tape.num_rows
    out.taker_yes += int(taker_yes.sum())
    for index, (_, low, high) in enumerate(TRADE_SIZE_BUCKETS):
        inside = count >= low if high is None else (count >= low) & (count <= high)
        out.size_counts[index] += int(inside.sum())
    market = tape.column("market").to_numpy(zero_copy_only=False)
    when = tape.column("when").to_numpy()
    follows = (market[1:] == market[:-1]) & (when[1:] - when[:-1] <= FOLLOW_WINDOW_MS)
    out.follows += int(follows.sum())
    out.follows_same_side += int((follows & (taker_yes[1:] == taker_yes[:-1])).sum())
