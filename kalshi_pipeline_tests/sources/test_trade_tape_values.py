"""Reading a trade's values: Kalshi's decimal strings into cents and contracts, and odd
values into NULL or a clamped integer, never an exception (no database needed)."""

from __future__ import annotations

import math
from decimal import Decimal

import pytest

from kalshi_pipeline.sources.trades import (
    COLLECTOR_TRADE_COLUMNS,
    TRADE_SCHEMA,
    collector_trade_table,
    decimal_units,
    exchange_ms,
)

INT32_MAX, INT64_MAX = 2**31 - 1, 2**63 - 1


@pytest.mark.parametrize(
    ("text", "cents"),
    [
        ("0.5600", 56),
        ("0.56", 56),
        ("0.01", 1),
        ("0.9900", 99),
        ("1", 100),
        ("1.0000", 100),
        ("0.5", 50),
        ("-0.0200", -2),  # a number, outside 1..99: cleaning's to count
        ("0.565", None),  # not a whole cent
        ("0.560000000000000000000000000001", None),  # past the 28 digits of the default context
        ("abc", None),
        ("", None),
        (" 0.56", None),
        ("0.56 ", None),
        ("+0.56", None),
        (".56", None),
        ("0,56", None),
        ("1e-2", None),
        ("NaN", None),
        ("Infinity", None),
        ("٠.٥٦", None),  # digits of another script
        ("9" * 31, None),  # longer than any number a column holds
        (None, None),
        (56, None),  # an integer is not a decimal string
        (0.56, None),
    ],
)
def test_a_dollar_price_reads_as_whole_cents_or_null(text, cents):
    assert decimal_units(text, 100, INT32_MAX) == cents


@pytest.mark.parametrize(
    ("text", "count"),
    [("10.00", 10), ("1", 1), ("1000.0", 1000), ("2.50", None), ("0.01", None), ("x", None)],
)
def test_a_fixed_point_count_reads_as_whole_contracts_or_null(text, count):
    assert decimal_units(text, 1, INT64_MAX) == count


def test_a_price_too_large_for_its_column_is_clamped_not_wrapped():
    assert decimal_units("99999999999.99", 100, INT32_MAX) == INT32_MAX
    assert decimal_units("-99999999999.99", 100, INT32_MAX) == -INT32_MAX


@pytest.mark.parametrize(
    ("ts", "ms"),
    [
        (1_767_571_200, 1_767_571_200_000),
        ("1767571200", 1_767_571_200_000),
        (Decimal(1_767_571_200), 1_767_571_200_000),
        (1_767_571_200.5, None),  # not whole seconds
        ("soon", None),
        (None, None),
        (10**30, INT64_MAX),
    ],
)
def test_the_exchange_time_is_seconds_made_milliseconds(ts, ms):
    assert exchange_ms(ts) == ms


def collector_row(**values) -> tuple:
    row = dict.fromkeys(COLLECTOR_TRADE_COLUMNS)
    row.update(id=1, session_id=1, trade_id="t-1", market_ticker="MKT-A", taker_side="yes")
    row.update(timestamp_ms=1_767_571_200_123)
    row.update(values)
    return tuple(row[name] for name in COLLECTOR_TRADE_COLUMNS)


def test_odd_values_in_any_column_become_null_or_clamped_and_fail_nothing():
    rows = [
        collector_row(yes_price=45, no_price=55, count=3, ts=1_767_571_200, sequence_number=4),
        collector_row(id=2, yes_price=math.nan, no_price="55", count=2**70, taker_side=5),
        collector_row(id=3, yes_price=True, no_price=Decimal("55.5"), count=-3, ts=[1]),
        collector_row(id=4, trade_id="\ud800", market_ticker=None, timestamp_ms="late"),
    ]

    table = collector_trade_table(rows)

    assert table.schema.equals(TRADE_SCHEMA)
    got = table.to_pylist()
    assert [r["id"] for r in got] == [1, 2, 3, 4]  # every row kept, for cleaning to count
    assert (got[0]["yes_price"], got[0]["no_price"], got[0]["count"]) == (45, 55, 3)
    assert got[0]["exchange_ts_ms"] == 1_767_571_200_000 and got[0]["sequence_number"] == 4
    assert (got[1]["yes_price"], got[1]["no_price"], got[1]["count"]) == (None, 55, INT64_MAX)
    assert got[1]["taker_side"] is None
    assert (got[2]["yes_price"], got[2]["no_price"], got[2]["count"]) == (None, None, -3)
    assert got[2]["exchange_ts_ms"] is None
    assert (got[3]["trade_id"], got[3]["market_ticker"], got[3]["timestamp_ms"]) == (
        None,
        None,
        None,
    )


def test_no_rows_give_an_empty_tape():
    table = collector_trade_table([])
    assert table.num_rows == 0 and table.schema.equals(TRADE_SCHEMA)
