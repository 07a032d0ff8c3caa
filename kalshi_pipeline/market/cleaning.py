"""From a raw session to clean, ordered book events: every bad-input case has one outcome.

:func:`clean_session` turns a :class:`~kalshi_pipeline.sources.raw.RawSession` into
:class:`CleanEvents`: the snapshot and delta events of every usable market, sorted by
(market, sequence number), with snapshots expanded to full 198-level books. It works on
whole columns (sorts, masks, ``searchsorted``), never on one event at a time.

What happens to bad input (each case is tested in ``tests/market/test_cleaning.py``).
*Repairs* are counted in :class:`IngestReport` and logged, with an example naming the
session, market and sequence number; *rejections* exclude one market with an error that
names the same. Good markets of the same session are always kept.

=========================================  ===============================================
input                                      outcome
=========================================  ===============================================
price outside 1..99 (delta or map level)   repair ``price_out_of_range``: dropped
negative (or missing) size                 repair ``negative_size``: dropped
unknown delta side                         repair ``unknown_side``: dropped
duplicate sequence number, same event      repair ``duplicate_sequence``: one copy kept
duplicate sequence number, other event     rejection of that market (ambiguous book)
rows stored out of sequence order          repair ``stored_out_of_order``: sorted
delta before the market's first snapshot   repair ``delta_before_snapshot``: dropped; a
                                           market with no snapshot at all is rejected
gap in the session-wide sequence           repair ``sequence_gap`` (counted per gap;
                                           ``missing_sequence_numbers`` in the report);
                                           per-market gaps are normal and not counted
crossed book after applying deltas         repair ``crossed_book``: the step is kept and
                                           flagged ``crossed`` (see ``books.py``)
malformed JSON bid map                     rejection of that market at that snapshot
malformed JSON ask map                     repair ``malformed_ask_map``: ignored (asks
                                           are always derived from bids)
stored asks that disagree with the bids    repair ``stored_asks_disagree``: asks are
                                           always derived from bids (older rows: 99 - p)
several events in one millisecond          ordered by sequence number; none lost
empty session                              ``report.empty``; no markets, no error
session still ``active``                   never reaches here: sources raise
                                           ``SessionNotComplete`` and callers skip it
=========================================  ===============================================
"""

from __future__ import annotations

import logging
from collections import Counter
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kalshi_pipeline.sources.raw import RawSession

log = logging.getLogger(__name__)

LEVELS = 99  # prices 1..99 on each bid book; level = side * 99 + price - 1
BOOK_WIDTH = 2 * LEVELS
YES, NO = 0, 1
MAX_EXAMPLES_PER_KIND = 20
# Repairs that mean a market's own data was wrong (dropped events, crossed books). The
# others fix the storage without losing or doubting anything (sorting rows, dropping an
# exact copy, ignoring stored asks) and do not lower a view's data quality.
DEFECTS = frozenset(
    {"price_out_of_range", "negative_size", "unknown_side", "delta_before_snapshot", "crossed_book"}
)


@dataclass(frozen=True)
class DataIssue:
    """One problem in the data, and where it is."""

    kind: str
    session_id: int
    market_ticker: str | None
    sequence_number: int | None
    message: str

    def __str__(self) -> str:
        where = [f"session {self.session_id}"]
        if self.market_ticker is not None:
            where.append(f"market {self.market_ticker}")
        if self.sequence_number is not None:
            where.append(f"seq {self.sequence_number}")
        return f"{', '.join(where)}: {self.message}"


@dataclass
class IngestReport:
    """What cleaning repaired and which markets it rejected, for one session."""

    session_id: int
    repairs: Counter = field(default_factory=Counter)
    examples: list[DataIssue] = field(default_factory=list)
    rejected: dict[str, DataIssue] = field(default_factory=dict)
    missing_sequence_numbers: int = 0
    sequence_span: int = 0  # highest - lowest sequence number + 1
    empty: bool = False
    market_defects: Counter = field(default_factory=Counter)  # ticker -> DEFECTS repaired

    @property
    def missing_fraction(self) -> float:
        """Share of the session-wide sequence that never arrived."""
        return self.missing_sequence_numbers / self.sequence_span if self.sequence_span else 0.0

    def repair(self, kind: str, tickers, sequences, message: str) -> None:
        """Count ``len(sequences)`` repairs of one kind, keeping a few named examples."""
        count = len(sequences)
        if count == 0:
            return
        self.repairs[kind] += count
        if kind in DEFECTS:
            self.market_defects.update(t for t in tickers if t is not None)
        room = MAX_EXAMPLES_PER_KIND - sum(e.kind == kind for e in self.examples)
        for ticker, seq in list(zip(tickers, sequences, strict=True))[: max(room, 0)]:
            self.examples.append(DataIssue(kind, self.session_id, ticker, int(seq), message))
        first = DataIssue(kind, self.session_id, tickers[0], int(sequences[0]), message)
        log.warning("%s (%d in this session)", first, count)

    def reject(self, ticker: str, sequence_number: int | None, message: str) -> None:
        """Exclude one market; the first reason given is the one kept."""
        if ticker in self.rejected:
            return
        seq = None if sequence_number is None else int(sequence_number)
        issue = DataIssue("rejected_market", self.session_id, ticker, seq, message)
        self.rejected[ticker] = issue
        log.error("%s; market excluded", issue)


