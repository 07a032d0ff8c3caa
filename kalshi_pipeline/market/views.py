"""MarketSessionView: one market within one session, one training episode.

:func:`build_market_views` cleans a raw session, reconstructs every market's book after
every event (:mod:`.books`), keeps the books at each market's time steps, computes the 36
data-only features once on them (:mod:`.features`) and cuts the session's columns into
one :class:`MarketSessionView` per accepted market.
Everything is columnar. A session is cleaned as a whole, then reconstructed and cut a
group of markets at a time (:class:`SessionViews`), so its books are never all in memory.

A view's steps are the market's *time steps*: the milliseconds at which its book changed,
in order, each holding the book after the last event of that millisecond
(:func:`time_steps`). One book change on Kalshi arrives as several deltas sharing a
millisecond (a level cleared, another set); the half-applied books between them never
existed for anyone to trade on, so they are not steps: an agent acts once per book change,
and features such as momentum and activity count book changes, not deltas. Nothing is
lost: each step's ``sequence_numbers`` entry is the last event it includes, and every
event still goes through reconstruction and cleaning. Only consecutive events of a market
with the same receive time merge (an event whose time went backwards is a step of its
own), so a step never includes an event that arrived after the next step began. Per
step a view carries the top of both bid books with the derived asks, the prices and sizes
of the top ``K`` levels of each side (what an order can walk), and the feature matrix.

Statistics (computed over the whole view; they describe the episode and never enter an
observation):

* ``avg_spread``: mean YES spread in cents over the steps with both sides quoted
  (100 when there are none).
* ``volatility_score``: standard deviation of the per-step mid change in cents over
  two-sided steps (0 with fewer than two).
* ``market_coverage``: the share of the session's time steps (those of all its
  markets) whose receive times fall within this market's earliest and latest.
* ``data_quality_score``: ``T / (T + defects of this market)`` (``T`` steps, defects
  counted per event) times the share of the session-wide sequence that arrived; 1.0 for
  clean data. Defects are the repairs that mean the market's own data was wrong
  (``cleaning.DEFECTS``: dropped bad events and events after which the book crossed);
  sorting rows, dropping exact copies and ignoring stored asks are not.
* ``activity_bursts``: runs of at least ``burst_min_events`` steps each within
  ``burst_gap_ms`` of the previous one; ``quiet_periods``: gaps longer than
  ``quiet_gap_ms``.

Views round-trip through Parquet losslessly (:func:`write_views`, :func:`read_views`): one
row per step, the statistics and the feature layout (name and version) in the file's
metadata.
"""

from __future__ import annotations

import copy
import json
import math
import os
import tempfile
import uuid
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kalshi_pipeline.market.books import TOP_LEVELS, SessionBooks, books_from_events
from kalshi_pipeline.market.cleaning.events import CleanEvents
from kalshi_pipeline.market.cleaning.pipeline import clean_session
from kalshi_pipeline.market.cleaning.report import IngestReport
from kalshi_pipeline.market.features import (
    FEATURE_LAYOUT,
    FEATURE_LAYOUT_VERSION,
    FEATURE_NAMES,
    NUM_FEATURES,
    clamped_times,
    compute_features,
    market_of_rows,
    quotes,
)
from kalshi_pipeline.market.grouped_cleaning import CleanedGroups
from kalshi_pipeline.market.spill import GrowingArray
from kalshi_pipeline.sources.raw import RawSession, SessionBatches


@dataclass(frozen=True)
class ViewConfig:
    """How views are cut and described (defaults in one place)."""

    top_levels: int = TOP_LEVELS
    burst_gap_ms: int = 1_000
    burst_min_events: int = 5
    quiet_gap_ms: int = 60_000
    # Markets are reconstructed and cut in groups of at most this many events
    # (:class:`SessionViews`); the views do not depend on it, peak memory does.
    chunk_events: int = 65_536
    # A session read a batch at a time (:meth:`SessionViews.streamed`) is cleaned in
    # groups of markets of at most this many rows (:mod:`.grouped_cleaning`).
    clean_events: int = 1_048_576


