"""Cleaning the trade tape: each bad trade counted under its own repair and dropped alone;
a trade off the recorded book kept and flagged; trade numbers fill the session's sequence.

The good market MKT-A (``GOOD`` of ``test_cleaning.py``: seqs 1, 3, 4, 6, 8, 10, 12 at one
millisecond per number) has three good trades, all on its book; each case adds one bad
trade beside them and checks that exactly that trade is counted (naming the session, the
market and the trade id) and dropped, and that the good trades and the book are as
without it.
"""

from __future__ import annotations

import numpy as np
import pytest

from kalshi_pipeline.market.cleaning.events import MAX_SIZE
from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline.market.views import SessionViews, ViewConfig, build_market_views
from kalshi_pipeline.market.views.market_view import TRADE_ARRAYS
from kalshi_pipeline_tests.factories import (
    T0_MS,
    InBatches,
    delta,
    make_session,
    snapshot,
    trade,
    with_tape,
)
from kalshi_pipeline_tests.market.test_cleaning import GOOD, beside_good, example

TRADE_KINDS = [kind for kind in RepairKind if str(kind).startswith("trade_")] + [
    RepairKind.DUPLICATE_TRADE_ID
]
# On MKT-A's book: a NO taker hits the YES bid at 40 (10 resting), a YES taker lifts
# the NO bid at 55 (7 resting), a NO taker in a millisecond without a book change hits
# the YES bid at 42 of the snapshot at seq 8 (the step at T0 + 10 is its step).
GOOD_TRADES = (
    trade("MKT-A", "g1", 40, 6, "no", ts=T0_MS + 3),
    trade("MKT-A", "g2", 45, 2, "yes", ts=T0_MS + 4),
    trade("MKT-A", "g3", 42, 1, "no", ts=T0_MS + 9),
)


def built(raw):
    """(views by ticker, the report once every view is built)."""
    builder = SessionViews(raw)
    views = {v.market_ticker: v for batch in builder.batches() for v in batch}
    return views, builder.report


def trades_of(view) -> dict[str, list]:
    return {name: getattr(view, name).tolist() for name in TRADE_ARRAYS}


def trade_repairs(report) -> dict[str, int]:
    return {str(kind): report.repairs[kind] for kind in TRADE_KINDS if report.repairs[kind]}


def test_good_trades_are_kept_on_the_book_at_their_steps():
    views, report = built(with_tape(beside_good(), *GOOD_TRADES))

    a = views["MKT-A"]
    assert a.trade_tape
    assert trades_of(a) == {
        "trade_steps": [1, 2, 5],
        "trade_yes_prices": [40, 45, 42],
        "trade_counts": [6, 2, 1],
        "trade_taker_yes": [False, True, False],
        "trade_off_book": [False, False, False],
    }
    assert trade_repairs(report) == {}


