"""The per-market cleaning pipeline: raw rows of some markets in, their CleanEvents out.

:func:`clean_session` cleans a whole session held in memory; :func:`clean_markets` is
every check that reads one market, run on a group of markets (the whole session, or one
group of :mod:`kalshi_pipeline.market.grouped_cleaning`), in stages: outliers dropped and
rows read into event columns, the columns ordered (segments after restarts, rows stored
late counted), bad events dropped (invalid deltas, duplicates, rejected markets, deltas
before a snapshot), times repaired, and the accepted markets' events handed over with
their trades. Its session-wide checks read the :class:`~.outline.SessionOutline` or are
left to the :class:`~.sequence.SequenceTally`; the trade tape is checked once for the
whole session (:func:`~.trades.usable_trades`) before any group.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from kalshi_pipeline.market.cleaning.columns import EventColumns
from kalshi_pipeline.market.cleaning.deltas import delta_events
from kalshi_pipeline.market.cleaning.event_order import (
    after_first_snapshot,
    count_stored_out_of_order,
    resolve_duplicates,
)
from kalshi_pipeline.market.cleaning.events import CleanEvents, empty_events
from kalshi_pipeline.market.cleaning.outline import (
    SessionOutline,
    drop_outliers,
    outline_session,
    usable_rows,
)
from kalshi_pipeline.market.cleaning.price_maps import (
    KnownBooks,
    known_book_events,
    snapshot_events,
)
from kalshi_pipeline.market.cleaning.report import IngestReport
from kalshi_pipeline.market.cleaning.restarts import segments
from kalshi_pipeline.market.cleaning.sequence import SequenceTally
from kalshi_pipeline.market.cleaning.timestamps import repair_times
from kalshi_pipeline.market.cleaning.trade_columns import CleanTrades, trade_columns
from kalshi_pipeline.market.cleaning.trades import SessionTrades, trade_numbers, usable_trades
from kalshi_pipeline.sources.raw import RawSession


def clean_session(raw: RawSession) -> CleanEvents:
    """Validate, repair and order the events of one raw session (see the table in
    :mod:`kalshi_pipeline.market.cleaning`)."""
    report = IngestReport(raw.session_id)
    outline = outline_session(raw, report)
    tally = SequenceTally(outline)
    trades = usable_trades(raw.trades, outline, report)
    snapshots, deltas = usable_rows(raw.snapshots), usable_rows(raw.deltas)
    events = clean_markets(snapshots, deltas, outline.tickers, outline, report, tally, trades)
    tally.count(report)
    return events


def clean_markets(
    snapshot_table: pa.Table,
    delta_table: pa.Table,
    tickers: list[str],
    outline: SessionOutline,
    report: IngestReport,
    tally: SequenceTally,
    trades: SessionTrades | None = None,
    known: KnownBooks | None = None,
) -> CleanEvents:
    """Clean the usable rows (see :func:`~.outline.usable_rows`) of the markets
    ``tickers`` (sorted; those of the outline whose rows the tables hold): every check
    that reads one market only. The session-wide sequence checks read ``outline`` or are
    left to ``tally``, which counts them once it has every market. ``trades``: the
    session's trades (:func:`~.trades.usable_trades`; None without a tape): the kept ones
    of the accepted markets go with their events, and every number received is counted.
    ``known``: snapshots with known books (the live path's), events before the tables'."""
    group_trades = None if trades is None else trade_columns(trades.kept, tickers)
    if not tickers:
        return empty_events(outline.session_id, report, group_trades)
    code = {ticker: i for i, ticker in enumerate(tickers)}
    names = np.array(tickers, dtype=object)
    ev, books = _event_columns(snapshot_table, delta_table, outline, code, names, report)
    if known is not None and len(known.tickers):
        carried, known_books = known_book_events(known, code, first=len(books))
        ev, books = EventColumns.concatenate(carried, ev), np.concatenate([books, known_books])
    ev = _ordered(ev, outline.window, names, report)
    tally.add(tickers, ev.market, ev.segment, ev.seq)
    if trades is not None:  # numbers the book's counter gave trades were received
        tally.add(tickers, *trade_numbers(trades.numbered, tickers, ev, outline))
    ev = _without_bad_events(ev, books, code, names, report)
    ts, time_repaired = repair_times(ev.market, ev.seq, ev.ts, outline.window, names, report)
    return _accepted_events(ev, ts, time_repaired, books, tickers, outline, report, group_trades)


def _event_columns(
    snapshot_table: pa.Table, delta_table: pa.Table, outline: SessionOutline, code, names, report
) -> tuple[EventColumns, np.ndarray]:
    """Outliers dropped, snapshots then deltas as one set of event columns (in storage
    order), and the snapshots' books (row ``snapshot_index`` of each snapshot)."""
    center, reach = outline.center, outline.reach
    snapshot_table = drop_outliers(snapshot_table, center, reach, code, names, report)
    delta_table = drop_outliers(delta_table, center, reach, code, names, report)
    snapshots, books = snapshot_events(snapshot_table, code, names, report)
    deltas = delta_events(delta_table, code, names, report)
    return EventColumns.concatenate(snapshots, deltas), books


def _ordered(
    ev: EventColumns, window: tuple[int, int], names, report: IngestReport
) -> EventColumns:
    """The events in (market, segment, sequence number) order, with their ``segment``;
    rows that were stored out of that order are counted."""
    # Stable sorts keep storage order among equals: the first stored copy wins.
    ev = _taken(ev, np.lexsort((ev.seq, ev.market)))
    ev = ev.with_segment(segments(ev, window, names, report))
    if ev.segment.any():
        ev = _taken(ev, np.lexsort((ev.seq, ev.segment, ev.market)))
    count_stored_out_of_order(ev, names, report)
    return ev


def _taken(ev: EventColumns, order: np.ndarray) -> EventColumns:
    """``ev`` in ``order`` (``ev`` itself when it is in that order already, as a commit's
    few rows mostly are)."""
    return ev.take(order) if (order[1:] < order[:-1]).any() else ev


def _without_bad_events(ev: EventColumns, books: np.ndarray, code, names, report) -> EventColumns:
    """Drop the invalid deltas, the extra copies of a number, the rejected markets'
    events and the deltas before their market's first snapshot."""
    if not ev.valid.all():
        ev = ev.take(np.flatnonzero(ev.valid))
    keep = resolve_duplicates(ev, books, names, report)
    if rejected := [code[t] for t in report.rejected if t in code]:
        keep &= ~np.isin(ev.market, rejected)
    keep &= after_first_snapshot(ev.market, ev.seq, ev.is_snapshot, keep, names, report)
    if not keep.all():
        ev = ev.take(np.flatnonzero(keep))
    return ev


def _accepted_events(
    ev: EventColumns,
    ts: np.ndarray,
    time_repaired: np.ndarray,
    books: np.ndarray,
    tickers: list[str],
    outline: SessionOutline,
    report: IngestReport,
    trades: CleanTrades | None,
) -> CleanEvents:
    """The remaining events as :class:`CleanEvents`: markets renumbered to the accepted
    ones, only the books of the snapshots kept, and the accepted markets' ``trades``."""
    market = ev.market
    accepted = np.flatnonzero(np.bincount(market, minlength=len(tickers)))
    accepted_tickers = [tickers[i] for i in accepted]
    market = np.searchsorted(accepted, market).astype(np.int32)
    snapshot_index = ev.snapshot_index
    used = np.flatnonzero(ev.is_snapshot)
    books = books[snapshot_index[used]]
    snapshot_index[used] = np.arange(len(used))
    return CleanEvents(
        session_id=outline.session_id,
        tickers=accepted_tickers,
        market=market,
        sequence_number=ev.seq,
        timestamp_ms=ts,
        is_snapshot=ev.is_snapshot,
        level=ev.level,
        new_size=ev.size,
        snapshot_index=snapshot_index,
        snapshot_books=books,
        time_repaired=time_repaired,
        report=report,
        trades=_accepted_trades(trades, tickers, accepted_tickers),
    )


def _accepted_trades(
    trades: CleanTrades | None, tickers: list[str], accepted: list[str]
) -> CleanTrades | None:
    """The trades of the ``accepted`` markets (a sorted subset of ``tickers``), their
    markets renumbered to them; a rejected market's trades go with it."""
    if trades is None or not len(trades):  # no trade: none to take or renumber
        return trades
    position = {ticker: i for i, ticker in enumerate(tickers)}
    codes = np.array([position[t] for t in accepted], dtype=np.int32)
    rows = np.flatnonzero(np.isin(trades.market, codes))
    return trades.take(rows, np.searchsorted(codes, trades.market[rows]).astype(np.int32))
