"""No stored value can fail a whole session: a value that cannot be decoded marks its row.

Price maps nested 5,000 levels deep, numbers of 5,000 digits, NaN, strings, bools or lists
where an integer belongs, text that is not UTF-8 or holds a lone surrogate: each is a
counted repair or the rejection of its one market, named by session, market, sequence
number and row id, and the good market beside it keeps exactly its books. Through a real
Parquet store (the ingest's path) and through the collector's PostgreSQL database.
"""

from __future__ import annotations

import dataclasses
from contextlib import closing
from decimal import Decimal

import psycopg2
import pytest

from kalshi_pipeline.market.books import reconstruct_books
from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline.market.views import SessionViews, build_market_views
from kalshi_pipeline.sources import PostgresSessionSource
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.raw import DELTA_SCHEMA, delta_table
from kalshi_pipeline.sources.raw_values import shown
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline_tests.factories import delta, snapshot
from kalshi_pipeline_tests.market.test_cleaning import (
    GOOD,
    assert_names,
    beside_good,
    example,
    market_books,
)

DEEP_ARRAY = "[" * 5_000 + "]" * 5_000
DEEP_OBJECT = '{"a": ' * 5_000 + "1" + "}" * 5_000
DIGITS = "9" * 5_000

# Bid maps that cannot be decoded into price -> integer size, whatever the reason.
UNDECODABLE_MAPS = {
    "an array 5,000 deep as a size": f'{{"30": {DEEP_ARRAY}}}',
    "an object 5,000 deep as a size": f'{{"30": {DEEP_OBJECT}}}',
    "an array 100,000 deep": "[" * 100_000 + "]" * 100_000,
    "bytes that are not UTF-8": b'{"30": 1, "\xff": 2}',
    "a lone surrogate as a key": '{"\\ud800": 1}',
    "a lone surrogate as a size": '{"30": "\\udc00"}',
    "a JSON array": "[30, 1]",
    "a JSON string": '"30"',
    "a JSON number": "30",
    "JSON true": "true",
    "NaN as a size": '{"30": NaN}',
    "Infinity as a size": '{"30": -Infinity}',
    "a float of 5,000 digits": f'{{"30": {DIGITS}.5}}',
    "a fraction": '{"30": 1.5}',
    "a string as a size": '{"30": "5"}',
    "a bool as a size": '{"30": false}',
    "a list as a size": '{"30": [5]}',
    "an object as a size": '{"30": {"5": 5}}',
    "a size of a million characters": '{"30": "' + "x" * 1_000_000 + '"}',
    "a key of a million characters": '{"' + "x" * 1_000_000 + '": 1}',
}


def assert_good_market_keeps_its_books(session):
    """MKT-A's books beside the bad rows are exactly its books alone."""
    alone, beside = market_books(beside_good()), market_books(session)
    assert alone.keys() == beside.keys()
    for name in alone:
        assert (alone[name] == beside[name]).all(), name


@pytest.mark.parametrize("text", UNDECODABLE_MAPS.values(), ids=UNDECODABLE_MAPS.keys())
@pytest.mark.parametrize("column", ["yes_bids", "no_bids"])
def test_a_bid_map_that_cannot_be_decoded_rejects_its_market_by_name(text, column):
    maps = {"yes_bids": {30: 2}, "no_bids": {60: 1}, column: text}
    session = beside_good(snapshot("MKT-B", seq=7, **maps))

    books = reconstruct_books(session)

    issue = books.report.rejected["MKT-B"]
    assert_names(issue, "MKT-B", 7)
    assert "row id" in str(issue) and f"{column}: " in str(issue)
    assert len(str(issue)) < 400  # a short line, whatever the value's size
    assert books.tickers == ["MKT-A"]
    assert_good_market_keeps_its_books(session)