BAD_TRADES = [
    (RepairKind.TRADE_UNKNOWN_MARKET, trade("MKT-Z", "bad", 40, 1, "no", ts=T0_MS + 5)),
    (RepairKind.TRADE_UNKNOWN_MARKET, trade(None, "bad", 40, 1, "no", ts=T0_MS + 5)),
    (RepairKind.TRADE_MISSING_ID, trade("MKT-A", None, 40, 1, "no", ts=T0_MS + 5)),
    (RepairKind.TRADE_MISSING_TIMESTAMP, trade("MKT-A", "bad", 40, 1, "no", ts=None)),
    # A receive time in seconds, and one hours after the session ended.
    (
        RepairKind.TRADE_TIMESTAMP_OUT_OF_WINDOW,
        trade("MKT-A", "bad", 40, 1, "no", ts=(T0_MS + 5) // 1000),
    ),
    (
        RepairKind.TRADE_TIMESTAMP_OUT_OF_WINDOW,
        trade("MKT-A", "bad", 40, 1, "no", ts=T0_MS + 3 * 3_600_000),
    ),
    (RepairKind.TRADE_PRICE_OUT_OF_RANGE, trade("MKT-A", "bad", 0, 1, "no", ts=T0_MS + 5)),
    (RepairKind.TRADE_PRICE_OUT_OF_RANGE, trade("MKT-A", "bad", 100, 1, "yes", ts=T0_MS + 5)),
    (RepairKind.TRADE_PRICE_OUT_OF_RANGE, trade("MKT-A", "bad", -5, 1, "no", ts=T0_MS + 5)),
    (
        RepairKind.TRADE_PRICE_OUT_OF_RANGE,
        trade("MKT-A", "bad", None, 1, "no", ts=T0_MS + 5, no_price=60),
    ),
    (
        RepairKind.TRADE_PRICES_DISAGREE,
        trade("MKT-A", "bad", 40, 1, "no", ts=T0_MS + 5, no_price=50),
    ),
    (
        RepairKind.TRADE_PRICES_DISAGREE,
        trade("MKT-A", "bad", 40, 1, "no", ts=T0_MS + 5, no_price=None),
    ),
    (RepairKind.TRADE_COUNT_OUT_OF_RANGE, trade("MKT-A", "bad", 40, 0, "no", ts=T0_MS + 5)),
    (RepairKind.TRADE_COUNT_OUT_OF_RANGE, trade("MKT-A", "bad", 40, -3, "no", ts=T0_MS + 5)),
    (RepairKind.TRADE_COUNT_OUT_OF_RANGE, trade("MKT-A", "bad", 40, None, "no", ts=T0_MS + 5)),
    (
        RepairKind.TRADE_COUNT_OUT_OF_RANGE,
        trade("MKT-A", "bad", 40, MAX_SIZE + 1, "no", ts=T0_MS + 5),
    ),
    (RepairKind.TRADE_UNKNOWN_TAKER_SIDE, trade("MKT-A", "bad", 40, 1, "YES", ts=T0_MS + 5)),
    (RepairKind.TRADE_UNKNOWN_TAKER_SIDE, trade("MKT-A", "bad", 40, 1, "buy", ts=T0_MS + 5)),
    (RepairKind.TRADE_UNKNOWN_TAKER_SIDE, trade("MKT-A", "bad", 40, 1, None, ts=T0_MS + 5)),
]


@pytest.mark.parametrize("kind, bad", BAD_TRADES)
def test_a_bad_trade_is_counted_under_its_kind_and_only_it_is_dropped(kind, bad):
    session = beside_good()
    good_views, _ = built(with_tape(session, *GOOD_TRADES))
    views, report = built(with_tape(session, GOOD_TRADES[0], bad, *GOOD_TRADES[1:]))

    assert trade_repairs(report) == {str(kind): 1}
    issue = example(report, kind)
    text = str(issue)
    assert "session 1" in text and "row id 2" in text  # the bad row is stored second
    if bad["market_ticker"] is not None:
        assert "market MKT-A" in text or "market MKT-Z" in text
    if bad["trade_id"] is not None:
        assert "trade bad" in text
    assert trades_of(views["MKT-A"]) == trades_of(good_views["MKT-A"])
    assert views["MKT-A"] == good_views["MKT-A"]  # the book and everything else too


@pytest.mark.parametrize("kept_seq, other_seq", [(None, None), (5, 4)])
def test_a_repeated_trade_id_keeps_the_first_received_and_counts_the_rest(kept_seq, other_seq):
    """The copy stored first (row id 1) arrived later, or (same millisecond) carries the
    higher sequence number: the first received is the one kept, whatever its price."""
    same_ms = kept_seq is not None
    copy = trade("MKT-A", "g2", 47, 9, "yes", ts=T0_MS + (4 if same_ms else 11), seq=kept_seq)
    first = dict(GOOD_TRADES[1], sequence_number=other_seq)
    session = beside_good()
    views, report = built(with_tape(session, copy, GOOD_TRADES[0], first, GOOD_TRADES[2]))
    good_views, _ = built(with_tape(session, GOOD_TRADES[0], first, GOOD_TRADES[2]))

    assert trade_repairs(report) == {"duplicate_trade_id": 1}
    issue = example(report, RepairKind.DUPLICATE_TRADE_ID)
    assert "trade g2" in str(issue) and issue.row_id == 1
    assert trades_of(views["MKT-A"]) == trades_of(good_views["MKT-A"])


def test_a_trade_id_repeated_in_groups_cleaned_apart_is_counted_once_as_in_the_whole():
    """The tape is checked for the whole session before any group of markets: the same
    trade id in two markets cleaned in different groups is still one repeat."""
    other = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=5, side="yes", price=31, new_size=4),
    )
    tape = (*GOOD_TRADES, trade("MKT-B", "g1", 30, 1, "no", ts=T0_MS + 5))
    raw = with_tape(beside_good(*other), *tape)
    whole, whole_report = built(raw)
    config = ViewConfig(clean_events=1, chunk_events=1)
    with SessionViews.streamed(InBatches(raw, rows=1), config) as builder:
        streamed = {v.market_ticker: v for batch in builder.batches() for v in batch}
        streamed_report = builder.report

    assert (
        trade_repairs(whole_report) == trade_repairs(streamed_report) == {"duplicate_trade_id": 1}
    )
    assert streamed == whole
    assert len(whole["MKT-B"].trade_steps) == 0 and whole["MKT-B"].trade_tape


