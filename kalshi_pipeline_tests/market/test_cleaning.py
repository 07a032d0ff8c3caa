"""Cleaning: every bad-input case of the table in ``market/cleaning`` has its defined outcome.

Each case builds a small session with a good market (MKT-A) beside a bad one (MKT-B),
checks the repair count or the rejection, that the issue names the session, market and
sequence number, and that MKT-A's books are exactly what they are without MKT-B's rows.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest

from kalshi_pipeline.market.books import reconstruct_books
from kalshi_pipeline.market.cleaning.pipeline import clean_session
from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.raw import SessionNotComplete
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot

# The good market: seqs 1, 3, 4, 6, 8, 10, 12 (MKT-B uses the other numbers).
GOOD = (
    snapshot("MKT-A", seq=1, yes_bids={40: 10, 38: 5}, no_bids={55: 7, 50: 4}),
    delta("MKT-A", seq=3, side="yes", price=41, new_size=3),
    delta("MKT-A", seq=4, side="no", price=55, new_size=0),
    delta("MKT-A", seq=6, side="yes", price=38, new_size=8, old_size=5),
    snapshot("MKT-A", seq=8, yes_bids={42: 1}, no_bids={56: 2}),
    delta("MKT-A", seq=10, side="no", price=57, new_size=4),
    delta("MKT-A", seq=12, side="yes", price=42, new_size=0),
)


def beside_good(*rows):
    """A session of the good market and ``rows``, stored in sequence order."""
    return make_session(*sorted((*GOOD, *rows), key=lambda row: row["sequence_number"]))


def market_books(session, ticker="MKT-A"):
    """Every per-event column of one market's reconstructed books."""
    books = reconstruct_books(session)
    rows = books.market_rows(ticker)
    return {name: values[rows] for name, values in books.columns().items()}


def assert_same_books(actual, expected):
    assert actual.keys() == expected.keys()
    for name in expected:
        np.testing.assert_array_equal(actual[name], expected[name], err_msg=name)


def assert_good_market_unaffected(*bad_rows):
    """MKT-A's books beside ``bad_rows`` are exactly its books alone."""
    assert_same_books(market_books(beside_good(*bad_rows)), market_books(beside_good()))


def example(report, kind):
    """The first named example of one kind of repair."""
    return next(issue for issue in report.examples if issue.kind == kind)


def assert_names(issue, market, seq):
    text = str(issue)
    assert "session 1" in text
    assert f"market {market}" in text
    assert f"seq {seq}" in text


# -- price outside 1..99 ---------------------------------------------------------------
@pytest.mark.parametrize("price", [0, 100, 104, -3])
def test_delta_price_out_of_range_is_dropped(price):
    bad = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=5, side="yes", price=31, new_size=4),
        delta("MKT-B", seq=7, side="yes", price=price, new_size=9),
    )
    books = reconstruct_books(beside_good(*bad))

    assert books.report.repairs[RepairKind.PRICE_OUT_OF_RANGE] == 1
    assert_names(example(books.report, RepairKind.PRICE_OUT_OF_RANGE), "MKT-B", 7)
    b = books.market_rows("MKT-B")
    assert books.sequence_number[b].tolist() == [2, 5]  # seq 7 dropped, market kept
    assert books.best_yes_bid[b].tolist() == [30, 31]
    assert "MKT-B" not in books.report.rejected
    # A dropped message was still received: 9 and 11 are missing, 7 is not.
    assert books.report.missing_sequence_numbers == 2
    assert_good_market_unaffected(*bad)


@pytest.mark.parametrize("price", [0, 100, 120])
def test_snapshot_level_price_out_of_range_is_dropped(price):
    bad = (
        snapshot(
            "MKT-B",
            seq=7,
            yes_bids={30: 2, price: 9},
            no_bids={60: 1},
            yes_asks={40: 1},
            no_asks={70: 2},  # the asks derived from the valid bids
        ),
    )
    books = reconstruct_books(beside_good(*bad))

    assert books.report.repairs[RepairKind.PRICE_OUT_OF_RANGE] == 1
    assert_names(example(books.report, RepairKind.PRICE_OUT_OF_RANGE), "MKT-B", 7)
    b = books.market_rows("MKT-B")
    assert books.best_yes_bid[b].tolist() == [30]
    assert books.yes_bid_volume[b].tolist() == [2]
    assert_good_market_unaffected(*bad)


