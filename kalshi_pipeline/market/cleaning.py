"""From a raw session to clean, ordered book events: every bad-input case has one outcome.

:func:`clean_session` turns a :class:`~kalshi_pipeline.sources.raw.RawSession` into
:class:`CleanEvents`: the snapshot and delta events of every usable market, sorted by
(market, segment, sequence number), with snapshots expanded to full 198-level books. It
works on whole columns (sorts, masks, ``searchsorted``, two small compiled scans), never
on one event at a time in Python.

It runs in three parts, so that a session too big to hold can be cleaned a group of
markets at a time (:mod:`.grouped_cleaning`) with the same outcome: :func:`outline_session`
(what every market's cleaning needs of the whole session: its usable markets, the median
sequence number for outliers, the recorded window), :func:`clean_markets` (every check
that reads one market) and :class:`SequenceTally` (the session-wide sequence checks,
counted once every market is in).

What happens to bad input (each case is tested in
``kalshi_pipeline_tests/market/test_cleaning.py`` and ``test_cleaning_faults.py``).
*Repairs* are counted in :class:`IngestReport` and logged, with an example naming the
session, market and sequence number (and the row id where the sequence number is the
problem); *rejections* exclude one market with an error that names the same. Good
markets of the same session are always kept: no check compares one market's data with
another's, except the session-wide sequence (gaps, outliers), which no single market can
move far.

==========================================  ==============================================
input                                       outcome
==========================================  ==============================================
NULL ticker, sequence number or timestamp   repair ``missing_market_ticker`` /
                                            ``missing_sequence_number`` /
                                            ``missing_timestamp``: row dropped (named by
                                            its row id)
sequence number far outside the session's   repair ``sequence_outlier``: row dropped; the
range (more than ``max(100 N, 10^6)`` from  other rows, their gaps and order are as
the median of its N rows: 9e15, int64       without it
extremes)
price outside 1..99 (delta or map level,    repair ``price_out_of_range``: dropped
oversized keys included)
negative or missing size (delta, or a       repair ``negative_size``: dropped
NULL size in a map)
size above ``MAX_SIZE`` (1e20 in a map,     repair ``size_out_of_range``: dropped
int64 extremes)
unknown delta side                          repair ``unknown_side``: dropped
duplicate sequence number, same event       repair ``duplicate_sequence``: one copy kept
duplicate sequence number, other event      rejection of that market (ambiguous book)
same sequence number in two markets         repair ``sequence_shared``: counted, data
                                            kept; a market's book uses its own events
                                            only, so nothing changes (the collector's seq
                                            is per subscription: two subscriptions, or a
                                            replayed message, give this)
sequence restart inside the session: a      repair ``sequence_restart``: a new segment
snapshot, stored after the market's         starts at that snapshot; the market's events
earlier ones, numbered far below the        are ordered by segment, then sequence number
highest its market received, more than      (the collector kept one session open across
``TIME_TOLERANCE_MS`` after it (see         websocket reconnects; Kalshi's seq is per
``_segments``)                              subscription); a small step back is left to
                                            the duplicate check (a market with two
                                            different events under one number is rejected)
rows stored out of sequence order           repair ``stored_out_of_order`` (a row stored
                                            after a higher number of the same market and
                                            segment, in its own table): sorted
delta before the market's first snapshot    repair ``delta_before_snapshot``: dropped; a
                                            market with no snapshot at all is rejected
gap in the session-wide sequence            repair ``sequence_gap`` (counted per gap,
                                            within each segment;
                                            ``missing_sequence_numbers`` in the report);
                                            per-market gaps are normal and not counted
timestamp outside the session's recorded    repair ``timestamp_out_of_window``: the time
window (``started_at`` - 10 min to          becomes the market's previous valid time
``ended_at`` + 10 min; see                  (the session's start for its leading rows):
:func:`recorded_window`)                    the event and its book are kept
timestamp earlier than the market's         repair ``timestamp_backwards``: counted where
previous event's by more than               it steps back, kept as received (the features
``TIME_TOLERANCE_MS``                       clamp it); the event is kept
timestamp earlier by at most the tolerance  repair ``timestamp_jitter``: counted and kept
                                            as received (concurrent receipt; the features
                                            clamp it)
crossed book after applying deltas          repair ``crossed_book``: the step is kept and
                                            flagged ``crossed`` (see ``books.py``)
malformed JSON bid map (not JSON, not an    rejection of that market at that snapshot
object, a key that is not a plain integer
such as ``"6_3"`` or ``" 64"``, a size that
is not an integer)
malformed JSON ask map                      repair ``malformed_ask_map``: ignored (asks
                                            are always derived from bids)
stored asks that disagree with the bids     repair ``stored_asks_disagree``: asks are
                                            always derived from bids (older rows: 99 - p)
several events in one millisecond           ordered by sequence number; none lost
a view whose features or statistics are     rejection of that market when the view is
not finite                                  built (:mod:`.views`); the ``data_quality``
                                            check fails on any non-finite value
empty session                               ``report.empty``; no markets, no error
session still ``active``                    never reaches here: sources raise
                                            ``SessionNotComplete`` and callers skip it
==========================================  ==============================================

Repairs in :data:`DEFECTS` mean the market's own data was wrong and lower its view's data
quality; the others fix storage or timing without doubting the book.
"""

from __future__ import annotations

import logging
import math
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path

import numba
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kalshi_pipeline.market.spill import CHUNK, GrowingArray, median
from kalshi_pipeline.sources.raw import (
    LEVELS,
    TABLES,
    RawSession,
    SessionBatches,
    SessionInfo,
)

log = logging.getLogger(__name__)

