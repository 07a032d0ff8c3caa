"""From a raw session to clean, ordered book events: every bad-input case has one outcome.

:func:`clean_session` turns a :class:`~kalshi_pipeline.sources.raw.RawSession` into
:class:`CleanEvents`: the snapshot and delta events of every usable market, sorted by
(market, segment, sequence number), with snapshots expanded to full 198-level books. It
works on whole columns (sorts, masks, ``searchsorted``, two small compiled scans), never
on one event at a time in Python.

It runs in three parts, so that a session too big to hold can be cleaned a group of
markets at a time (:mod:`kalshi_pipeline.market.grouped_cleaning`) with the same outcome:
:func:`~.outline.outline_session` (what every market's cleaning needs of the whole
session: its usable markets, the median sequence number for outliers, the recorded
window), :func:`~.pipeline.clean_markets` (every check that reads one market) and
:class:`~.sequence.SequenceTally` (the session-wide sequence checks, counted once every
market is in). Each kind of repair is a :class:`~.report.RepairKind`; the modules hold one
concern each: ``report`` (repair kinds, issues, the report), ``events`` (the cleaned
events), ``outline`` (usable rows, outliers, the first pass), ``price_maps`` (snapshots'
books), ``deltas``, ``restarts`` (segments), ``event_order`` (stored order, duplicates,
first snapshots), ``timestamps`` (the recorded window, time repairs), ``sequence`` (the
session-wide tally), ``trades`` (the trade tape's checks, with their own table),
``trade_columns`` (the trades kept, travelling with their markets' events) and
``pipeline`` (the stages of one group of markets).

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
delta action other than ``add``,            repair ``unknown_action``: dropped, not
``remove``, ``update`` (``explode``,        applied (a collector database without its
``REMOVE``, NULL)                           CHECK constraint can hold one)
duplicate sequence number, same event       repair ``duplicate_sequence``: one copy kept
duplicate sequence number, other event      rejection of that market (ambiguous book)
same sequence number in two markets, or     repair ``sequence_shared``: counted, data
on a trade and a book message of one        kept; a market's book uses its own events
market                                      only, so nothing changes (the collector's seq
                                            is per subscription: two subscriptions, or a
                                            replayed message, give this)
sequence restart inside the session: a      repair ``sequence_restart``: a new segment
snapshot, stored after the market's         starts at that snapshot; the market's events
earlier ones, numbered far below the        are ordered by segment, then sequence number
highest its market received or reusing a    (the collector kept one session open across
number it received before (a reconnect      websocket reconnects; Kalshi's seq is per
seconds into the session), more than        subscription); rows that contradict each
``TIME_TOLERANCE_MS`` after the highest     other within the tolerance, or a late delta
(see ``restarts.segments``)                 with no new snapshot, are left to the
                                            duplicate check (a market with two different
                                            events under one number is rejected)
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
malformed JSON bid map (not JSON, not an    rejection of that market at that snapshot,
object, nested too deeply, not UTF-8, a     naming its row id and why; never the whole
key that is not a plain integer such as     session, whatever the exception
``"6_3"`` or ``" 64"``, a size that is not  (``sources.raw.snapshot_table``); a number of
an integer: NaN, a string, a bool, a list)  5,000 digits is an oversized one (above)
delta value that is not an integer (NaN, a  read as NULL (``sources.raw_values``): repair
fraction, a string other than digits, a     ``price_out_of_range``, ``negative_size``,
bool) or not text (a lone surrogate)        ``unknown_side``, ``unknown_action`` or
                                            ``missing_*`` naming its row id; never the
                                            whole session
delta value too large for its column        clamped to the column's limit: repair
(5,000 digits, ``1E+100000000``)            ``price_out_of_range``, ``size_out_of_range``,
                                            ``timestamp_out_of_window`` or
                                            ``sequence_outlier``
malformed JSON ask map                      repair ``malformed_ask_map``: ignored (asks
                                            are always derived from bids)
stored asks that disagree with the bids     repair ``stored_asks_disagree``: asks are
                                            always derived from bids (older rows: 99 - p)
several events in one millisecond           ordered by sequence number; none lost
``started_at`` after the session's end, or  ``IngestReport.window_contradiction`` says
more than half its events outside its       so; the ``data_quality`` check fails naming
recorded window (times in seconds, another  the session and why; views whose times were
session's rows)                             replaced score low (all replaced: 0)
a view whose features or statistics are     rejection of that market when the view is
not finite                                  built (``kalshi_pipeline.market.views``); the
                                            ``data_quality`` check fails on any
                                            non-finite value
empty session                               ``report.empty``; no markets, no error
session still ``active``                    never reaches here: sources raise
                                            ``SessionNotComplete`` and callers skip it
==========================================  ==============================================

Repairs in :data:`~.report.DEFECTS` mean the market's own data was wrong and lower its
view's data quality; a time replaced for lying outside the window lowers it through the
share of real times instead; the others fix storage or timing without doubting the book.
"""

from __future__ import annotations

from kalshi_pipeline.market.cleaning.events import (
    BOOK_WIDTH,
    MAX_SIZE,
    NO,
    YES,
    CleanEvents,
)
from kalshi_pipeline.market.cleaning.outline import (
    outline_session,
    usable_rows,
)
from kalshi_pipeline.market.cleaning.pipeline import clean_markets, clean_session
from kalshi_pipeline.market.cleaning.report import (
    DEFECTS,
    DataIssue,
    IngestReport,
    RepairKind,
)
from kalshi_pipeline.market.cleaning.sequence import SequenceTally
from kalshi_pipeline.market.cleaning.timestamps import (
    TIME_TOLERANCE_MS,
    recorded_window,
)

__all__ = [
    "BOOK_WIDTH",
    "DEFECTS",
    "MAX_SIZE",
    "NO",
    "TIME_TOLERANCE_MS",
    "YES",
    "CleanEvents",
    "DataIssue",
    "IngestReport",
    "RepairKind",
    "SequenceTally",
    "clean_markets",
    "clean_session",
    "outline_session",
    "recorded_window",
    "usable_rows",
]
