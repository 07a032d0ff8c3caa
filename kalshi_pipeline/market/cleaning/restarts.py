"""Sequence restarts: where a market's numbers start again, a new segment of its events.

The collector kept one session open across websocket reconnects, and Kalshi numbers each
subscription from 1: after a reconnect a market's numbers restart far below where they
were, or (a reconnect soon after the session began, before the old subscription got
far) back onto numbers it already used. :func:`segments` finds those restarts
(``sequence_restart``) so that the market's events are ordered by segment, then sequence
number, instead of being taken for duplicates: only rows that contradict each other at
the same time (within ``TIME_TOLERANCE_MS``) are left to the duplicate check as conflicts.
"""

from __future__ import annotations

import numba
import numpy as np

from kalshi_pipeline.market.cleaning.columns import EventColumns, group_starts
from kalshi_pipeline.market.cleaning.report import IngestReport, RepairKind
from kalshi_pipeline.market.cleaning.timestamps import TIME_TOLERANCE_MS

# A restart sends a market's numbers back at least this far (or to where its segment
# began): a new subscription numbers from 1, far below where the old one stopped.
RESTART_MIN_DROP = 1_000


def segments(ev: EventColumns, window: tuple[int, int], names, report: IngestReport) -> np.ndarray:
    """Segment of every event (``ev`` sorted by market, then sequence number).

    Scanning a market's events in receive order, a snapshot starts a new segment (the
    collector reconnected and Kalshi began a new subscription, whose numbers start again)
    when all of these hold:

    * its number is at or below the highest its market received in the current segment,
      and it arrived more than ``TIME_TOLERANCE_MS`` after that highest one;
    * it was stored (row id) after every earlier snapshot of the market;
    * the number went back far: to or below the snapshot that began the segment, or by
      at least ``RESTART_MIN_DROP`` (a new subscription numbers from 1); or it reuses a
      number its market already received more than the tolerance earlier, however close
      to the highest (a reconnect seconds into the session, before the old subscription
      got 1,000 numbers in). A small step back onto an unused number with a late time is
      more likely a clock glitch;
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
    market, seq, ts = ev.market, ev.seq, ev.ts
    segment = np.zeros(len(seq), dtype=np.int32)
    back = np.flatnonzero((market[1:] == market[:-1]) & (ts[1:] < ts[:-1] - TIME_TOLERANCE_MS))
    if not len(back):
        return segment
    rows = np.flatnonzero(np.isin(market, np.unique(market[back + 1])))
    by_time = rows[np.lexsort((seq[rows], ts[rows], market[rows]))]
    group_start = group_starts(market[by_time])
    restart = _restarts(
        group_start,
        ev.is_snapshot[by_time],
        seq[by_time],
        ts[by_time],
        ev.row_id[by_time],
        (ts[by_time] >= window[0]) & (ts[by_time] <= window[1]),
        _reuses(ev, window)[by_time],
        TIME_TOLERANCE_MS,
        RESTART_MIN_DROP,
    )
    starts = by_time[restart]
    report.repair(
        RepairKind.SEQUENCE_RESTART,
        names[market[starts]],
        seq[starts],
        "the sequence restarts at this snapshot (a reconnect): a new segment begins",
    )
    # Every event of a market received at or after a restart belongs to its segment.
    segment[by_time] = _segment_numbers(group_start, restart)
    return segment


def _reuses(ev: EventColumns, window: tuple[int, int]) -> np.ndarray:
    """Per event (``ev`` sorted by market, then number): whether an event of its market
    with its number was received more than ``TIME_TOLERANCE_MS`` before it (times outside
    the recorded window say nothing and count for neither)."""
    inside = (ev.ts >= window[0]) & (ev.ts <= window[1])
    starts = np.flatnonzero(group_starts(ev.market, ev.seq))
    earliest = np.minimum.reduceat(np.where(inside, ev.ts, np.iinfo(np.int64).max), starts)
    sizes = np.diff(np.r_[starts, len(ev.seq)])
    return inside & (ev.ts > np.repeat(earliest, sizes) + TIME_TOLERANCE_MS)


@numba.njit(cache=True)
def _restarts(
    group_start, is_snapshot, seq, ts, row_id, ts_valid, reuses, tolerance, min_drop
):  # pragma: no cover - compiled; tested through clean_session
    """Per event in receive order: does a new segment start here (see :func:`segments`)."""
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
        far_back = seq[i] <= first_seq or top_seq - seq[i] >= min_drop or reuses[i]
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