BOOK_WIDTH = 2 * LEVELS  # both bid books, prices 1..99: level = side * LEVELS + price - 1
YES, NO = 0, 1
MAX_EXAMPLES_PER_KIND = 20
# Sizes above this are not real orders. Bounding them keeps every sum over a book (198
# levels) and every price * size far inside int64.
MAX_SIZE = 2**40
# Receive times of one market may step back this much (concurrent receipt); more is a
# timestamp that went backwards, and a reconnect is at least this long.
TIME_TOLERANCE_MS = 1_000
# A restart sends a market's numbers back at least this far (or to where its segment
# began): a new subscription numbers from 1, far below where the old one stopped.
RESTART_MIN_DROP = 1_000
# Receive times must fall in the session's recorded window, give or take this much.
WINDOW_TOLERANCE_MS = 10 * 60_000
# A session with neither an end time nor a last message time gets this long a window.
OPEN_SESSION_SPAN_MS = 30 * 24 * 3_600_000
# A sequence number further than this from the session's median (or 100 per row, if that
# is more) is an outlier: recorded sessions span at most a few times their row count.
MIN_OUTLIER_DISTANCE = 1_000_000
OUTLIER_DISTANCE_PER_ROW = 100
# Repairs that mean a market's own data was wrong (dropped events, crossed books, times
# that had to be replaced). The others fix the storage without losing or doubting
# anything (sorting rows, dropping an exact copy, ignoring stored asks, new segments) and
# do not lower a view's data quality.
DEFECTS = frozenset(
    {
        "price_out_of_range",
        "negative_size",
        "size_out_of_range",
        "unknown_side",
        "delta_before_snapshot",
        "crossed_book",
        "missing_sequence_number",
        "missing_timestamp",
        "sequence_outlier",
        "timestamp_out_of_window",
        "timestamp_backwards",
    }
)


@dataclass(frozen=True)
class DataIssue:
    """One problem in the data, and where it is."""

    kind: str
    session_id: int
    market_ticker: str | None
    sequence_number: int | None
    message: str
    row_id: int | None = None

    def __str__(self) -> str:
        where = [f"session {self.session_id}"]
        if self.market_ticker is not None:
            where.append(f"market {self.market_ticker}")
        if self.sequence_number is not None:
            where.append(f"seq {self.sequence_number}")
        if self.row_id is not None:
            where.append(f"row id {self.row_id}")
        return f"{', '.join(where)}: {self.message}"


@dataclass
class IngestReport:
    """What cleaning repaired and which markets it rejected, for one session."""

    session_id: int
    repairs: Counter = field(default_factory=Counter)
    examples: list[DataIssue] = field(default_factory=list)
    rejected: dict[str, DataIssue] = field(default_factory=dict)
    missing_sequence_numbers: int = 0
    sequence_span: int = 0  # highest - lowest sequence number + 1, summed over segments
    empty: bool = False
    market_defects: Counter = field(default_factory=Counter)  # ticker -> DEFECTS repaired

    @property
    def missing_fraction(self) -> float:
        """Share of the session-wide sequence that never arrived."""
        return self.missing_sequence_numbers / self.sequence_span if self.sequence_span else 0.0

    def repair(self, kind: str, tickers, sequences, message: str, row_ids=None, count=None) -> None:
        """Count ``len(sequences)`` repairs of one kind (or ``count``, when only the
        first of them are given as examples), keeping a few named examples.

        ``tickers`` and ``sequences`` may hold ``None`` (unknown); ``row_ids`` names the
        rows where the sequence number cannot.
        """
        count = len(sequences) if count is None else count
        if count == 0:
            return
        self.repairs[kind] += count
        if kind in DEFECTS:
            self.market_defects.update(t for t in tickers if t is not None)
        ids = [None] * len(sequences) if row_ids is None else row_ids
        room = max(MAX_EXAMPLES_PER_KIND - sum(e.kind == kind for e in self.examples), 0)
        for ticker, seq, row_id in list(zip(tickers, sequences, ids, strict=True))[:room]:
            self.examples.append(
                DataIssue(kind, self.session_id, ticker, _int(seq), message, _int(row_id))
            )
        first = DataIssue(
            kind, self.session_id, tickers[0], _int(sequences[0]), message, _int(ids[0])
        )
        log.warning("%s (%d in this session)", first, count)

    def reject(self, ticker: str, sequence_number: int | None, message: str) -> None:
        """Exclude one market; the first reason given is the one kept."""
        if ticker in self.rejected:
            return
        issue = DataIssue(
            "rejected_market", self.session_id, ticker, _int(sequence_number), message
        )
        self.rejected[ticker] = issue
        log.error("%s; market excluded", issue)


def _int(value) -> int | None:
    return None if value is None else int(value)