@pytest.mark.parametrize(
    ("bids", "kind"),
    [
        (f'{{"30": 2, "31": {DIGITS}}}', RepairKind.SIZE_OUT_OF_RANGE),
        (f'{{"30": 2, "31": -{DIGITS}}}', RepairKind.NEGATIVE_SIZE),
        (f'{{"30": 2, "{DIGITS}": 5}}', RepairKind.PRICE_OUT_OF_RANGE),
        (f'{{"30": 2, "-{DIGITS}": 5}}', RepairKind.PRICE_OUT_OF_RANGE),
        ('{"30": 2, "31": 1e400}', None),  # a float too large: infinite, the map malformed
    ],
    ids=["size", "negative size", "key", "negative key", "float"],
)
def test_a_number_of_5000_digits_in_a_price_map_drops_that_level(bids, kind):
    session = beside_good(snapshot("MKT-B", seq=7, yes_bids=bids, no_bids={60: 1}))

    books = reconstruct_books(session)

    if kind is None:
        assert_names(books.report.rejected["MKT-B"], "MKT-B", 7)
    else:
        assert books.report.repairs[kind] == 1
        assert_names(example(books.report, kind), "MKT-B", 7)
        assert books.best_yes_bid[books.market_rows("MKT-B")][0] == 30
    assert_good_market_keeps_its_books(session)


def with_delta_value(session, seq: int, column: str, value):
    """``session`` with one column of the delta numbered ``seq`` set to ``value``, the
    deltas built from collector-shaped rows as a source builds them."""
    rows = [tuple(row.values()) for row in session.deltas.to_pylist()]
    index = DELTA_SCHEMA.get_field_index(column)
    rows = [(*row[:index], value, *row[index + 1 :]) if row[4] == seq else row for row in rows]
    return dataclasses.replace(session, deltas=delta_table(rows))


DROPPED_DELTA = (
    RepairKind.PRICE_OUT_OF_RANGE, RepairKind.NEGATIVE_SIZE, RepairKind.SIZE_OUT_OF_RANGE,
)  # fmt: skip
NOT_INTEGERS = [
    float("nan"), float("inf"), -float("inf"), 31.5, "abc", " 31", "3_1", "٣١", True, [31],
    {"31": 1},
    Decimal("NaN"), Decimal("31.5"), Decimal("-Infinity"), "\ud800", b"\xff", "x" * 1_000_000,
]  # fmt: skip
HUGE = [10**5_000, -(10**5_000), Decimal("1E+100000000"), 2**63, 2**41, 1e300]


@pytest.mark.parametrize("value", NOT_INTEGERS + HUGE, ids=shown)
@pytest.mark.parametrize("column", ["price", "new_size"])
def test_a_delta_value_that_is_not_a_sane_integer_drops_that_delta_by_row(column, value):
    bad = (
        snapshot("MKT-B", seq=7, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=9, side="yes", price=31, new_size=4),
    )
    session = with_delta_value(beside_good(*bad), 9, column, value)

    books = reconstruct_books(session)

    kinds = [k for k in books.report.repairs if k in DROPPED_DELTA]
    assert sum(books.report.repairs[k] for k in kinds) == 1, dict(books.report.repairs)
    issue = example(books.report, kinds[0])
    assert_names(issue, "MKT-B", 9)
    assert "row id" in str(issue)
    assert books.best_yes_bid[books.market_rows("MKT-B")].tolist() == [30]
    assert_good_market_keeps_its_books(session)


@pytest.mark.parametrize(
    ("column", "value", "kind"),
    [
        ("timestamp_ms", float("nan"), RepairKind.MISSING_TIMESTAMP),
        ("timestamp_ms", "abc", RepairKind.MISSING_TIMESTAMP),
        ("timestamp_ms", 10**5_000, RepairKind.TIMESTAMP_OUT_OF_WINDOW),
        ("sequence_number", Decimal("NaN"), RepairKind.MISSING_SEQUENCE_NUMBER),
        ("sequence_number", -(10**5_000), RepairKind.SEQUENCE_OUTLIER),
        ("market_ticker", "\ud800", RepairKind.MISSING_MARKET_TICKER),
        ("market_ticker", [1], RepairKind.MISSING_MARKET_TICKER),
        ("side", 5, RepairKind.UNKNOWN_SIDE),
        ("side", "\udc00", RepairKind.UNKNOWN_SIDE),
    ],
    ids=shown,
)
def test_a_delta_key_field_that_cannot_be_read_is_a_counted_repair(column, value, kind):
    bad = (
        snapshot("MKT-B", seq=7, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=9, side="yes", price=31, new_size=4),
    )
    session = with_delta_value(beside_good(*bad), 9, column, value)

    books = reconstruct_books(session)

    assert books.report.repairs[kind] == 1
    assert "row id" in str(example(books.report, kind)) or kind in (
        RepairKind.TIMESTAMP_OUT_OF_WINDOW, RepairKind.UNKNOWN_SIDE,
    )  # fmt: skip
    assert not books.report.rejected
    assert_good_market_keeps_its_books(session)