# -- negative (or missing) size ----------------------------------------------------------
@pytest.mark.parametrize("new_size", [-4, None])
def test_delta_negative_or_missing_size_is_dropped(new_size):
    bad = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}),
        delta("MKT-B", seq=7, side="yes", price=30, new_size=new_size, action="update"),
    )
    books = reconstruct_books(beside_good(*bad))

    assert books.report.repairs[RepairKind.NEGATIVE_SIZE] == 1
    assert_names(example(books.report, RepairKind.NEGATIVE_SIZE), "MKT-B", 7)
    b = books.market_rows("MKT-B")
    assert books.sequence_number[b].tolist() == [2]
    assert books.best_yes_bid_size[b].tolist() == [2]
    assert_good_market_unaffected(*bad)


def test_remove_without_a_size_clears_the_level():
    rows = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2, 29: 1}),
        delta("MKT-B", seq=7, side="yes", price=30, new_size=None, action="remove"),
    )
    books = reconstruct_books(beside_good(*rows))

    assert books.report.repairs[RepairKind.NEGATIVE_SIZE] == 0
    assert books.best_yes_bid[books.market_rows("MKT-B")].tolist() == [30, 29]


def test_snapshot_level_with_negative_size_is_dropped():
    bad = (
        snapshot(
            "MKT-B",
            seq=7,
            yes_bids={30: 2, 33: -5},
            no_bids={60: 1},
            yes_asks={40: 1},
            no_asks={70: 2},
        ),
    )
    books = reconstruct_books(beside_good(*bad))

    assert books.report.repairs[RepairKind.NEGATIVE_SIZE] == 1
    assert_names(example(books.report, RepairKind.NEGATIVE_SIZE), "MKT-B", 7)
    b = books.market_rows("MKT-B")
    assert (books.best_yes_bid[b][0], books.yes_bid_volume[b][0]) == (30, 2)
    assert_good_market_unaffected(*bad)


# -- unknown delta side ----------------------------------------------------------------
@pytest.mark.parametrize("side", ["maybe", "YES", None])
def test_delta_with_unknown_side_is_dropped(side):
    bad = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=7, side=side, price=31, new_size=4),
    )
    books = reconstruct_books(beside_good(*bad))

    assert books.report.repairs[RepairKind.UNKNOWN_SIDE] == 1
    assert_names(example(books.report, RepairKind.UNKNOWN_SIDE), "MKT-B", 7)
    assert books.sequence_number[books.market_rows("MKT-B")].tolist() == [2]
    assert_good_market_unaffected(*bad)


# -- duplicate sequence numbers --------------------------------------------------------
def test_identical_duplicates_keep_one_copy():
    once = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=7, side="yes", price=31, new_size=4),
    )
    twice = (*once, once[0], once[1], once[1])  # the snapshot twice, the delta three times
    books = reconstruct_books(beside_good(*twice))

    assert books.report.repairs[RepairKind.DUPLICATE_SEQUENCE] == 3
    assert_names(example(books.report, RepairKind.DUPLICATE_SEQUENCE), "MKT-B", 2)
    copies = [i for i in books.report.examples if i.kind == RepairKind.DUPLICATE_SEQUENCE]
    assert sorted(i.sequence_number for i in copies) == [2, 7, 7]
    assert not books.report.rejected
    assert_same_books(
        market_books(beside_good(*twice), "MKT-B"),
        market_books(beside_good(*once), "MKT-B"),
    )
    assert_good_market_unaffected(*twice)


@pytest.mark.parametrize(
    "conflicting",
    [
        delta("MKT-B", seq=7, side="yes", price=31, new_size=5),  # another size
        delta("MKT-B", seq=7, side="no", price=31, new_size=4),  # another side
        snapshot("MKT-B", seq=7, yes_bids={31: 4}),  # a snapshot with the delta's number
    ],
)
def test_conflicting_duplicates_reject_the_market(conflicting):
    bad = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=7, side="yes", price=31, new_size=4),
        conflicting,
    )
    books = reconstruct_books(beside_good(*bad))

    issue = books.report.rejected["MKT-B"]
    assert_names(issue, "MKT-B", 7)
    assert "MKT-B" not in books.tickers
    assert books.tickers == ["MKT-A"]
    assert_good_market_unaffected(*bad)


def test_conflicting_duplicate_snapshots_reject_the_market():
    bad = (
        snapshot("MKT-B", seq=7, yes_bids={30: 2}),
        snapshot("MKT-B", seq=7, yes_bids={30: 3}),
    )
    books = reconstruct_books(beside_good(*bad))

    assert_names(books.report.rejected["MKT-B"], "MKT-B", 7)
    assert books.tickers == ["MKT-A"]


