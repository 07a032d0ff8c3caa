"""A reconnect soon after the session began: the new subscription reuses the few numbers
the old one had used, and starts a new segment instead of a conflict.

Kalshi numbers each subscription from 1. A collector that reconnects a few seconds in
restarts a market's numbers before the old subscription reached 1,000; its new snapshot
reuses numbers already seen, at a later receive time. Only rows that contradict each
other at the same time are conflicts (``market/cleaning/restarts.py``).
"""

from __future__ import annotations

from kalshi_pipeline.market.books import reconstruct_books
from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline.market.cleaning.timestamps import TIME_TOLERANCE_MS
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot
from kalshi_pipeline_tests.market.test_cleaning import (
    assert_good_market_unaffected,
    assert_names,
    example,
)

RECONNECT_MS = 5_000


def reconnected(first: int, again: int, reconnect_ms: int = RECONNECT_MS):
    """MKT-B: a snapshot at ``first``, deltas at the next two numbers, then (stored
    later, received ``reconnect_ms`` later) a new snapshot at ``again`` and a delta after
    it. Its numbers are its own: the other market's are 1000 and up."""
    later = T0_MS + reconnect_ms
    return (
        snapshot("MKT-B", seq=first, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=first + 1, side="yes", price=31, new_size=4),
        delta("MKT-B", seq=first + 2, side="no", price=61, new_size=5),
        snapshot("MKT-B", seq=again, yes_bids={40: 7}, no_bids={50: 3}, ts=later),
        delta("MKT-B", seq=again + 1, side="yes", price=41, new_size=1, ts=later + 5),
    )


def beside_other_market(*rows):
    other = (
        snapshot("MKT-A", seq=1000, yes_bids={20: 1}, no_bids={70: 1}, ts=T0_MS),
        delta("MKT-A", seq=1001, side="yes", price=21, new_size=1, ts=T0_MS + 9_000),
    )
    return make_session(*other, *rows)


def test_a_snapshot_at_1_again_five_seconds_later_starts_a_new_segment():
    """The case as it happens: S1 D2 D3, then S1 D2 five seconds later."""
    books = reconstruct_books(beside_other_market(*reconnected(first=1, again=1)))

    assert not books.report.rejected
    assert books.report.repairs[RepairKind.SEQUENCE_RESTART] == 1
    assert_names(example(books.report, RepairKind.SEQUENCE_RESTART), "MKT-B", 1)
    b = books.market_rows("MKT-B")
    assert books.sequence_number[b].tolist() == [1, 2, 3, 1, 2]
    assert books.best_yes_bid[b].tolist() == [30, 31, 31, 40, 41]
    assert books.best_no_bid[b].tolist() == [60, 60, 61, 50, 50]
    assert books.report.repairs[RepairKind.DUPLICATE_SEQUENCE] == 0


def test_a_new_snapshot_on_a_number_inside_the_old_segment_starts_a_new_segment():
    """The new subscription numbers this market's snapshot 2: above where the old segment
    began and only one below its highest number, yet a reuse of a number already seen."""
    books = reconstruct_books(beside_other_market(*reconnected(first=1, again=2)))

    assert not books.report.rejected
    assert books.report.repairs[RepairKind.SEQUENCE_RESTART] == 1
    assert_names(example(books.report, RepairKind.SEQUENCE_RESTART), "MKT-B", 2)
    b = books.market_rows("MKT-B")
    assert books.sequence_number[b].tolist() == [1, 2, 3, 2, 3]
    assert books.best_yes_bid[b].tolist() == [30, 31, 31, 40, 41]
    assert books.best_no_bid[b].tolist() == [60, 60, 61, 50, 50]


def test_the_reconnected_market_leaves_the_other_market_unaffected():
    assert_good_market_unaffected(*reconnected(first=101, again=102))


def test_contradictory_snapshots_at_the_same_time_are_still_a_conflict():
    """The same number, two different books, received together: the book is ambiguous."""
    rows = reconnected(first=1, again=1, reconnect_ms=TIME_TOLERANCE_MS // 2)
    books = reconstruct_books(beside_other_market(*rows))

    assert books.report.repairs[RepairKind.SEQUENCE_RESTART] == 0
    assert_names(books.report.rejected["MKT-B"], "MKT-B", 1)
    assert books.tickers == ["MKT-A"]


def test_a_late_contradictory_delta_without_a_new_snapshot_is_still_a_conflict():
    """Only a snapshot begins a subscription: a delta that reuses a number later, with
    no snapshot before it, cannot be placed and stays a conflict."""
    rows = (
        *reconnected(first=1, again=1)[:3],
        delta("MKT-B", seq=2, side="yes", price=45, new_size=9, ts=T0_MS + RECONNECT_MS),
    )
    books = reconstruct_books(beside_other_market(*rows))

    assert books.report.repairs[RepairKind.SEQUENCE_RESTART] == 0
    assert_names(books.report.rejected["MKT-B"], "MKT-B", 2)


def test_a_late_snapshot_on_a_number_never_used_is_not_a_restart():
    """A small step back onto a number the market never had, arriving late, is more
    likely a clock glitch: the snapshot keeps its place in the sequence."""
    rows = (
        snapshot("MKT-B", seq=1, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=2, side="yes", price=31, new_size=4),
        delta("MKT-B", seq=8, side="no", price=61, new_size=5),
        snapshot("MKT-B", seq=6, yes_bids={40: 7}, no_bids={50: 3}, ts=T0_MS + RECONNECT_MS),
    )
    books = reconstruct_books(beside_other_market(*rows))

    assert books.report.repairs[RepairKind.SEQUENCE_RESTART] == 0
    assert not books.report.rejected
    assert books.sequence_number[books.market_rows("MKT-B")].tolist() == [1, 2, 6, 8]
