"""The checks on a market's events in (segment, sequence number) order.

Rows stored after a higher number of their market and segment (``stored_out_of_order``:
the sort already repaired them), repeated numbers (``duplicate_sequence`` when the copies
agree, a rejected market when they do not) and deltas before the market's first snapshot
(``delta_before_snapshot``; a market with no snapshot is rejected). Each reads the event
columns of :mod:`.columns`, sorted by (market, segment, number).
"""

from __future__ import annotations

import numba
import numpy as np

from kalshi_pipeline.market.cleaning.columns import EventColumns, group_starts
from kalshi_pipeline.market.cleaning.report import IngestReport, RepairKind


def count_stored_out_of_order(ev: EventColumns, names, report: IngestReport) -> None:
    """Rows stored (by id, in their own table) after a higher number of their market and
    segment: the sort repairs them; counted so storage problems are visible."""
    for table_rows in (np.flatnonzero(ev.is_snapshot), np.flatnonzero(~ev.is_snapshot)):
        if len(table_rows) < 2:  # one row is never stored after another
            continue
        market, segment = ev.market[table_rows], ev.segment[table_rows]
        ids = ev.row_id[table_rows]
        # ``ev`` is in (market, segment, number) order: if ids rise within every group
        # there, numbers rise in storage order too, and nothing was stored late.
        if not (np.diff(ids) < 0)[~group_starts(market, segment)[1:]].any():
            continue
        stored = table_rows[np.lexsort((ev.row_id[table_rows], segment, market))]
        seq = ev.seq[stored]
        late = seq < _previous_max(group_starts(ev.market[stored], ev.segment[stored]), seq)
        rows = stored[late]
        report.repair(
            RepairKind.STORED_OUT_OF_ORDER,
            names[ev.market[rows]],
            ev.seq[rows],
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


def resolve_duplicates(ev: EventColumns, books: np.ndarray, names, report) -> np.ndarray:
    """Drop exact repeats of (market, segment, sequence); reject markets whose repeats
    disagree."""
    market, seq, segment = ev.market, ev.seq, ev.segment
    is_snapshot, level, size, snapshot_index = (
        ev.is_snapshot, ev.level, ev.size, ev.snapshot_index
    )  # fmt: skip
    keep = np.ones(len(seq), dtype=bool)
    same = ~group_starts(market, segment, seq)
    if not same.any():
        return keep
    same = np.flatnonzero(same)
    # The first of each run of copies: all compare to it.
    first = np.flatnonzero(group_starts(market, segment, seq))
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
        RepairKind.DUPLICATE_SEQUENCE,
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


def after_first_snapshot(market, seq, is_snapshot, keep, names, report) -> np.ndarray:
    """Mask of events at or after their market's first (kept) snapshot."""
    snap_count = np.cumsum(is_snapshot & keep)
    if not len(market):
        return np.ones(0, dtype=bool)
    starts = np.flatnonzero(group_starts(market))
    before_start = np.concatenate(([0], snap_count))[starts]
    sizes = np.diff(np.append(starts, len(market)))
    seen = snap_count - before_start.repeat(sizes)
    early = keep & (seen == 0)
    if not early.any():  # every market's first kept event is a snapshot: none lacks one
        return ~early
    rows = np.flatnonzero(early)
    report.repair(
        RepairKind.DELTA_BEFORE_SNAPSHOT,
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