# Per-step arrays of a view, with their dtypes; 2-D ones have K (or 36) columns.
STEP_ARRAYS = {
    "timestamps_ms": np.int64,
    "sequence_numbers": np.int64,
    "best_yes_bid": np.int16,
    "best_yes_ask": np.int16,
    "best_no_bid": np.int16,
    "best_no_ask": np.int16,
    "yes_bid_prices": np.int16,
    "yes_bid_sizes": np.int64,
    "no_bid_prices": np.int16,
    "no_bid_sizes": np.int64,
    "features": np.float32,
}
STATISTICS = (
    "avg_spread",
    "volatility_score",
    "market_coverage",
    "data_quality_score",
    "activity_bursts",
    "quiet_periods",
)


@dataclass(frozen=True, eq=False)
class MarketSessionView:
    """One market within one session: ``len(view)`` steps of book, features and stats.

    Prices are cents, 0 where that side is empty. ``yes_bid_prices``/``yes_bid_sizes``
    hold the top K YES bid levels best first (the YES asks are ``100 - no_bid_prices``
    with ``no_bid_sizes``). ``features`` is float32[T, 36] in the layout named by
    ``feature_layout``/``feature_layout_version`` (table in :mod:`.features`).
    """

    session_id: int
    market_ticker: str
    timestamps_ms: np.ndarray
    sequence_numbers: np.ndarray
    best_yes_bid: np.ndarray
    best_yes_ask: np.ndarray
    best_no_bid: np.ndarray
    best_no_ask: np.ndarray
    yes_bid_prices: np.ndarray
    yes_bid_sizes: np.ndarray
    no_bid_prices: np.ndarray
    no_bid_sizes: np.ndarray
    features: np.ndarray
    avg_spread: float
    volatility_score: float
    market_coverage: float
    data_quality_score: float
    activity_bursts: int
    quiet_periods: int
    feature_layout: str = FEATURE_LAYOUT
    feature_layout_version: int = FEATURE_LAYOUT_VERSION

    def __len__(self) -> int:
        return len(self.timestamps_ms)

    @property
    def start_ms(self) -> int:
        return int(self.timestamps_ms[0])

    @property
    def end_ms(self) -> int:
        return int(self.timestamps_ms[-1])

    @property
    def key(self) -> str:
        """``<session>/<ticker>``: unique across sessions (:func:`view_key`)."""
        return view_key(self.session_id, self.market_ticker)

    def statistics(self) -> dict[str, float | int]:
        return {name: getattr(self, name) for name in STATISTICS}

    def describe(self) -> dict:
        """The small summary downstream steps read instead of the step data."""
        return {
            "session_id": self.session_id,
            "market_ticker": self.market_ticker,
            "length": len(self),
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "feature_layout": self.feature_layout,
            "feature_layout_version": self.feature_layout_version,
            **self.statistics(),
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MarketSessionView):
            return NotImplemented
        return all(
            np.array_equal(getattr(self, f.name), getattr(other, f.name))
            if f.name in STEP_ARRAYS
            else getattr(self, f.name) == getattr(other, f.name)
            for f in fields(self)
        )


def view_key(session_id: int, market_ticker: str) -> str:
    """The key of the view of ``market_ticker`` in session ``session_id``: the one way
    every step, table and file names a view."""
    return f"{int(session_id)}/{market_ticker}"


def session_of_key(key: str) -> int:
    """The session of a view key (:func:`view_key`)."""
    return int(key.split("/", 1)[0])


def build_market_views(
    raw_session: RawSession, config: ViewConfig | None = None
) -> list[MarketSessionView]:
    """One view per accepted market of ``raw_session``, sorted by ticker."""
    builder = SessionViews(raw_session, config)
    return [view for batch in builder.batches() for view in batch]


@dataclass(frozen=True)
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
        return cls(np.sort(receive_times(events)), 1.0 - events.report.missing_fraction)


