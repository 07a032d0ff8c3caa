"""Receive times: the session's recorded window, and the times repaired or counted in it.

A time outside the window a session was recording (:func:`recorded_window`) is replaced by
its market's previous valid time (``timestamp_out_of_window``); a time that steps back is
kept as received and counted (``timestamp_backwards`` beyond :data:`TIME_TOLERANCE_MS`,
``timestamp_jitter`` within it). Restarts (:mod:`.restarts`) use the same tolerance. A
window that contradicts the session's events (:func:`inverted_window`, or most times
outside it) is the report's :meth:`~.report.IngestReport.window_contradiction`.
"""

from __future__ import annotations

import numpy as np

from kalshi_pipeline.market.cleaning.columns import group_starts
from kalshi_pipeline.market.cleaning.report import IngestReport, RepairKind
from kalshi_pipeline.sources.raw import SessionInfo

# Receive times of one market may step back this much (concurrent receipt); more is a
# timestamp that went backwards, and a reconnect is at least this long.
TIME_TOLERANCE_MS = 1_000
# Receive times must fall in the session's recorded window, give or take this much.
WINDOW_TOLERANCE_MS = 10 * 60_000
# A session with neither an end time nor a last message time gets this long a window.
OPEN_SESSION_SPAN_MS = 30 * 24 * 3_600_000


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


def inverted_window(info: SessionInfo) -> str | None:
    """Why a session's recorded start and end contradict each other (its
    ``started_at`` after its ``ended_at``, or its ``last_message_at`` when it has no
    end), or None."""
    end_time = info.ended_at or info.last_message_at
    if end_time is None or end_time >= info.started_at:
        return None
    which = "ended_at" if info.ended_at else "last_message_at"
    return (
        f"its started_at {info.started_at.isoformat()} is after its {which} {end_time.isoformat()}"
    )


def repair_times(
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
    report.timed_events += n
    repaired = np.zeros(n, dtype=bool)
    if not n:
        return ts, repaired
    ts = ts.copy()
    group_start = group_starts(market)
    outside = (ts < window[0]) | (ts > window[1])
    if outside.any():
        starts = np.flatnonzero(group_start)
        first_row = starts.repeat(np.diff(np.append(starts, n)))
        previous = np.maximum.accumulate(np.where(outside, -1, np.arange(n)))
        session_start = window[0] + WINDOW_TOLERANCE_MS
        replacement = np.where(previous >= first_row, ts[np.maximum(previous, 0)], session_start)
        bad = np.flatnonzero(outside)
        report.repair(
            RepairKind.TIMESTAMP_OUT_OF_WINDOW,
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
        RepairKind.TIMESTAMP_BACKWARDS,
        names[market[far]],
        seq[far],
        f"receive time more than {TIME_TOLERANCE_MS} ms before the previous event's: kept "
        "as received (features clamp it)",
    )
    jitter = np.flatnonzero((behind > 0) & (behind <= TIME_TOLERANCE_MS))
    report.repair(
        RepairKind.TIMESTAMP_JITTER,
        names[market[jitter]],
        seq[jitter],
        f"receive time up to {TIME_TOLERANCE_MS} ms before the previous event's: kept",
    )
    return ts, repaired