# -- rows stored out of sequence order -------------------------------------------------
def test_rows_stored_out_of_order_give_the_same_books_as_sorted_storage():
    b5 = delta("MKT-B", seq=5, side="yes", price=31, new_size=4)  # before B's snapshot
    b7 = snapshot("MKT-B", seq=7, yes_bids={30: 2}, no_bids={60: 1})
    b9 = delta("MKT-B", seq=9, side="yes", price=31, new_size=4)
    b11 = delta("MKT-B", seq=11, side="yes", price=31, new_size=0)
    a1, a3, a4, a6, a8, a10, a12 = GOOD
    in_order = (a1, a3, a4, b5, a6, b7, a8, b9, a10, b11, a12)
    # Snapshot table stored as 1, 8, 7; delta table as 3, 4, 5, 6, 11, 12, 10, 9.
    stored = (a1, a3, a4, b5, a6, a8, b7, b11, a12, a10, b9)
    expected = reconstruct_books(make_session(*in_order))
    books = reconstruct_books(make_session(*stored))

    # Late rows (stored after a higher number of their market, in their own table):
    # deltas A10 (after A12) and B9 (after B11). Snapshot B7 after A8 is another market's.
    assert books.report.repairs[RepairKind.STORED_OUT_OF_ORDER] == 2
    late = [i for i in books.report.examples if i.kind == RepairKind.STORED_OUT_OF_ORDER]
    assert sorted((i.market_ticker, i.sequence_number) for i in late) == [
        ("MKT-A", 10),
        ("MKT-B", 9),
    ]
    assert_names(late[1], "MKT-B", 9)
    assert RepairKind.STORED_OUT_OF_ORDER not in expected.report.repairs
    assert books.tickers == expected.tickers
    for name, values in expected.columns().items():
        np.testing.assert_array_equal(getattr(books, name), values, err_msg=name)


# -- delta before the market's first snapshot ------------------------------------------
def test_delta_before_the_first_snapshot_is_dropped():
    bad = (
        delta("MKT-B", seq=2, side="yes", price=31, new_size=4),
        snapshot("MKT-B", seq=5, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=7, side="yes", price=31, new_size=4),
    )
    books = reconstruct_books(beside_good(*bad))

    assert books.report.repairs[RepairKind.DELTA_BEFORE_SNAPSHOT] == 1
    assert_names(example(books.report, RepairKind.DELTA_BEFORE_SNAPSHOT), "MKT-B", 2)
    b = books.market_rows("MKT-B")
    assert books.sequence_number[b].tolist() == [5, 7]
    assert books.best_yes_bid[b].tolist() == [30, 31]
    assert_good_market_unaffected(*bad)


def test_market_without_any_snapshot_is_rejected():
    bad = (
        delta("MKT-B", seq=7, side="yes", price=31, new_size=4),
        delta("MKT-B", seq=9, side="no", price=60, new_size=1),
    )
    books = reconstruct_books(beside_good(*bad))

    assert_names(books.report.rejected["MKT-B"], "MKT-B", 7)
    assert books.tickers == ["MKT-A"]
    assert_good_market_unaffected(*bad)


# -- gaps in the session-wide sequence -------------------------------------------------
def test_gaps_in_the_session_wide_sequence_are_counted_and_data_kept():
    # Session-wide: 1 2 3 4 | 6 | 8 9 10 | 12   (5, 7 and 11 missing; three gaps)
    bad = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=9, side="yes", price=31, new_size=4),
    )
    session = beside_good(*bad)
    books = reconstruct_books(session)

    assert books.report.repairs[RepairKind.SEQUENCE_GAP] == 3
    assert books.report.missing_sequence_numbers == 3
    gaps = [i for i in books.report.examples if i.kind == RepairKind.SEQUENCE_GAP]
    assert [i.sequence_number for i in gaps] == [6, 8, 12]  # the number after each gap
    assert "session 1" in str(gaps[0]) and "seq 6" in str(gaps[0])
    assert len(books) == session.num_events  # nothing dropped
    assert books.tickers == ["MKT-A", "MKT-B"]


def test_a_wide_gap_counts_every_missing_number():
    books = reconstruct_books(
        make_session(
            snapshot("MKT-A", seq=100, yes_bids={40: 1}),
            delta("MKT-A", seq=101, side="yes", price=41, new_size=1),
            delta("MKT-A", seq=150, side="yes", price=42, new_size=1),
        )
    )

    assert books.report.repairs[RepairKind.SEQUENCE_GAP] == 1
    assert books.report.missing_sequence_numbers == 48
    assert len(books) == 3


