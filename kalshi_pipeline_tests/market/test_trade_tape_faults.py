"""Trade tapes that disagree with their book, as a real collector's can: cleaning keeps
what is good, counts what is not (naming session, market and trade id) and never fails.

Built on the good market MKT-A of ``test_cleaning.py`` and its three good trades
(``test_trade_cleaning.py``), beside a second market MKT-B whose book starts later.
"""

from __future__ import annotations

from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot, trade, with_tape
from kalshi_pipeline_tests.market.test_cleaning import beside_good, example
from kalshi_pipeline_tests.market.test_trade_cleaning import (
    GOOD_TRADES,
    built,
    trade_repairs,
    trades_of,
)

# MKT-B's first book row is at T0 + 20 ms; its YES bid at 30 rests 5 contracts.
LATE_BOOK = (
    snapshot("MKT-B", seq=20, yes_bids={30: 5}, no_bids={60: 5}),
    delta("MKT-B", seq=21, side="yes", price=30, new_size=2, old_size=5),
)


def test_a_trade_before_its_markets_first_snapshot_is_kept_flagged_off_book():
    early = trade("MKT-B", "b-early", 30, 3, "no", ts=T0_MS + 5)
    views, report = built(with_tape(beside_good(*LATE_BOOK), *GOOD_TRADES, early))

    b = trades_of(views["MKT-B"])
    assert b["trade_steps"] == [0] and b["trade_counts"] == [3]  # the next book change
    assert b["trade_off_book"] == [True]  # no book was known before it
    assert trade_repairs(report) == {"trade_off_book": 1}
    text = str(example(report, RepairKind.TRADE_OFF_BOOK))
    assert "session 1, market MKT-B, trade b-early" in text


def test_the_same_trade_id_in_two_markets_keeps_the_first_received():
    again = trade("MKT-B", "g1", 30, 3, "no", ts=T0_MS + 21)  # g1 is MKT-A's, at T0 + 3
    views, report = built(with_tape(beside_good(*LATE_BOOK), *GOOD_TRADES, again))
    alone, _ = built(with_tape(beside_good(*LATE_BOOK), *GOOD_TRADES))

    assert trade_repairs(report) == {"duplicate_trade_id": 1}
    assert "market MKT-B, trade g1" in str(example(report, RepairKind.DUPLICATE_TRADE_ID))
    assert views == alone


def test_a_trade_numbered_as_a_delta_of_its_market_is_kept_and_counted_as_shared():
    """The collector gave trade g1 the number of MKT-A's delta at seq 3: both are kept,
    the book is as without the number, and the repair does not claim another market."""
    numbered = (dict(GOOD_TRADES[0], sequence_number=3), *GOOD_TRADES[1:])
    views, report = built(with_tape(beside_good(), *numbered))
    unnumbered, _ = built(with_tape(beside_good(), *GOOD_TRADES))

    assert views == unnumbered
    assert report.repairs[RepairKind.SEQUENCE_SHARED] == 1
    text = str(example(report, RepairKind.SEQUENCE_SHARED))
    assert "market MKT-A, seq 3" in text and "another market" not in text
    assert "a trade and a book message" in text


def test_a_tape_without_any_book_row_is_counted_and_fails_nothing():
    lonely = trade("MKT-Q", "q1", 30, 3, "no", ts=T0_MS + 21)
    views, report = built(with_tape(make_session(), lonely))

    assert views == {} and report.empty
    assert trade_repairs(report) == {"trade_unknown_market": 1}
    assert "session 1, market MKT-Q, trade q1" in str(
        example(report, RepairKind.TRADE_UNKNOWN_MARKET)
    )