# -- trades off the recorded book ------------------------------------------------------
def test_a_trade_off_the_book_is_kept_flagged_and_counted():
    off = (
        # NO taker at 39: no YES bid at 39 (40 and 38 rest).
        trade("MKT-A", "off-39", 39, 1, "no", ts=T0_MS + 3),
        # YES taker at 45 at the step of T0 + 6: the NO bid at 55 was cleared at T0 + 4.
        trade("MKT-A", "off-55", 45, 1, "yes", ts=T0_MS + 5),
        # The market's first step: no book is known before it.
        trade("MKT-A", "first", 40, 1, "no", ts=T0_MS + 1),
        # YES taker at 50: the NO bid at 50 (4 resting) is there before the step of T0 + 3.
        trade("MKT-A", "on-50", 50, 1, "yes", ts=T0_MS + 2),
    )
    views, report = built(with_tape(beside_good(), *off))

    a = views["MKT-A"]
    assert a.trade_steps.tolist() == [0, 1, 1, 3]
    assert a.trade_yes_prices.tolist() == [40, 50, 39, 45]
    assert a.trade_off_book.tolist() == [True, False, True, True]
    assert trade_repairs(report) == {"trade_off_book": 3}
    named = {i.trade_id for i in report.examples if i.kind == RepairKind.TRADE_OFF_BOOK}
    assert named == {"first", "off-39", "off-55"}
    for issue in (i for i in report.examples if i.kind == RepairKind.TRADE_OFF_BOOK):
        assert str(issue).startswith(f"session 1, market MKT-A, trade {issue.trade_id}, row id")


def test_a_trade_deeper_than_the_view_keeps_is_read_on_the_full_book():
    """The view keeps five levels a side; the trade's level is the seventh and rests."""
    deep = {price: 1 for price in range(30, 37)}  # seven YES bid levels, 36 the best
    session = make_session(
        snapshot("MKT-A", seq=1, yes_bids=deep, no_bids={60: 2}),
        delta("MKT-A", seq=2, side="yes", price=36, new_size=0),
    )
    views, report = built(
        with_tape(
            session,
            trade("MKT-A", "deep", 30, 1, "no", ts=T0_MS + 2),
            trade("MKT-A", "gone", 29, 1, "no", ts=T0_MS + 2),
        )
    )

    assert views["MKT-A"].trade_off_book.tolist() == [False, True]
    assert trade_repairs(report) == {"trade_off_book": 1}


def test_a_rejected_market_takes_its_trades_with_it():
    conflicting = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=7, side="yes", price=31, new_size=4),
        delta("MKT-B", seq=7, side="yes", price=31, new_size=5),
    )
    raw = with_tape(
        beside_good(*conflicting), *GOOD_TRADES, trade("MKT-B", "b1", 30, 1, "no", ts=T0_MS + 7)
    )
    views, report = built(raw)

    assert "MKT-B" in report.rejected and set(views) == {"MKT-A"}
    assert trade_repairs(report) == {}
    assert len(views["MKT-A"].trade_steps) == len(GOOD_TRADES)


