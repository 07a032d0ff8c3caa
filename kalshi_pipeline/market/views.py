"""MarketSessionView: one market within one session, one training episode.

:func:`build_market_views` cleans a raw session, reconstructs every market's book after
every event (:mod:`.books`), keeps the books at each market's time steps, computes the 36
data-only features once on them (:mod:`.features`) and cuts the session's columns into
one :class:`MarketSessionView` per accepted market.
Everything is columnar; a session is processed as a whole and nothing outside it is held.

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

import json
import math
import os
import uuid
from dataclasses import dataclass, fields
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kalshi_pipeline.market.books import TOP_LEVELS, SessionBooks, reconstruct_books
from kalshi_pipeline.market.cleaning import IngestReport
from kalshi_pipeline.market.features import (
    FEATURE_LAYOUT,
    FEATURE_LAYOUT_VERSION,
    FEATURE_NAMES,
    NUM_FEATURES,
    clamped_times,
    compute_features,
    market_start_rows,
    quotes,
)
from kalshi_pipeline.sources.raw import RawSession


@dataclass(frozen=True)
class ViewConfig:
    """How views are cut and described (defaults in one place)."""

    top_levels: int = TOP_LEVELS
    burst_gap_ms: int = 1_000
    burst_min_events: int = 5
    quiet_gap_ms: int = 60_000


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
    config = config or ViewConfig()
    books = reconstruct_books(raw_session, top_levels=config.top_levels)
    return views_from_books(books, config)


def views_from_books(
    books: SessionBooks, config: ViewConfig | None = None
) -> list[MarketSessionView]:
    """Cut reconstructed books into views (the part of :func:`build_market_views` after
    reconstruction)."""
    config = config or ViewConfig()
    books = time_steps(books)
    features = compute_features(books)
    finite_rows = np.isfinite(features).all(axis=1)  # one pass; a view is named below
    ts = clamped_times(books)
    yes_bid, yes_ask = quotes(books)
    two_sided = (books.best_yes_bid > 0) & (books.best_no_bid > 0)
    spread = (yes_ask - yes_bid).astype(np.float64)
    mid_change = (yes_bid + yes_ask - (yes_bid + yes_ask)[_previous_row(books)]) / 2
    # Coverage counts receive times as recorded: a market's time that jumped ahead moves
    # its own span, never the session's other steps (the clamped times would carry the
    # jump into every later step of that market).
    received = books.timestamp_ms
    session_times = np.sort(received)
    quality_factor = 1.0 - books.report.missing_fraction

    views = []
    for index, ticker in enumerate(books.tickers):
        rows = slice(int(books.market_offsets[index]), int(books.market_offsets[index + 1]))
        gaps = np.diff(ts[rows])
        quoted = two_sided[rows]
        moves = mid_change[rows][quoted & np.r_[False, quoted[:-1]]]
        length = rows.stop - rows.start
        first, last = received[rows].min(), received[rows].max()
        inside = np.searchsorted(session_times, last, side="right") - np.searchsorted(
            session_times, first, side="left"
        )
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
            avg_spread=float(spread[rows][quoted].mean()) if quoted.any() else 100.0,
            volatility_score=float(moves.std()) if len(moves) > 1 else 0.0,
            market_coverage=float(inside / len(session_times)),
            data_quality_score=_quality(books.report, ticker, length) * quality_factor,
            activity_bursts=_bursts(gaps, config),
            quiet_periods=int((gaps > config.quiet_gap_ms).sum()),
        )
        problem = None
        if not finite_rows[rows].all() or not np.isfinite(list(view.statistics().values())).all():
            problem = non_finite(view)
        if problem is None:
            views.append(view)
        else:
            books.report.reject(ticker, problem[0], problem[1])
    return views


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
    ts, repaired = books.timestamp_ms, books.time_repaired
    last = np.ones(len(books), dtype=bool)
    # A repaired time is not when the event arrived: such an event is a step of its own.
    last[:-1] = (ts[1:] != ts[:-1]) | repaired[1:] | repaired[:-1]
    last[books.market_offsets[1:] - 1] = True  # a market's last event ends its step
    return books.take(np.flatnonzero(last))


def _previous_row(books: SessionBooks) -> np.ndarray:
    rows = np.arange(len(books))
    return np.maximum(rows - 1, market_start_rows(books))


def _quality(report: IngestReport, ticker: str, length: int) -> float:
    return length / (length + report.market_defects[ticker])


def _bursts(gaps: np.ndarray, config: ViewConfig) -> int:
    """Runs of at least ``burst_min_events`` events, each close to the one before."""
    close = np.concatenate([[False], gaps <= config.burst_gap_ms, [False]]).astype(np.int8)
    edges = np.diff(close)
    run_lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
    return int((run_lengths + 1 >= config.burst_min_events).sum())


# -- Parquet ---------------------------------------------------------------------------
_METADATA_KEY = b"kalshi_pipeline.views"


def views_to_table(views: list[MarketSessionView]) -> pa.Table:
    """One row per step of every view, with per-view stats in the schema metadata."""
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
    described = [v.describe() for v in views]
    table = pa.table(columns)
    return table.replace_schema_metadata({_METADATA_KEY: json.dumps(described).encode()})


def views_from_table(table: pa.Table) -> list[MarketSessionView]:
    described = json.loads(table.schema.metadata[_METADATA_KEY])
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
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = views_to_table(views)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    try:
        pq.write_table(table, tmp, compression="zstd")
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def read_views(path: str | os.PathLike[str]) -> list[MarketSessionView]:
    return views_from_table(pq.read_table(path))


def view_descriptions(path: str | os.PathLike[str]) -> list[dict]:
    """The per-view statistics of a views file, read from its footer only."""
    return json.loads(pq.read_schema(path).metadata[_METADATA_KEY])


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