def receive_times(events: CleanEvents) -> np.ndarray:
    """The receive times of the time steps of ``events`` (in event order)."""
    offsets = np.searchsorted(events.market, np.arange(len(events.tickers) + 1))
    return events.timestamp_ms[step_rows(events.timestamp_ms, events.time_repaired, offsets)]


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
    (:class:`~.grouped_cleaning.CleanedGroups`, groups of ``ViewConfig.clean_events``),
    and what holds a value per event of the whole session (the step times behind
    coverage among them) is a memory-mapped scratch file, so memory holds one group
    whatever the session's size. Figures for both are measured in
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
        builder.session = SessionSteps(all_times, 1.0 - groups.report.missing_fraction)
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


def views_from_books(
    books: SessionBooks, config: ViewConfig | None = None, session: SessionSteps | None = None
) -> list[MarketSessionView]:
    """Cut reconstructed books into views (the part of :func:`build_market_views` after
    reconstruction). ``session`` defaults to what ``books`` tell of their session: pass it
    when ``books`` hold only some of the session's markets."""
    config = config or ViewConfig()
    if not len(books):
        return []
    books = time_steps(books)
    if session is None:
        session = SessionSteps(np.sort(books.timestamp_ms), 1.0 - books.report.missing_fraction)
    stats = _statistics(books, config, session)
    features = compute_features(books)
    bad_rows = np.bincount(
        market_of_rows(books)[~np.isfinite(features).all(axis=1)], minlength=len(books.tickers)
    )
    views = []
    for index, ticker in enumerate(books.tickers):
        rows = slice(int(books.market_offsets[index]), int(books.market_offsets[index + 1]))
        view = MarketSessionView(
            session_id=books.session_id,
            market_ticker=ticker,
            timestamps_ms=books.timestamp_ms[rows],
            sequence_numbers=books.sequence_number[rows],
            best_yes_bid=books.best_yes_bid[rows],
            best_yes_ask=books.best_yes_ask[rows],
            best_no_bid=books.best_no_bid[rows],
            best_no_ask=books.best_no_ask[rows],
            yes_bid_prices=books.yes_bid_prices[rows],
            yes_bid_sizes=books.yes_bid_depth[rows],
            no_bid_prices=books.no_bid_prices[rows],
            no_bid_sizes=books.no_bid_depth[rows],
            features=features[rows],
            **{name: values[index] for name, values in stats.items()},
            data_quality_score=_quality(books.report, ticker, rows.stop - rows.start)
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


def _statistics(books: SessionBooks, config: ViewConfig, session: SessionSteps) -> dict:
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


def non_finite(view: MarketSessionView) -> tuple[int | None, str] | None:
    """``(sequence number, reason)`` if a feature or statistic of ``view`` is NaN or
    infinite, else None. Cleaning bounds every input so this should never happen; a view
    that slips through would poison training (NaN logits), so it is rejected by name."""
    bad_rows, bad_columns = np.nonzero(~np.isfinite(view.features))
    if len(bad_rows):
        step, column = int(bad_rows[0]), int(bad_columns[0])
        return (
            int(view.sequence_numbers[step]),
            f"feature {FEATURE_NAMES[column]} is {view.features[step, column]} at step {step} "
            f"({len(bad_rows)} non-finite values): view rejected",
        )
    for name, value in view.statistics().items():
        if not math.isfinite(value):
            return None, f"statistic {name} is {value}: view rejected"
    return None


def time_steps(books: SessionBooks) -> SessionBooks:
    """The books at each market's time steps: the last of each run of its events that
    share a receive time."""
    return books.take(step_rows(books.timestamp_ms, books.time_repaired, books.market_offsets))


def step_rows(ts: np.ndarray, repaired: np.ndarray, market_offsets: np.ndarray) -> np.ndarray:
    """The rows (of events sorted by market) that end a time step (:func:`time_steps`)."""
    last = np.ones(len(ts), dtype=bool)
    # A repaired time is not when the event arrived: such an event is a step of its own.
    last[:-1] = (ts[1:] != ts[:-1]) | repaired[1:] | repaired[:-1]
    last[market_offsets[1:] - 1] = True  # a market's last event ends its step
    return np.flatnonzero(last)


def _quality(report: IngestReport, ticker: str, length: int) -> float:
    return length / (length + report.market_defects[ticker])


# -- Parquet ---------------------------------------------------------------------------
_METADATA_KEY = b"kalshi_pipeline.views"


def views_to_table(views: list[MarketSessionView]) -> pa.Table:
    """One row per step of every view (the statistics go into the file's metadata)."""
    counts = [len(v) for v in views]
    columns: dict[str, pa.Array] = {
        "session_id": pa.array(np.repeat([v.session_id for v in views], counts), pa.int64()),
        "market_ticker": pa.array(
            np.repeat(np.array([v.market_ticker for v in views], dtype=object), counts),
            pa.string(),
        ).dictionary_encode(),
    }
    for name, dtype in STEP_ARRAYS.items():
        stacked = (
            np.concatenate([getattr(v, name) for v in views])
            if views
            else np.zeros((0, _width(name)) if _width(name) else 0, dtype=dtype)
        )
        if stacked.ndim == 2:
            flat = pa.array(stacked.astype(dtype, copy=False).ravel())
            columns[name] = pa.FixedSizeListArray.from_arrays(flat, stacked.shape[1])
        else:
            columns[name] = pa.array(stacked.astype(dtype, copy=False))
    return pa.table(columns)


def views_from_table(table: pa.Table, described: list[dict]) -> list[MarketSessionView]:
    """The views of a table of steps, cut by their descriptions (in table order)."""
    views, start = [], 0
    for entry in described:
        stop = start + entry["length"]
        part = table.slice(start, entry["length"])
        arrays = {name: _to_numpy(part.column(name), dtype) for name, dtype in STEP_ARRAYS.items()}
        views.append(
            MarketSessionView(
                session_id=entry["session_id"],
                market_ticker=entry["market_ticker"],
                feature_layout=entry["feature_layout"],
                feature_layout_version=entry["feature_layout_version"],
                **arrays,
                **{name: entry[name] for name in STATISTICS},
            )
        )
        start = stop
    return views


def write_views(views: list[MarketSessionView], path: str | os.PathLike[str]) -> Path:
    """Write views to one Parquet file atomically (temporary file, then rename).

    A failed write leaves the previous file as it was and no temporary file behind.
    """
    write_view_batches([views], path)
    return Path(path)


def write_view_batches(
    batches: Iterable[list[MarketSessionView]], path: str | os.PathLike[str]
) -> list[dict]:
    """Write batches of views to one Parquet file as they come, one row group per
    batch, atomically as :func:`write_views`; returns every view's description.

    Only one batch is in memory at a time: with :meth:`SessionViews.batches` a session
    is written without ever holding all its views. The descriptions go into the file's
    metadata when the last batch is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    described: list[dict] = []
    writer = None
    try:
        for views in batches:
            if not views and writer is not None:
                continue
            table = views_to_table(views)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table)
            described += [v.describe() for v in views]
        if writer is None:  # no batch at all: an empty file with the views' schema
            writer = pq.ParquetWriter(tmp, views_to_table([]).schema)
        writer.add_key_value_metadata({_METADATA_KEY: json.dumps(described).encode()})
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return described


def read_views(path: str | os.PathLike[str]) -> list[MarketSessionView]:
    file = pq.ParquetFile(path)
    return views_from_table(file.read(), _described(file))


def view_descriptions(path: str | os.PathLike[str]) -> list[dict]:
    """The per-view statistics of a views file, read from its footer only."""
    return _described(pq.ParquetFile(path))


def _described(file: pq.ParquetFile) -> list[dict]:
    return json.loads(file.metadata.metadata[_METADATA_KEY])


def _width(name: str) -> int:
    """Columns of a 2-D step array in an empty table (0 for 1-D arrays)."""
    if name == "features":
        return NUM_FEATURES
    return TOP_LEVELS if name.endswith(("_prices", "_sizes")) else 0


def _to_numpy(column: pa.ChunkedArray, dtype) -> np.ndarray:
    array = column.combine_chunks()
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
        return array.flatten().to_numpy(zero_copy_only=False).astype(dtype).reshape(-1, width)
    return array.to_numpy(zero_copy_only=False).astype(dtype)