# -- trade numbers in the session-wide sequence -----------------------------------------
def test_numbers_the_book_counter_gave_trades_are_no_gap():
    """MKT-A's numbers skip 2, 5, 7, 9 and 11: counted as gaps unless trades carry them."""
    numbered = [
        trade("MKT-A", f"n{seq}", 40, 1, "no", ts=T0_MS + seq, seq=seq) for seq in (2, 5, 7, 9, 11)
    ]
    unnumbered = [dict(row, sequence_number=None) for row in numbered]
    outlier = trade("MKT-A", "far", 40, 1, "no", ts=T0_MS + 6, seq=9 * 10**15)

    _, gapped = built(with_tape(beside_good(), *unnumbered))
    views, filled = built(with_tape(beside_good(), *numbered, outlier))

    assert gapped.repairs[RepairKind.SEQUENCE_GAP] == 5
    assert gapped.missing_sequence_numbers == 5
    assert filled.repairs[RepairKind.SEQUENCE_GAP] == 0
    assert filled.missing_sequence_numbers == 0
    assert filled.repairs[RepairKind.SEQUENCE_SHARED] == 0
    assert views["MKT-A"].data_quality_score == 1.0
    # The outlier's number is left out of the count; the trade itself is kept.
    assert len(views["MKT-A"].trade_steps) == len(numbered) + 1


@pytest.mark.parametrize(
    "bad",
    [
        {"yes_price": 0, "no_price": 100},  # a price outside 1..99
        {"count": 0},
        {"taker_side": "buy"},
        {"trade_id": "n2"},  # a repeat of the trade numbered 2
    ],
)
def test_a_dropped_trade_still_received_its_number(bad):
    """A trade dropped for its price, count, side or as a repeat was still received: its
    number is no gap (MKT-A's numbers skip 2, 5, 7, 9 and 11)."""
    numbered = [
        trade("MKT-A", f"n{seq}", 40, 1, "no", ts=T0_MS + seq, seq=seq) for seq in (2, 5, 7, 9)
    ]
    dropped = dict(trade("MKT-A", "n11", 40, 1, "no", ts=T0_MS + 11, seq=11), **bad)

    _, kept_only = built(with_tape(beside_good(), *numbered))
    views, report = built(with_tape(beside_good(), *numbered, dropped))

    assert len(views["MKT-A"].trade_steps) == len(numbered)  # the bad trade is dropped
    assert sum(trade_repairs(report).values()) == sum(trade_repairs(kept_only).values()) + 1
    assert report.repairs[RepairKind.SEQUENCE_GAP] == 0
    assert report.missing_sequence_numbers == 0
    assert views["MKT-A"].data_quality_score == 1.0


def test_a_trade_number_after_a_restart_fills_the_new_segment():
    """S1 D2 D4 with the trade at 3, then (a reconnect) S1 D3 with the trade at 2: each
    trade's number belongs to the segment of its receive time, so neither segment has a
    gap and no number is taken for one shared with the other segment."""
    later = T0_MS + 5_000
    session = make_session(
        snapshot("MKT-B", seq=1, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=2, side="yes", price=31, new_size=4),
        delta("MKT-B", seq=4, side="no", price=61, new_size=5),
        snapshot("MKT-B", seq=1, yes_bids={40: 7}, no_bids={50: 3}, ts=later),
        delta("MKT-B", seq=3, side="yes", price=41, new_size=1, ts=later + 5),
    )
    raw = with_tape(
        session,
        trade("MKT-B", "t3", 31, 1, "no", ts=T0_MS + 3, seq=3),
        trade("MKT-B", "t2", 40, 1, "no", ts=later + 2, seq=2),
    )
    views, report = built(raw)

    assert report.repairs[RepairKind.SEQUENCE_RESTART] == 1
    assert report.repairs[RepairKind.SEQUENCE_GAP] == 0
    assert report.repairs[RepairKind.SEQUENCE_SHARED] == 0
    assert views["MKT-B"].trade_steps.tolist() == [2, 4]  # steps at T0 + 4 and later + 5
    assert not views["MKT-B"].trade_off_book.any()


def test_cleaning_a_tape_twice_gives_the_same_trades_bit_for_bit():
    raw = with_tape(beside_good(), *GOOD_TRADES, trade("MKT-A", "x", 41, 2, "yes", ts=T0_MS + 8))
    first, second = build_market_views(raw), build_market_views(raw)
    for a, b in zip(first, second, strict=True):
        for name in TRADE_ARRAYS:
            assert np.array_equal(getattr(a, name), getattr(b, name))
            assert getattr(a, name).tobytes() == getattr(b, name).tobytes()
    assert GOOD  # the good market of test_cleaning is the base of every case here