@dataclass
class CleanEvents:
    """Ordered events of the accepted markets of one session.

    Events are sorted by (market, sequence number); ``market`` indexes ``tickers``.
    ``level`` is the delta's bid level (``side * 99 + price - 1``) and ``new_size`` its
    size; for snapshots ``level`` is -1 and the book is row ``snapshot_index`` of
    ``snapshot_books`` (int64[S, 198]).
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
    report: IngestReport

    def __len__(self) -> int:
        return len(self.sequence_number)


def clean_session(raw: RawSession) -> CleanEvents:
    """Validate, repair and order the events of one raw session (see the module table)."""
    report = IngestReport(raw.session_id)
    tickers = sorted(
        set(raw.snapshots.column("market_ticker").to_pylist())
        | set(pc.unique(raw.deltas.column("market_ticker")).to_pylist())
    )
    if not tickers:
        report.empty = True
        log.warning("session %d is empty: no snapshots and no deltas", raw.session_id)
        return _empty_events(raw.session_id, report)
    code = {ticker: i for i, ticker in enumerate(tickers)}
    names = np.array(tickers, dtype=object)

    snaps = _snapshot_events(raw.snapshots, code, names, report)
    deltas = _delta_events(raw.deltas, code, names, report)
    _count_gaps(np.concatenate([snaps["seq_all"], deltas["seq_all"]]), report)

    n_snap = len(snaps["seq"])
    market = np.concatenate([snaps["market"], deltas["market"]])
    seq = np.concatenate([snaps["seq"], deltas["seq"]])
    ts = np.concatenate([snaps["ts"], deltas["ts"]])
    is_snapshot = np.concatenate([np.ones(n_snap, bool), np.zeros(len(deltas["seq"]), bool)])
    level = np.concatenate([np.full(n_snap, -1, np.int16), deltas["level"]])
    size = np.concatenate([np.zeros(n_snap, np.int64), deltas["size"]])
    snapshot_index = np.concatenate(
        [np.arange(n_snap, dtype=np.int64), np.full(len(deltas["seq"]), -1, np.int64)]
    )
    books = snaps["books"]

    # Stable sort keeps storage order among equals: the first stored copy wins.
    order = np.lexsort((seq, market))
    market, seq, ts = market[order], seq[order], ts[order]
    is_snapshot, level, size = is_snapshot[order], level[order], size[order]
    snapshot_index = snapshot_index[order]

    keep = _resolve_duplicates(
        market, seq, is_snapshot, level, size, snapshot_index, books, names, report
    )
    keep &= ~np.isin(market, [code[t] for t in report.rejected])
    keep &= _after_first_snapshot(market, seq, is_snapshot, keep, names, report)

    market, seq, ts = market[keep], seq[keep], ts[keep]
    is_snapshot, level, size = is_snapshot[keep], level[keep], size[keep]
    snapshot_index = snapshot_index[keep]

    accepted = np.flatnonzero(np.bincount(market, minlength=len(tickers)))
    accepted_tickers = [tickers[i] for i in accepted]
    market = np.searchsorted(accepted, market).astype(np.int32)
    used = np.flatnonzero(is_snapshot)
    books = books[snapshot_index[used]]
    snapshot_index[used] = np.arange(len(used))
    return CleanEvents(
        session_id=raw.session_id,
        tickers=accepted_tickers,
        market=market,
        sequence_number=seq,
        timestamp_ms=ts,
        is_snapshot=is_snapshot,
        level=level,
        new_size=size,
        snapshot_index=snapshot_index,
        snapshot_books=books,
        report=report,
    )


# -- snapshots -------------------------------------------------------------------------
def _snapshot_events(table: pa.Table, code, names, report: IngestReport) -> dict:
    table = _in_storage_order(table, names, code, report)
    market = _codes(table.column("market_ticker"), code)
    seq = table.column("sequence_number").to_numpy()
    ts = table.column("timestamp_ms").to_numpy()

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
    return {"market": market, "seq": seq, "ts": ts, "books": books, "seq_all": seq}


def _valid_levels(row, price, size, market, seq, names, report) -> np.ndarray:
    in_range = (price >= 1) & (price <= LEVELS)
    out = np.flatnonzero(~in_range)
    report.repair(
        "price_out_of_range",
        names[market[row[out]]],
        seq[row[out]],
        "snapshot level with price outside 1..99 dropped",
    )
    negative = in_range & (size < 0)
    neg = np.flatnonzero(negative)
    report.repair(
        "negative_size",
        names[market[row[neg]]],
        seq[row[neg]],
        "snapshot level with negative size dropped",
    )
    return in_range & ~negative


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
    """(row, price, size) for every entry of a map<int32, int64> column."""
    array = column.combine_chunks() if column.num_chunks != 1 else column.chunk(0)
    offsets = array.offsets.to_numpy()
    start, end = offsets[0], offsets[-1]
    keys = array.keys.to_numpy(zero_copy_only=False)[start:end] if end > start else None
    if keys is None:
        empty = np.zeros(0, np.int64)
        return empty, empty, empty
    items = array.items.to_numpy(zero_copy_only=False)[start:end]
    row = np.repeat(np.arange(len(array)), np.diff(offsets))
    return row, keys.astype(np.int64), items.astype(np.int64)


# -- deltas ----------------------------------------------------------------------------
def _delta_events(table: pa.Table, code, names, report: IngestReport) -> dict:
    table = _in_storage_order(table, names, code, report)
    market = _codes(table.column("market_ticker"), code)
    seq = table.column("sequence_number").to_numpy()
    ts = table.column("timestamp_ms").to_numpy()
    price = table.column("price").fill_null(0).to_numpy().astype(np.int64)  # NULL: out of range
    new_size = table.column("new_size")
    size = new_size.fill_null(-1).to_numpy().astype(np.int64)
    # `remove` clears the level whatever new_size says (DESIGN.md section 2).
    size = np.where(
        pc.equal(table.column("action"), "remove").to_numpy(zero_copy_only=False), 0, size
    )
    # A NULL side is an unknown side (fill_null: a null comparison would be None).
    side = table.column("side")
    is_yes = pc.equal(side, "yes").fill_null(False).to_numpy(zero_copy_only=False)
    is_no = pc.equal(side, "no").fill_null(False).to_numpy(zero_copy_only=False)

    keep = np.ones(len(seq), dtype=bool)
    for kind, bad, message in (
        ("unknown_side", ~(is_yes | is_no), "delta with a side other than yes/no dropped"),
        (
            "price_out_of_range",
            (price < 1) | (price > LEVELS),
            "delta with price outside 1..99 dropped",
        ),
        ("negative_size", size < 0, "delta with a negative or missing size dropped"),
    ):
        rows = np.flatnonzero(keep & bad)
        report.repair(kind, names[market[rows]], seq[rows], message)
        keep &= ~bad
    level = (np.where(is_yes, YES, NO) * LEVELS + price - 1).astype(np.int16)
    return {
        "market": market[keep],
        "seq": seq[keep],
        "ts": ts[keep],
        "level": level[keep],
        "size": size[keep],
        "seq_all": seq,
    }


# -- shared steps ----------------------------------------------------------------------
def _in_storage_order(table: pa.Table, names, code, report: IngestReport) -> pa.Table:
    """Sort by the collector's row id and count rows stored out of sequence order."""
    ids = table.column("id").to_numpy()
    if len(ids) and (np.diff(ids) < 0).any():
        table = table.take(np.argsort(ids, kind="stable"))
    seq = table.column("sequence_number").to_numpy()
    if len(seq):
        late = np.flatnonzero(seq < np.maximum.accumulate(seq))
        if len(late):
            market = _codes(table.column("market_ticker").take(late), code)
            report.repair(
                "stored_out_of_order",
                names[market],
                seq[late],
                "row stored after a higher sequence number; events sorted by sequence",
            )
    return table


