"""Two sessions for the sources' trade-tape tests: a small book, and the same book with a
tape (rows made by :func:`kalshi_pipeline_tests.factories.trade`)."""

from __future__ import annotations

from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot, trade, with_tape


def book_session(session_id: int = 1) -> RawSession:
    """Two markets with a few book changes each, and no tape."""
    return make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10, 39: 5}, no_bids={55: 7}),
        snapshot("MKT-B", seq=2, yes_bids={20: 4}, no_bids={75: 9}),
        delta("MKT-A", seq=5, side="no", price=55, new_size=4, old_size=7),
        delta("MKT-B", seq=6, side="yes", price=20, new_size=1, old_size=4),
        delta("MKT-A", seq=8, side="yes", price=40, new_size=7, old_size=10),
        session_id=session_id,
    )


def taped_session(session_id: int = 1) -> RawSession:
    """:func:`book_session` with a tape of both taker sides, with and without sequence
    numbers, one trade in a millisecond of its own."""
    return with_tape(
        book_session(session_id),
        trade("MKT-A", "a1b2-0001", yes_price=45, count=3, taker_side="yes", seq=4),
        trade("MKT-B", "a1b2-0002", yes_price=20, count=3, taker_side="no", seq=None, ts=T0_MS + 6),
        trade("MKT-A", "a1b2-0003", yes_price=40, count=3, taker_side="no", seq=7),
        trade("MKT-A", "a1b2-0004", yes_price=41, count=1000, taker_side="yes", ts=T0_MS + 2_500),
    )