@dataclass
class CleanEvents:
    """Ordered events of the accepted markets of one session.

    Events are sorted by (market, segment, sequence number); ``market`` indexes
    ``tickers``. ``level`` is the delta's bid level (``side * 99 + price - 1``) and
    ``new_size`` its size; for snapshots ``level`` is -1 and the book is row
    ``snapshot_index`` of ``snapshot_books`` (int64[S, 198]). ``timestamp_ms`` holds the
    receive times, replaced where they were outside the recorded window;
    ``time_repaired`` marks those (a replaced time is not a receive time, so such an
    event never shares a step with its neighbours).
    """

    session_id: int
    tickers: list[str]
    market: np.ndarray
    sequence_number: np.ndarray
    timestamp_ms: np.ndarray
    is_snapshot: np.ndarray
    level: np.ndarray
    new_size: np.ndarray
    snapshot_index: np.ndarray
    snapshot_books: np.ndarray
    time_repaired: np.ndarray
    report: IngestReport

    def __len__(self) -> int:
        return len(self.sequence_number)

    def market_groups(self, max_events: int) -> Iterator[CleanEvents]:
        """The events in consecutive groups of whole markets, each of at most
        ``max_events`` events unless one market alone has more (it is then a group of its
        own). Groups share ``snapshot_books`` and ``report`` with these events."""
        offsets = np.searchsorted(self.market, np.arange(len(self.tickers) + 1))
        first = 0
        while first < len(self.tickers):
            # The last market that still ends within max_events of the group's start.
            last = int(np.searchsorted(offsets, offsets[first] + max_events, side="right")) - 1
            last = min(max(last, first + 1), len(self.tickers))
            rows = slice(int(offsets[first]), int(offsets[last]))
            yield replace(
                self,
                tickers=self.tickers[first:last],
                market=self.market[rows] - first,
                **{name: getattr(self, name)[rows] for name in _PER_EVENT},
            )
            first = last

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the events, not their report, to an ``.npz`` file (:meth:`load`)."""
        arrays = {name: getattr(self, name) for name in ("market", "snapshot_books", *_PER_EVENT)}
        np.savez(path, tickers=np.array(self.tickers, dtype=str), **arrays)

    @classmethod
    def load(
        cls, path: str | os.PathLike[str], session_id: int, report: IngestReport
    ) -> CleanEvents:
        """Events written by :meth:`save`, carrying ``report``."""
        with np.load(path) as data:
            arrays = {name: data[name] for name in ("market", "snapshot_books", *_PER_EVENT)}
            tickers = data["tickers"].tolist()
        return cls(session_id=session_id, tickers=tickers, report=report, **arrays)


# The per-event arrays of CleanEvents besides ``market`` (``snapshot_books`` is per snapshot).
_PER_EVENT = (
    "sequence_number", "timestamp_ms", "is_snapshot", "level", "new_size", "snapshot_index",
    "time_repaired",
)  # fmt: skip


def recorded_window(info: SessionInfo) -> tuple[int, int]:
    """The receive times (ms) a session's events may carry: from its start to its end.

    The end is ``ended_at``, else ``last_message_at`` (a session that crashed), else
    :data:`OPEN_SESSION_SPAN_MS` after the start; both ends get
    :data:`WINDOW_TOLERANCE_MS` of slack for clock skew.
    """
    start = int(info.started_at.timestamp() * 1000)
    end_time = info.ended_at or info.last_message_at
    end = int(end_time.timestamp() * 1000) if end_time else start + OPEN_SESSION_SPAN_MS
    return start - WINDOW_TOLERANCE_MS, max(end, start) + WINDOW_TOLERANCE_MS


def clean_session(raw: RawSession) -> CleanEvents:
    """Validate, repair and order the events of one raw session (see the module table)."""
    report = IngestReport(raw.session_id)
    outline = outline_session(raw, report)
    tally = SequenceTally(outline)
    snapshots, deltas = usable_rows(raw.snapshots), usable_rows(raw.deltas)
    events = clean_markets(snapshots, deltas, outline.tickers, outline, report, tally)
    tally.count(report)
    return events


# The columns the first pass over a session reads (:func:`outline_session`).
OUTLINE_COLUMNS = ("id", "market_ticker", "timestamp_ms", "sequence_number")


@dataclass(frozen=True)
class SessionOutline:
    """What cleaning a group of a session's markets needs to know of the whole session.

    ``tickers``: every market with a usable row (sorted), ``rows`` their usable rows;
    ``center`` and ``reach``: a sequence number further than ``reach`` from ``center``
    (the median of every usable row's number) is an outlier; ``window``: the recorded
    window (:func:`recorded_window`).
    """

    session_id: int
    window: tuple[int, int]
    tickers: list[str]
    rows: np.ndarray
    center: float
    reach: float

    def groups(self, max_rows: int) -> list[list[str]]:
        """Consecutive groups of whole markets of at most ``max_rows`` rows each (a
        bigger market is a group of its own)."""
        groups, group, size = [], [], 0
        for ticker, rows in zip(self.tickers, self.rows.tolist(), strict=True):
            if group and size + rows > max_rows:
                groups.append(group)
                group, size = [], 0
            group.append(ticker)
            size += rows
        return groups + [group] if group else groups


def outline_session(
    session: SessionBatches, report: IngestReport, spill: Path | None = None
) -> SessionOutline:
    """The first pass over a session: its :class:`SessionOutline`, from the narrow
    ``OUTLINE_COLUMNS`` read a batch at a time. The sequence numbers (for their median)
    are kept in memory, or in a file in ``spill``. Rows with no ticker, sequence number
    or time are counted here, and dropped: no later pass reads them."""
    numbers = GrowingArray(np.int64, spill / "outline-numbers" if spill else None)
    rows: Counter = Counter()
    for table, what in zip(TABLES, ("snapshot", "delta"), strict=True):
        for batch in session.batches(table, OUTLINE_COLUMNS):
            usable = usable_rows(pa.Table.from_batches([batch]), what, report)
            numbers.append(_ints(usable, "sequence_number"))
            counts = pc.value_counts(usable.column("market_ticker").combine_chunks())
            values, found = counts.field("values"), counts.field("counts")
            rows.update(dict(zip(values.to_pylist(), found.to_pylist(), strict=True)))
    tickers = sorted(rows)
    if not tickers:
        report.empty = not report.repairs
        log.warning("session %d has no usable rows: no snapshots and no deltas", report.session_id)
    all_numbers = numbers.array()
    return SessionOutline(
        session_id=session.info.session_id,
        window=recorded_window(session.info),
        tickers=tickers,
        rows=np.array([rows[t] for t in tickers], dtype=np.int64),
        center=median(all_numbers) if len(all_numbers) else 0.0,
        reach=_outlier_distance(len(all_numbers)),
    )


def clean_markets(
    snapshot_table: pa.Table,
    delta_table: pa.Table,
    tickers: list[str],
    outline: SessionOutline,
    report: IngestReport,
    tally: SequenceTally,
) -> CleanEvents:
    """Clean the usable rows (see :func:`usable_rows`) of the markets ``tickers`` (sorted;
    those of the outline whose rows the tables hold): every check that reads one market
    only. The session-wide sequence checks read ``outline`` or are left to ``tally``,
    which counts them once it has every market."""
    if not tickers:
        return _empty_events(outline.session_id, report)
    code = {ticker: i for i, ticker in enumerate(tickers)}
    names = np.array(tickers, dtype=object)

    center, reach = outline.center, outline.reach
    snapshot_table = _drop_outliers(snapshot_table, center, reach, code, names, report)
    delta_table = _drop_outliers(delta_table, center, reach, code, names, report)
    snaps = _snapshot_events(snapshot_table, code, names, report)
    deltas = _delta_events(delta_table, code, names, report)

    n_snap, n_delta = len(snaps["seq"]), len(deltas["seq"])
    ev = {
        "market": np.concatenate([snaps["market"], deltas["market"]]),
        "seq": np.concatenate([snaps["seq"], deltas["seq"]]),
        "ts": np.concatenate([snaps["ts"], deltas["ts"]]),
        "is_snapshot": np.concatenate([np.ones(n_snap, bool), np.zeros(n_delta, bool)]),
        "level": np.concatenate([np.full(n_snap, -1, np.int16), deltas["level"]]),
        "size": np.concatenate([np.zeros(n_snap, np.int64), deltas["size"]]),
        "snapshot_index": np.concatenate(
            [np.arange(n_snap, dtype=np.int64), np.full(n_delta, -1, np.int64)]
        ),
        "row_id": np.concatenate([snaps["row_id"], deltas["row_id"]]),
        "valid": np.concatenate([np.ones(n_snap, bool), deltas["valid"]]),
    }
    books = snaps["books"]
    window = outline.window

    # Stable sorts keep storage order among equals: the first stored copy wins.
    ev = _take(ev, np.lexsort((ev["seq"], ev["market"])))
    ev["segment"] = _segments(ev, window, names, report)
    if ev["segment"].any():
        ev = _take(ev, np.lexsort((ev["seq"], ev["segment"], ev["market"])))
    _count_stored_out_of_order(ev, names, report)
    tally.add(tickers, ev["market"], ev["segment"], ev["seq"])

    if not ev["valid"].all():
        ev = _take(ev, np.flatnonzero(ev["valid"]))
    keep = _resolve_duplicates(ev, books, names, report)
    keep &= ~np.isin(ev["market"], [code[t] for t in report.rejected if t in code])
    keep &= _after_first_snapshot(ev["market"], ev["seq"], ev["is_snapshot"], keep, names, report)
    if not keep.all():
        ev = _take(ev, np.flatnonzero(keep))
    ts, time_repaired = _repair_times(ev["market"], ev["seq"], ev["ts"], window, names, report)

    market = ev["market"]
    accepted = np.flatnonzero(np.bincount(market, minlength=len(tickers)))
    accepted_tickers = [tickers[i] for i in accepted]
    market = np.searchsorted(accepted, market).astype(np.int32)
    snapshot_index = ev["snapshot_index"]
    used = np.flatnonzero(ev["is_snapshot"])
    books = books[snapshot_index[used]]
    snapshot_index[used] = np.arange(len(used))
    return CleanEvents(
        session_id=outline.session_id,
        tickers=accepted_tickers,
        market=market,
        sequence_number=ev["seq"],
        timestamp_ms=ts,
        is_snapshot=ev["is_snapshot"],
        level=ev["level"],
        new_size=ev["size"],
        snapshot_index=snapshot_index,
        snapshot_books=books,
        time_repaired=time_repaired,
        report=report,
    )


class SequenceTally:
    """The session-wide sequence checks, fed a group of markets at a time: gaps in the
    session's sequence (per segment) and numbers two markets share.

    It keeps one key per distinct (market, segment, number) of every group: the segment
    and the number's offset from the lowest a kept number can have, in one int64
    (:data:`SEGMENT_SHIFT`), and the market; 12 bytes per event, in memory or, given a
    ``spill`` directory, in files there. :meth:`count` sorts a copy of the keys in place
    and scans it a chunk at a time, so with files no part of it need be in memory at once.
    """

    def __init__(self, outline: SessionOutline, spill: Path | None = None) -> None:
        self._code = {ticker: i for i, ticker in enumerate(outline.tickers)}
        self._names = np.array(outline.tickers, dtype=object)
        # Numbers within ``reach`` of ``center`` are kept; a margin covers float rounding.
        self._base = math.floor(outline.center - outline.reach) - _BASE_MARGIN
        self._spill = spill
        self._keys = GrowingArray(np.int64, spill / "tally-keys" if spill else None)
        self._markets = GrowingArray(np.int32, spill / "tally-markets" if spill else None)

    def add(self, tickers: list[str], market, segment, seq) -> None:
        """Events sorted by (market, segment, number); ``market`` indexes ``tickers``."""
        first = np.flatnonzero(_group_starts(market, segment, seq))
        offset = seq[first] - self._base
        if len(first) and (offset.min() < 0 or offset.max() >= 1 << SEGMENT_SHIFT):
            raise ValueError(f"sequence numbers span more than 2^{SEGMENT_SHIFT}: cannot tally")
        if len(first) and segment[first].max() >= 1 << (63 - SEGMENT_SHIFT):
            raise ValueError(f"more than 2^{63 - SEGMENT_SHIFT} segments: cannot tally")
        self._keys.append((segment[first].astype(np.int64) << SEGMENT_SHIFT) | offset)
        codes = np.array([self._code[t] for t in tickers], dtype=np.int32)
        self._markets.append(codes[market[first]])

    def count(self, report: IngestReport) -> None:
        """Count gaps (``sequence_gap``, the span and the missing numbers) and shared
        numbers (``sequence_shared``) into ``report``."""
        keys = self._keys.array(copy=self._spill / "tally-sorted" if self._spill else None)
        keys.sort()
        scan = _SequenceScan()
        for start in range(0, len(keys), CHUNK):
            scan.add(np.asarray(keys[start : start + CHUNK]))
        distinct = len(keys) - scan.shared
        del keys
        if distinct >= 2:
            report.sequence_span = distinct + scan.missing
            report.missing_sequence_numbers = scan.missing
        report.repair(
            "sequence_gap",
            [None] * len(scan.gap_examples),
            [self._number(key) for key in scan.gap_examples],
            "gap in the session-wide sequence before this number (messages missed); data kept",
            count=scan.gaps,
        )
        if scan.shared:
            tickers, numbers = self._shared_examples(scan.shared_examples)
            report.repair(
                "sequence_shared",
                tickers,
                numbers,
                "another market carries the same sequence number; each market keeps its own events",
                count=scan.shared,
            )

    def _number(self, key: int) -> int:
        return (int(key) & _OFFSET_MASK) + self._base

    def _shared_examples(self, shared: list[int]) -> tuple[list[str], list[int]]:
        """For the first shared keys: every market carrying each, but the first (by
        market) that does, as the markets that also carry that number."""
        wanted = np.array(shared, dtype=np.int64)
        keys, markets = self._keys.array(), self._markets.array()
        found = {key: [] for key in shared}
        for start in range(0, len(keys), CHUNK):
            chunk = np.asarray(keys[start : start + CHUNK])
            for row in np.flatnonzero(np.isin(chunk, wanted)):
                found[int(chunk[row])].append(int(markets[start + row]))
        tickers, numbers = [], []
        for key in shared:
            for market in sorted(found[key])[1:]:
                tickers.append(self._names[market])
                numbers.append(self._number(key))
        return tickers, numbers


# A tally key: the segment in the high bits, the number's offset in the low SEGMENT_SHIFT.
SEGMENT_SHIFT = 48
_OFFSET_MASK = (1 << SEGMENT_SHIFT) - 1
_BASE_MARGIN = 1 << 12


class _SequenceScan:
    """Sorted tally keys, a chunk at a time: gaps, missing numbers and repeats (shared
    numbers), with the first :data:`MAX_EXAMPLES_PER_KIND` of each."""

    def __init__(self) -> None:
        self.gaps = self.missing = self.shared = 0
        self.gap_examples: list[int] = []
        self.shared_examples: list[int] = []
        self._last: np.ndarray = np.zeros(0, np.int64)

    def add(self, chunk: np.ndarray) -> None:
        keys = np.concatenate([self._last, chunk])
        if len(keys) < 2:
            self._last = keys[-1:]
            return
        step = np.diff(keys)
        same_segment = (keys[1:] >> SEGMENT_SHIFT) == (keys[:-1] >> SEGMENT_SHIFT)
        gap = np.flatnonzero(same_segment & (step > 1))
        repeat = np.flatnonzero(step == 0)
        self.gaps += len(gap)
        self.missing += int((step[gap] - 1).sum())
        self.shared += len(repeat)
        room = MAX_EXAMPLES_PER_KIND - len(self.gap_examples)
        self.gap_examples += keys[gap[:room] + 1].tolist()
        for key in keys[repeat[:MAX_EXAMPLES_PER_KIND]].tolist():
            examples = self.shared_examples
            if len(examples) < MAX_EXAMPLES_PER_KIND and key not in examples:
                examples.append(key)
        self._last = keys[-1:]


def _take(ev: dict[str, np.ndarray], rows: np.ndarray) -> dict[str, np.ndarray]:
    return {name: values[rows] for name, values in ev.items()}


# -- rows that cannot be placed ----------------------------------------------------------
_KEY_FIELDS = (
    ("market_ticker", "missing_market_ticker"),
    ("sequence_number", "missing_sequence_number"),
    ("timestamp_ms", "missing_timestamp"),
)


def usable_rows(table: pa.Table, what: str = "", report: IngestReport | None = None) -> pa.Table:
    """Drop rows with no ticker, sequence number or timestamp (a database without the
    collector's NOT NULL constraints): such a row has no place in any book. They are
    counted in ``report``, if given (the first pass over a session counts them)."""
    missing = np.zeros(table.num_rows, dtype=bool)
    for column, kind in _KEY_FIELDS:
        null = table.column(column).is_null().to_numpy(zero_copy_only=False) & ~missing
        rows = np.flatnonzero(null)
        if len(rows) and report is not None:
            report.repair(
                kind,
                table.column("market_ticker").take(rows).to_pylist(),
                table.column("sequence_number").take(rows).to_pylist(),
                f"{what} row with no {column.replace('_', ' ')} dropped",
                row_ids=table.column("id").take(rows).to_pylist(),
            )
        missing |= null
    return table.filter(pa.array(~missing)) if missing.any() else table


def _ints(table: pa.Table, column: str) -> np.ndarray:
    return table.column(column).to_numpy().astype(np.int64, copy=False)


def _outlier_distance(rows: int) -> float:
    return float(max(OUTLIER_DISTANCE_PER_ROW * rows, MIN_OUTLIER_DISTANCE))


def _drop_outliers(table, center: float, reach: float, code, names, report) -> pa.Table:
    """Drop rows whose sequence number is far outside the session's (one bad row must not
    make the whole sequence look gapped or out of order)."""
    seq = _ints(table, "sequence_number")
    # In float: the distance of an int64 extreme from the median would overflow int64.
    outlier = np.abs(seq.astype(np.float64) - center) > reach
    rows = np.flatnonzero(outlier)
    if not len(rows):
        return table
    market = _codes(table.column("market_ticker").take(rows), code)
    report.repair(
        "sequence_outlier",
        names[market],
        seq[rows],
        f"sequence number far outside the session's (median {center:.0f}): row dropped",
        row_ids=table.column("id").take(rows).to_pylist(),
    )
    return table.filter(pa.array(~outlier))


# -- snapshots -------------------------------------------------------------------------
def _snapshot_events(table: pa.Table, code, names, report: IngestReport) -> dict:
    market = _codes(table.column("market_ticker"), code)
    seq = _ints(table, "sequence_number")
    ts = _ints(table, "timestamp_ms")

    # A map that could not be decoded is null. Without its bids the book is unknown;
    # a stored ask map is never used, so a bad one is only counted.
    failed = table.column("map_error").is_valid().to_numpy(zero_copy_only=False)
    bad_bids = failed & (
        table.column("yes_bids").is_null().to_numpy(zero_copy_only=False)
        | table.column("no_bids").is_null().to_numpy(zero_copy_only=False)
    )
    error_text = table.column("map_error").to_pylist()
    for row in np.flatnonzero(bad_bids):
        report.reject(names[market[row]], seq[row], f"malformed price map: {error_text[row]}")
    bad_asks = np.flatnonzero(failed & ~bad_bids)
    report.repair(
        "malformed_ask_map",
        names[market[bad_asks]],
        seq[bad_asks],
        "malformed stored ask map ignored (asks are derived from the bids)",
    )

    books = np.zeros((len(seq), BOOK_WIDTH), dtype=np.int64)
    for side, column in ((YES, "yes_bids"), (NO, "no_bids")):
        row, price, size = _explode_map(table.column(column))
        valid = _valid_levels(row, price, size, market, seq, names, report)
        books[row[valid], side * LEVELS + price[valid] - 1] = size[valid]
    _check_stored_asks(table, books, market, seq, names, report)
    return {
        "market": market,
        "seq": seq,
        "ts": ts,
        "books": books,
        "row_id": _row_ids(table),
    }


def _valid_levels(row, price, size, market, seq, names, report) -> np.ndarray:
    keep = np.ones(len(row), dtype=bool)
    for kind, bad, message in (
        (
            "price_out_of_range",
            (price < 1) | (price > LEVELS),
            "snapshot level with price outside 1..99 dropped",
        ),
        ("negative_size", size < 0, "snapshot level with a negative or missing size dropped"),
        (
            "size_out_of_range",
            size > MAX_SIZE,
            f"snapshot level with a size above {MAX_SIZE} dropped",
        ),
    ):
        out = np.flatnonzero(keep & bad)
        report.repair(kind, names[market[row[out]]], seq[row[out]], message)
        keep &= ~bad
    return keep


def _check_stored_asks(table, books, market, seq, names, report) -> None:
    """Count snapshots whose stored ask maps are not the ones derived from the bids."""
    disagree = np.zeros(len(seq), dtype=bool)
    for column, opposite in (("yes_asks", NO), ("no_asks", YES)):
        derived = np.zeros((len(seq), LEVELS + 1), dtype=np.int64)
        derived[:, 1:] = books[:, opposite * LEVELS : (opposite + 1) * LEVELS][:, ::-1]
        stored = np.zeros((len(seq), LEVELS + 1), dtype=np.int64)
        row, price, size = _explode_map(table.column(column))
        ok = (price >= 1) & (price <= LEVELS)
        stored[row[ok], price[ok]] = size[ok]
        disagree |= (stored != derived).any(axis=1)
        disagree[np.unique(row[~ok])] = True
    disagree &= table.column("map_error").is_null().to_numpy(zero_copy_only=False)  # counted
    rows = np.flatnonzero(disagree)
    report.repair(
        "stored_asks_disagree",
        names[market[rows]],
        seq[rows],
        "stored ask map ignored: asks are derived from the opposite bids (100 - p)",
    )


def _explode_map(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row, price, size) for every entry of a map<int32, int64> column (a NULL size
    reads -1: missing)."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    offsets = array.offsets.to_numpy()
    start, end = offsets[0], offsets[-1]
    if end <= start:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    keys = array.keys.to_numpy(zero_copy_only=False)[start:end]
    items = pc.fill_null(array.items, -1).to_numpy(zero_copy_only=False)[start:end]
    row = np.repeat(np.arange(len(array)), np.diff(offsets))
    return row, keys.astype(np.int64), items.astype(np.int64)


# -- deltas ----------------------------------------------------------------------------
def _delta_events(table: pa.Table, code, names, report: IngestReport) -> dict:
    """Delta columns, with ``valid`` false for the deltas dropped as repairs (they still
    count as received for the sequence checks)."""
    market = _codes(table.column("market_ticker"), code)
    seq = _ints(table, "sequence_number")
    ts = _ints(table, "timestamp_ms")
    price = table.column("price").fill_null(0).to_numpy().astype(np.int64)  # NULL: out of range
    size = table.column("new_size").fill_null(-1).to_numpy().astype(np.int64)
    # `remove` clears the level whatever new_size says (DESIGN.md section 2).
    removes = pc.equal(table.column("action"), "remove").fill_null(False)
    size = np.where(removes.to_numpy(zero_copy_only=False), 0, size)
    # A NULL side is an unknown side (fill_null: a null comparison would be None).
    side = table.column("side")
    is_yes = pc.equal(side, "yes").fill_null(False).to_numpy(zero_copy_only=False)
    is_no = pc.equal(side, "no").fill_null(False).to_numpy(zero_copy_only=False)

    valid = np.ones(len(seq), dtype=bool)
    for kind, bad, message in (
        ("unknown_side", ~(is_yes | is_no), "delta with a side other than yes/no dropped"),
        (
            "price_out_of_range",
            (price < 1) | (price > LEVELS),
            "delta with price outside 1..99 dropped",
        ),
        ("negative_size", size < 0, "delta with a negative or missing size dropped"),
        ("size_out_of_range", size > MAX_SIZE, f"delta with a size above {MAX_SIZE} dropped"),
    ):
        rows = np.flatnonzero(valid & bad)
        report.repair(kind, names[market[rows]], seq[rows], message)
        valid &= ~bad
    level = np.where(valid, np.where(is_yes, YES, NO) * LEVELS + price - 1, 0).astype(np.int16)
    return {
        "market": market,
        "seq": seq,
        "ts": ts,
        "level": level,
        "size": size,
        "row_id": _row_ids(table),
        "valid": valid,
    }


# -- shared steps ----------------------------------------------------------------------
def _row_ids(table: pa.Table) -> np.ndarray:
    """The collector's row ids (storage order); a row without one counts as stored last."""
    return table.column("id").fill_null(np.iinfo(np.int64).max).to_numpy().astype(np.int64)


def _codes(column: pa.Array | pa.ChunkedArray, code: dict[str, int]) -> np.ndarray:
    """Ticker strings -> market codes, through Arrow's dictionary encoding."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    mapping = np.array([code[t] for t in encoded.dictionary.to_pylist()] or [0], np.int32)
    return mapping[encoded.indices.to_numpy(zero_copy_only=False)]


def _group_starts(*keys: np.ndarray) -> np.ndarray:
    """True where a run of equal keys starts (the arrays are sorted by those keys)."""
    start = np.ones(len(keys[0]), dtype=bool)
    if len(start):
        start[1:] = np.any([k[1:] != k[:-1] for k in keys], axis=0)
    return start


def _segments(ev: dict, window: tuple[int, int], names, report: IngestReport) -> np.ndarray:
    """Segment of every event (``ev`` sorted by market, then sequence number).

    Scanning a market's events in receive order, a snapshot starts a new segment (the
    collector reconnected and Kalshi began a new subscription, whose numbers start again)
    when all of these hold:

    * its number is at or below the highest its market received in the current segment,
      and it arrived more than ``TIME_TOLERANCE_MS`` after that highest one;
    * it was stored (row id) after every earlier snapshot of the market;
    * the number went back far: to or below the snapshot that began the segment, or by
      at least ``RESTART_MIN_DROP`` (a new subscription numbers from 1; a small step back
      with a late time is more likely a clock glitch);
    * until then the segment's numbers and receive times agreed: no event arrived more
      than the tolerance after an event with a higher number. Where they already
      disagree, the times are not to be trusted (a clock that jumps), a restart cannot be
      told from a glitch, and the duplicate and time checks decide instead.

    Times outside the recorded window are skipped (they say nothing about arrival), and
    so are events before a segment's first snapshot. Only markets whose receive times step
    back in sequence order can hold a restart, so only their events are scanned. Across a
    restart, "later" means later received: the market's events are ordered by segment,
    then number.
    """
    market, seq, ts = ev["market"], ev["seq"], ev["ts"]
    segment = np.zeros(len(seq), dtype=np.int32)
    back = np.flatnonzero((market[1:] == market[:-1]) & (ts[1:] < ts[:-1] - TIME_TOLERANCE_MS))
    if not len(back):
        return segment
    rows = np.flatnonzero(np.isin(market, np.unique(market[back + 1])))
    by_time = rows[np.lexsort((seq[rows], ts[rows], market[rows]))]
    group_start = _group_starts(market[by_time])
    restart = _restarts(
        group_start,
        ev["is_snapshot"][by_time],
        seq[by_time],
        ts[by_time],
        ev["row_id"][by_time],
        (ts[by_time] >= window[0]) & (ts[by_time] <= window[1]),
        TIME_TOLERANCE_MS,
        RESTART_MIN_DROP,
    )
    starts = by_time[restart]
    report.repair(
        "sequence_restart",
        names[market[starts]],
        seq[starts],
        "the sequence restarts at this snapshot (a reconnect): a new segment begins",
    )
    # Every event of a market received at or after a restart belongs to its segment.
    segment[by_time] = _segment_numbers(group_start, restart)
    return segment


@numba.njit(cache=True)
def _restarts(
    group_start, is_snapshot, seq, ts, row_id, ts_valid, tolerance, min_drop
):  # pragma: no cover - compiled; tested through clean_session
    """Per event in receive order: does a new segment start here (see ``_segments``)."""
    restart = np.zeros(len(seq), dtype=np.bool_)
    first_seq = top_seq = top_ts = last_snapshot_id = 0
    has_snapshot = in_order = False
    for i in range(len(seq)):
        if group_start[i]:
            has_snapshot = False
        if not ts_valid[i]:
            continue
        if not has_snapshot:
            if is_snapshot[i]:  # events before a segment's first snapshot say nothing
                has_snapshot = in_order = True
                first_seq = top_seq = seq[i]
                top_ts, last_snapshot_id = ts[i], row_id[i]
            continue
        late_and_lower = seq[i] <= top_seq and ts[i] > top_ts + tolerance
        far_back = seq[i] <= first_seq or top_seq - seq[i] >= min_drop
        if (
            late_and_lower
            and far_back
            and in_order
            and is_snapshot[i]
            and row_id[i] > last_snapshot_id
        ):
            restart[i] = True
            first_seq = top_seq = seq[i]
            top_ts = ts[i]
        elif seq[i] > top_seq:
            top_seq, top_ts = seq[i], ts[i]
        elif late_and_lower:
            in_order = False  # numbers and times disagree: no restart can be told apart
        if is_snapshot[i]:
            last_snapshot_id = max(last_snapshot_id, row_id[i])
    return restart


def _segment_numbers(group_start: np.ndarray, restart: np.ndarray) -> np.ndarray:
    """Running count of restarts within each group."""
    total = np.cumsum(restart)
    at_start = total[group_start] - restart[group_start]
    counts = np.diff(np.r_[np.flatnonzero(group_start), len(total)])
    return (total - np.repeat(at_start, counts)).astype(np.int32)


def _count_stored_out_of_order(ev: dict, names, report: IngestReport) -> None:
    """Rows stored (by id, in their own table) after a higher number of their market and
    segment: the sort repairs them; counted so storage problems are visible."""
    for table_rows in (np.flatnonzero(ev["is_snapshot"]), np.flatnonzero(~ev["is_snapshot"])):
        market, segment = ev["market"][table_rows], ev["segment"][table_rows]
        ids = ev["row_id"][table_rows]
        # ``ev`` is in (market, segment, number) order: if ids rise within every group
        # there, numbers rise in storage order too, and nothing was stored late.
        if not (np.diff(ids) < 0)[~_group_starts(market, segment)[1:]].any():
            continue
        stored = table_rows[np.lexsort((ev["row_id"][table_rows], segment, market))]
        seq = ev["seq"][stored]
        late = seq < _previous_max(_group_starts(ev["market"][stored], ev["segment"][stored]), seq)
        rows = stored[late]
        report.repair(
            "stored_out_of_order",
            names[ev["market"][rows]],
            ev["seq"][rows],
            "row stored after a higher sequence number; events sorted by sequence",
        )


@numba.njit(cache=True)
def _previous_max(group_start, values):  # pragma: no cover - compiled; tested through callers
    """The largest of the earlier values of each row's group (the row's own if first)."""
    out = np.empty_like(values)
    top = values[0] if len(values) else 0
    for i in range(len(values)):
        if group_start[i]:
            top = values[i]
        out[i] = top
        if values[i] > top:
            top = values[i]
    return out


def _resolve_duplicates(ev: dict, books: np.ndarray, names, report) -> np.ndarray:
    """Drop exact repeats of (market, segment, sequence); reject markets whose repeats
    disagree."""
    market, seq, segment = ev["market"], ev["seq"], ev["segment"]
    is_snapshot, level, size, snapshot_index = (
        ev["is_snapshot"], ev["level"], ev["size"], ev["snapshot_index"]
    )  # fmt: skip
    keep = np.ones(len(seq), dtype=bool)
    same = ~_group_starts(market, segment, seq)
    if not same.any():
        return keep
    same = np.flatnonzero(same)
    # The first of each run of copies: all compare to it.
    first = np.flatnonzero(_group_starts(market, segment, seq))
    first = first[np.searchsorted(first, same, side="right") - 1]
    identical = (
        (is_snapshot[same] == is_snapshot[first])
        & (level[same] == level[first])
        & (size[same] == size[first])
    )
    both_snap = identical & is_snapshot[same]
    identical[both_snap] = (
        books[snapshot_index[same[both_snap]]] == books[snapshot_index[first[both_snap]]]
    ).all(axis=1)
    copies = same[identical]
    keep[copies] = False
    report.repair(
        "duplicate_sequence",
        names[market[copies]],
        seq[copies],
        "event repeated with the same sequence number; one copy kept",
    )
    for row in same[~identical]:
        report.reject(
            names[market[row]],
            seq[row],
            "two different events share this sequence number; the book is ambiguous",
        )
    return keep


def _after_first_snapshot(market, seq, is_snapshot, keep, names, report) -> np.ndarray:
    """Mask of events at or after their market's first (kept) snapshot."""
    snap_count = np.cumsum(is_snapshot & keep)
    if not len(market):
        return np.ones(0, dtype=bool)
    starts = np.flatnonzero(_group_starts(market))
    before_start = np.r_[0, snap_count][starts]
    seen = snap_count - np.repeat(before_start, np.diff(np.r_[starts, len(market)]))
    early = keep & (seen == 0)
    rows = np.flatnonzero(early)
    report.repair(
        "delta_before_snapshot",
        names[market[rows]],
        seq[rows],
        "delta before the market's first snapshot dropped (the book is unknown)",
    )
    markets = int(market.max()) + 1 if len(market) else 0
    has_events = np.bincount(market[keep], minlength=markets) > 0
    has_snapshot = np.bincount(market[keep & is_snapshot], minlength=markets) > 0
    never = np.flatnonzero(has_events & ~has_snapshot)
    for m in never:
        first = rows[market[rows] == m][0]
        report.reject(names[m], seq[first], "no snapshot: the market's book is never known")
    return ~early


