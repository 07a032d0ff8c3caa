"""The report's vocabulary: repair kinds are their strings in reports, issues round-trip."""

from __future__ import annotations

import json
from collections import Counter

import numpy as np
import pytest

from kalshi_pipeline.market.cleaning.outline import SessionOutline
from kalshi_pipeline.market.cleaning.report import (
    DEFECTS,
    REJECTED_MARKET,
    DataIssue,
    IngestReport,
    RepairKind,
)

# The repair kinds as reports, metadata and the docs have always spelled them.
KINDS = {
    "missing_market_ticker", "missing_sequence_number", "missing_timestamp",
    "sequence_outlier", "price_out_of_range", "negative_size", "size_out_of_range",
    "unknown_side", "unknown_action", "duplicate_sequence", "sequence_shared",
    "sequence_restart", "stored_out_of_order", "delta_before_snapshot", "sequence_gap",
    "timestamp_out_of_window", "timestamp_backwards", "timestamp_jitter", "crossed_book",
    "malformed_ask_map", "stored_asks_disagree",
    # The trade tape's (market/cleaning/trades.py, market/trade_flow.py).
    "trade_unknown_market", "trade_missing_id", "trade_missing_timestamp",
    "trade_timestamp_out_of_window", "trade_price_out_of_range", "trade_prices_disagree",
    "trade_count_out_of_range", "trade_unknown_taker_side", "duplicate_trade_id",
    "trade_off_book",
}  # fmt: skip
DEFECT_KINDS = {
    "price_out_of_range", "negative_size", "size_out_of_range", "unknown_side",
    "unknown_action", "delta_before_snapshot", "crossed_book", "missing_sequence_number",
    "missing_timestamp", "sequence_outlier", "timestamp_backwards",
}  # fmt: skip  # timestamp_out_of_window: counted by the score's time factor instead


def test_every_repair_kind_is_spelled_as_reports_have_always_spelled_it():
    assert {str(kind) for kind in RepairKind} == KINDS
    assert DEFECTS == DEFECT_KINDS
    assert {kind for kind in RepairKind if kind.is_defect} == DEFECTS


def test_a_report_serialises_repair_kinds_as_their_strings():
    report = IngestReport(7)
    report.repair(RepairKind.CROSSED_BOOK, ["MKT-A", "MKT-A"], [3, 4], "crossed")
    report.repair(RepairKind.SEQUENCE_RESTART, ["MKT-A"], [9], "restart")
    assert json.dumps(dict(report.repairs)) == '{"crossed_book": 2, "sequence_restart": 1}'
    assert report.repairs["crossed_book"] == 2  # a plain string finds its member
    assert report.market_defects == Counter({"MKT-A": 2})  # a restart is not a defect


@pytest.mark.parametrize(
    "issue",
    [
        DataIssue(
            kind=RepairKind.SEQUENCE_OUTLIER,
            session_id=3,
            market_ticker="MKT-B",
            sequence_number=9_000_000_000_000_000,
            message="far outside",
            row_id=149,
        ),
        DataIssue(
            kind=RepairKind.SEQUENCE_GAP,
            session_id=3,
            market_ticker=None,
            sequence_number=None,
            message="gap",
        ),
        DataIssue(
            kind=REJECTED_MARKET,
            session_id=3,
            market_ticker="MKT-C",
            sequence_number=7,
            message="ambiguous",
        ),
        DataIssue(
            kind=RepairKind.DUPLICATE_TRADE_ID,
            session_id=3,
            market_ticker="MKT-D",
            sequence_number=None,
            message="seen before",
            row_id=12,
            trade_id="d9c1-77",
        ),
    ],
)
def test_a_data_issue_round_trips_through_json(issue):
    back = DataIssue.from_json(json.loads(json.dumps(issue.to_json())))
    assert back == issue
    assert type(back.kind) is type(issue.kind)
    assert str(back) == str(issue)


def test_a_session_outline_round_trips_through_json():
    outline = SessionOutline(
        session_id=4,
        window=(1_000, 9_000),
        tickers=["MKT-A", "MKT-B"],
        rows=np.array([12, 30], dtype=np.int64),
        center=2513.0,
        reach=1e6,
    )
    back = SessionOutline.from_json(json.loads(json.dumps(outline.to_json())))
    assert back == outline
    assert back.rows.dtype == np.int64 and isinstance(back.window, tuple)


def test_an_ingest_report_round_trips_through_json():
    report = IngestReport(5)
    report.repair(RepairKind.SEQUENCE_OUTLIER, ["MKT-B"], [9 * 10**15], "far", row_ids=[149])
    report.repair(RepairKind.SEQUENCE_GAP, [None], [156], "gap", count=3)
    report.reject("MKT-C", 7, "ambiguous")
    report.missing_sequence_numbers, report.sequence_span = 4, 5024
    back = IngestReport.from_json(json.loads(json.dumps(report.to_json())))
    assert back == report
    assert list(back.repairs) == [RepairKind.SEQUENCE_OUTLIER, RepairKind.SEQUENCE_GAP]
    assert back.missing_fraction == report.missing_fraction


def test_a_trade_issue_names_its_trade_and_other_issues_keep_their_json():
    trade = DataIssue(
        kind=RepairKind.TRADE_OFF_BOOK,
        session_id=3,
        market_ticker="MKT-D",
        sequence_number=None,
        message="off the book",
        row_id=4,
        trade_id="t-17",
    )
    assert str(trade) == "session 3, market MKT-D, trade t-17, row id 4: off the book"
    gap = DataIssue(
        kind=RepairKind.SEQUENCE_GAP,
        session_id=3,
        market_ticker=None,
        sequence_number=5,
        message="gap",
    )
    assert "trade_id" not in gap.to_json()  # reports without trades read as before