def test_per_market_gaps_are_not_gaps():
    rows = [
        snapshot("MKT-A", seq=1, yes_bids={40: 1}),
        snapshot("MKT-B", seq=2, yes_bids={30: 1}),
    ]
    for seq in range(3, 7):  # MKT-A gets 3 and 5, MKT-B 4 and 6
        rows.append(delta("MKT-A" if seq % 2 else "MKT-B", seq, "yes", 20 + seq, 1))
    books = reconstruct_books(make_session(*rows))

    assert books.report.repairs[RepairKind.SEQUENCE_GAP] == 0
    assert books.report.missing_sequence_numbers == 0
    assert books.sequence_number[books.market_rows("MKT-A")].tolist() == [1, 3, 5]
    assert books.sequence_number[books.market_rows("MKT-B")].tolist() == [2, 4, 6]


# -- crossed books ---------------------------------------------------------------------
def test_crossed_book_steps_are_flagged_and_kept():
    bad = (
        snapshot("MKT-B", seq=2, yes_bids={40: 5}, no_bids={55: 5}),  # 40 + 55 = 95
        delta("MKT-B", seq=5, side="yes", price=45, new_size=1),  # 45 + 55 = 100: crossed
        delta("MKT-B", seq=7, side="no", price=55, new_size=0),  # NO side empty
        delta("MKT-B", seq=9, side="no", price=50, new_size=3),  # 45 + 50 = 95
        delta("MKT-B", seq=11, side="yes", price=52, new_size=2),  # 52 + 50 = 102: crossed
        delta("MKT-B", seq=13, side="yes", price=52, new_size=0),  # back to 45 + 50
    )
    books = reconstruct_books(beside_good(*bad))

    b = books.market_rows("MKT-B")
    assert books.sequence_number[b].tolist() == [2, 5, 7, 9, 11, 13]
    assert books.crossed[b].tolist() == [False, True, False, False, True, False]
    assert books.report.repairs[RepairKind.CROSSED_BOOK] == 2
    flagged = [i for i in books.report.examples if i.kind == RepairKind.CROSSED_BOOK]
    assert [i.sequence_number for i in flagged] == [5, 11]
    assert_names(flagged[0], "MKT-B", 5)
    assert not books.crossed[books.market_rows("MKT-A")].any()
    assert_good_market_unaffected(*bad)


# -- malformed JSON price maps ---------------------------------------------------------
@pytest.mark.parametrize("text", ['{"45": "x"}', "[1, 2]", "not json", '{"4a": 3}'])
@pytest.mark.parametrize("column", ["yes_bids", "no_bids"])
def test_malformed_bid_map_rejects_the_market(text, column):
    maps = {"yes_bids": {30: 2}, "no_bids": {60: 1}, column: text}
    bad = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=5, side="yes", price=31, new_size=4),
        snapshot("MKT-B", seq=7, **maps),
        delta("MKT-B", seq=9, side="yes", price=31, new_size=0),
    )
    books = reconstruct_books(beside_good(*bad))

    issue = books.report.rejected["MKT-B"]
    assert_names(issue, "MKT-B", 7)
    assert "malformed" in str(issue) and column in str(issue)
    assert books.tickers == ["MKT-A"]
    assert_good_market_unaffected(*bad)


@pytest.mark.parametrize("text", ['{"45": "x"}', "[1, 2]", "not json"])
@pytest.mark.parametrize("column", ["yes_asks", "no_asks"])
def test_malformed_ask_map_is_ignored_and_counted(text, column):
    """Asks are derived from bids, so a bad stored ask map loses nothing."""

    def market_b(**ask_maps):
        return (
            snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}),
            delta("MKT-B", seq=5, side="yes", price=31, new_size=4),
            snapshot("MKT-B", seq=7, yes_bids={33: 2}, no_bids={61: 1}, **ask_maps),
            delta("MKT-B", seq=9, side="yes", price=33, new_size=0),
        )

    books = reconstruct_books(beside_good(*market_b(**{column: text})))

    assert "MKT-B" not in books.report.rejected
    assert books.report.repairs[RepairKind.MALFORMED_ASK_MAP] == 1
    assert_names(example(books.report, RepairKind.MALFORMED_ASK_MAP), "MKT-B", 7)
    assert_same_books(
        market_books(beside_good(*market_b(**{column: text})), "MKT-B"),
        market_books(beside_good(*market_b()), "MKT-B"),
    )
    assert_good_market_unaffected(*market_b(**{column: text}))