def _repair_times(
    market, seq, ts, window, names, report: IngestReport
) -> tuple[np.ndarray, np.ndarray]:
    """Receive times inside the recorded window; times that step back are counted.

    A time outside the window takes the market's previous valid time (the session's
    start for a market's leading rows), so the event and its book stay and no time is
    taken from later data. A time before its market's previous event's is kept as
    received and counted once, where it steps back (``timestamp_backwards`` beyond
    ``TIME_TOLERANCE_MS``, ``timestamp_jitter`` within it): raising times to the latest
    would let one event with a time far ahead rewrite every later time of its market,
    and the features clamp times anyway
    (:func:`kalshi_pipeline.market.features.clamped_times`). Returns the times and which
    of them were replaced.
    """
    n = len(ts)
    repaired = np.zeros(n, dtype=bool)
    if not n:
        return ts, repaired
    ts = ts.copy()
    group_start = _group_starts(market)
    starts = np.flatnonzero(group_start)
    first_row = np.repeat(starts, np.diff(np.r_[starts, n]))
    outside = (ts < window[0]) | (ts > window[1])
    if outside.any():
        previous = np.maximum.accumulate(np.where(outside, -1, np.arange(n)))
        session_start = window[0] + WINDOW_TOLERANCE_MS
        replacement = np.where(previous >= first_row, ts[np.maximum(previous, 0)], session_start)
        bad = np.flatnonzero(outside)
        report.repair(
            "timestamp_out_of_window",
            names[market[bad]],
            seq[bad],
            f"receive time outside the session's recorded window ({window[0]}..{window[1]} "
            "ms): replaced by the market's previous valid time",
        )
        ts[bad] = replacement[bad]
        repaired[bad] = True
    behind = np.zeros(n, dtype=np.int64)
    behind[1:] = np.where(group_start[1:], 0, ts[:-1] - ts[1:])
    far = np.flatnonzero(behind > TIME_TOLERANCE_MS)
    report.repair(
        "timestamp_backwards",
        names[market[far]],
        seq[far],
        f"receive time more than {TIME_TOLERANCE_MS} ms before the previous event's: kept "
        "as received (features clamp it)",
    )
    jitter = np.flatnonzero((behind > 0) & (behind <= TIME_TOLERANCE_MS))
    report.repair(
        "timestamp_jitter",
        names[market[jitter]],
        seq[jitter],
        f"receive time up to {TIME_TOLERANCE_MS} ms before the previous event's: kept",
    )
    return ts, repaired


def _empty_events(session_id: int, report: IngestReport) -> CleanEvents:
    return CleanEvents(
        session_id=session_id,
        tickers=[],
        market=np.zeros(0, np.int32),
        sequence_number=np.zeros(0, np.int64),
        timestamp_ms=np.zeros(0, np.int64),
        is_snapshot=np.zeros(0, bool),
        level=np.zeros(0, np.int16),
        new_size=np.zeros(0, np.int64),
        snapshot_index=np.zeros(0, np.int64),
        snapshot_books=np.zeros((0, BOOK_WIDTH), np.int64),
        time_repaired=np.zeros(0, bool),
        report=report,
    )