def _codes(column: pa.Array | pa.ChunkedArray, code: dict[str, int]) -> np.ndarray:
    """Ticker strings -> market codes, through Arrow's dictionary encoding."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(column)
    mapping = np.array([code[t] for t in encoded.dictionary.to_pylist()] or [0], np.int32)
    return mapping[encoded.indices.to_numpy(zero_copy_only=False)]


def _count_gaps(all_sequences: np.ndarray, report: IngestReport) -> None:
    """Gaps in the session-wide sequence: messages the collector never received."""
    ordered = np.sort(all_sequences)  # np.unique hashes: slower than a sort here
    unique = ordered[np.r_[True, ordered[1:] != ordered[:-1]]] if len(ordered) else ordered
    if len(unique) < 2:
        return
    report.sequence_span = int(unique[-1] - unique[0] + 1)
    step = np.diff(unique)
    gaps = np.flatnonzero(step > 1)
    report.missing_sequence_numbers = int((step[gaps] - 1).sum())
    report.repair(
        "sequence_gap",
        [None] * len(gaps),
        unique[gaps + 1],
        "gap in the session-wide sequence before this number (messages missed); data kept",
    )


def _resolve_duplicates(
    market, seq, is_snapshot, level, size, snapshot_index, books, names, report
) -> np.ndarray:
    """Drop exact repeats of (market, sequence); reject markets whose repeats disagree."""
    keep = np.ones(len(seq), dtype=bool)
    same = np.flatnonzero((market[1:] == market[:-1]) & (seq[1:] == seq[:-1])) + 1
    if len(same) == 0:
        return keep
    first = same - 1
    # Walk back to the first of a run of copies, so that all compare to the first one.
    while True:
        back = np.isin(first, same)
        if not back.any():
            break
        first = np.where(back, first - 1, first)
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
    starts = np.flatnonzero(np.r_[True, market[1:] != market[:-1]])
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
        report=report,
    )