def hostile_session():
    """A good market, a market with a map 5,000 deep, one with a size of 5,000 digits and
    one with a delta whose size is NaN."""
    rows = (
        *GOOD,
        snapshot("MKT-B", seq=2, yes_bids=f'{{"30": {DEEP_ARRAY}}}', no_bids={60: 1}),
        snapshot("MKT-C", seq=5, yes_bids=f'{{"30": 2, "31": {DIGITS}}}', no_bids={60: 1}),
        snapshot("MKT-D", seq=7, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-D", seq=9, side="yes", price=31, new_size=4),
    )
    session = beside_good(*rows[len(GOOD) :])
    return with_delta_value(session, 9, "new_size", float("nan"))


def test_hostile_values_through_a_parquet_store_mark_their_rows_and_keep_the_session(tmp_path):
    store = ParquetSessionStore(tmp_path / "store")
    store.write_session(hostile_session())

    with (
        store.open_session(1) as stored,
        SessionViews.streamed(stored, scratch=tmp_path) as builder,
    ):
        views = [view for batch in builder.batches() for view in batch]

    report = builder.report
    assert [v.market_ticker for v in views] == ["MKT-A", "MKT-C", "MKT-D"]
    assert set(report.rejected) == {"MKT-B"}
    assert "nested too deeply" in str(report.rejected["MKT-B"])
    assert report.repairs[RepairKind.SIZE_OUT_OF_RANGE] == 1
    assert_names(example(report, RepairKind.SIZE_OUT_OF_RANGE), "MKT-C", 5)
    assert_names(example(report, RepairKind.NEGATIVE_SIZE), "MKT-D", 9)


def test_hostile_values_in_the_collectors_database_mark_their_rows(collector_tables):
    """A copy of the collector's tables with looser column types (NUMERIC, TEXT) and
    values the collector never writes: the session loads and builds."""
    raw = simulate_session(3, 0, SimulatorConfig(markets=6))
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, raw)
        with conn.cursor() as cur:
            cur.execute(
                "ALTER TABLE rl_orderbook_deltas ALTER COLUMN price TYPE NUMERIC, "
                "ALTER COLUMN new_size TYPE TEXT"
            )
            cur.execute(
                "UPDATE rl_orderbook_snapshots SET yes_bids = %s::jsonb WHERE id = 1",
                (f'{{"30": {DEEP_ARRAY}}}',),
            )
            cur.execute(
                "UPDATE rl_orderbook_snapshots SET no_bids = %s::jsonb WHERE id = 2",
                (f'{{"30": {DIGITS}}}',),
            )
            cur.execute("UPDATE rl_orderbook_deltas SET price = 'NaN' WHERE id = 5")
            cur.execute("UPDATE rl_orderbook_deltas SET price = 1e4999 WHERE id = 6")
            cur.execute("UPDATE rl_orderbook_deltas SET new_size = 'abc' WHERE id = 7")
            cur.execute(f"UPDATE rl_orderbook_deltas SET new_size = '{DIGITS}' WHERE id = 8")
            # `remove` clears its level whatever new_size says: these two set one.
            cur.execute("UPDATE rl_orderbook_deltas SET action = 'update' WHERE id IN (7, 8)")
        conn.commit()

    loaded = PostgresSessionSource(collector_tables).load_session(3)
    report = reconstruct_books(loaded).report
    views = build_market_views(loaded)

    first_market = loaded.snapshots.column("market_ticker")[0].as_py()
    assert "nested too deeply" in str(report.rejected[first_market])
    assert "row id 1" in str(report.rejected[first_market])
    assert report.repairs[RepairKind.PRICE_OUT_OF_RANGE] == 2
    assert report.repairs[RepairKind.NEGATIVE_SIZE] >= 1
    assert report.repairs[RepairKind.SIZE_OUT_OF_RANGE] == 2
    named = " ".join(str(i) for i in report.examples)
    assert all(f"row id {i}" in named for i in (5, 6, 7, 8))
    assert len(views) >= 5