# -- stored asks that disagree with the bids -------------------------------------------
def test_stored_asks_disagreeing_with_bids_are_ignored():
    def old_collector(ticker, seq, yes_bids, no_bids):
        """The old collector stored asks at 99 - p instead of 100 - p."""
        return snapshot(
            ticker,
            seq,
            yes_bids,
            no_bids,
            yes_asks={99 - p: s for p, s in no_bids.items()},
            no_asks={99 - p: s for p, s in yes_bids.items()},
        )

    def session(make_snapshot):
        return make_session(
            *GOOD,
            make_snapshot("MKT-B", 2, {30: 2, 28: 1}, {60: 1}),
            delta("MKT-B", seq=5, side="no", price=61, new_size=4),
            make_snapshot("MKT-B", 7, {31: 2}, {62: 5}),
        )

    def correct(ticker, seq, yes_bids, no_bids):
        return snapshot(ticker, seq, yes_bids, no_bids)

    books = reconstruct_books(session(old_collector))
    expected = reconstruct_books(session(correct))

    assert books.report.repairs[RepairKind.STORED_ASKS_DISAGREE] == 2
    assert_names(example(books.report, RepairKind.STORED_ASKS_DISAGREE), "MKT-B", 2)
    assert expected.report.repairs[RepairKind.STORED_ASKS_DISAGREE] == 0
    for name, values in expected.columns().items():
        np.testing.assert_array_equal(getattr(books, name), values, err_msg=name)
    # The asks come from the bids: YES ask = 100 - best NO bid.
    assert books.best_yes_ask[books.market_rows("MKT-B")].tolist() == [40, 39, 38]


# -- several events in one millisecond -------------------------------------------------
def test_events_sharing_a_millisecond_are_ordered_by_sequence():
    ms = T0_MS + 500
    rows = (
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 2}, ts=ms),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=3, ts=ms),
        snapshot("MKT-B", seq=3, yes_bids={20: 1}, ts=ms),
        delta("MKT-A", seq=4, side="yes", price=41, new_size=8, old_size=3, ts=ms),
        delta("MKT-A", seq=5, side="yes", price=42, new_size=1, ts=ms),
        delta("MKT-B", seq=6, side="yes", price=20, new_size=6, old_size=1, ts=ms),
        delta("MKT-A", seq=7, side="yes", price=42, new_size=0, ts=ms),
    )
    books = reconstruct_books(make_session(*rows))

    assert len(books) == len(rows)  # every event gives a row
    assert (books.timestamp_ms == ms).all()
    a, b = books.market_rows("MKT-A"), books.market_rows("MKT-B")
    assert books.sequence_number[a].tolist() == [1, 2, 4, 5, 7]
    assert books.best_yes_bid[a].tolist() == [40, 41, 41, 42, 41]
    assert books.best_yes_bid_size[a].tolist() == [10, 3, 8, 1, 8]
    assert books.yes_bid_depth[a][-1].tolist() == [8, 10, 0, 0, 0]  # the final book
    assert books.best_yes_bid_size[b].tolist() == [1, 6]
    assert not books.report.repairs


# -- empty and active sessions ---------------------------------------------------------
def test_empty_session_gives_no_markets_and_no_error():
    books = reconstruct_books(make_session())

    assert books.report.empty
    assert books.tickers == []
    assert len(books) == 0
    assert books.to_arrow().num_rows == 0
    assert not books.report.rejected


def test_a_session_whose_markets_are_all_rejected_is_not_empty():
    books = reconstruct_books(make_session(delta("MKT-B", seq=7, side="yes", price=31, new_size=4)))

    assert not books.report.empty
    assert books.tickers == []
    assert list(books.report.rejected) == ["MKT-B"]


def test_active_session_is_refused_by_the_store(tmp_path):
    store = ParquetSessionStore(tmp_path / "store")
    store.write_session(make_session(*GOOD, session_id=1, status="active"))
    store.write_session(make_session(*GOOD, session_id=2, status="closed"))

    with pytest.raises(SessionNotComplete, match="session 1"):
        store.load_session(1)
    assert store.load_session(2).num_events == len(GOOD)


# -- logging ---------------------------------------------------------------------------
def test_repairs_log_a_warning_naming_the_place(caplog):
    bad = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}),
        delta("MKT-B", seq=7, side="yes", price=104, new_size=4),
    )
    with caplog.at_level(logging.WARNING, logger="kalshi_pipeline.market.cleaning"):
        clean_session(beside_good(*bad))

    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert any(
        "session 1" in m and "market MKT-B" in m and "seq 7" in m and "1..99" in m for m in warnings
    ), warnings


def test_rejections_log_an_error_naming_the_place(caplog):
    bad = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}),
        snapshot("MKT-B", seq=7, yes_bids="not json"),
    )
    with caplog.at_level(logging.WARNING, logger="kalshi_pipeline.market.cleaning"):
        clean_session(beside_good(*bad))

    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any("session 1" in m and "market MKT-B" in m and "seq 7" in m for m in errors)
