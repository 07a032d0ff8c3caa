"""The trade tape in the collector's Postgres: written, read in both formats, fingerprinted.

On the real server (a scratch database per test). Sessions go in through
``write_collector_session`` (the integer format) or through plain SQL written the way a
newer collector stores Kalshi's decimal strings.
"""

from __future__ import annotations

from contextlib import closing

import psycopg2
import pyarrow as pa
import pytest

from kalshi_pipeline.sources import ParquetSessionStore, PostgresSessionSource, RawSession
from kalshi_pipeline.sources.collector_writer import (
    append_collector_rows,
    collector_ddl,
    write_collector_session,
)
from kalshi_pipeline.sources.fingerprint import SessionFingerprint
from kalshi_pipeline.sources.trades import COLLECTOR_TRADES_TABLE, TRADE_SCHEMA
from kalshi_pipeline_tests.factories import T0_MS, trade, with_tape
from kalshi_pipeline_tests.sources.trade_rows import book_session, taped_session


def store(url: str, *sessions: RawSession) -> None:
    with closing(psycopg2.connect(url)) as conn:
        for session in sessions:
            write_collector_session(conn, session)


def run_sql(url: str, statement: str, params: tuple | list | None = None) -> None:
    with closing(psycopg2.connect(url)) as conn:
        with conn.cursor() as cur:
            cur.execute(statement, params)
        conn.commit()


def without_ids(table: pa.Table) -> pa.Table:
    return table.drop_columns(["id"])


# -- the integer format, as collector_writer writes it ----------------------------------
def test_the_collector_round_trip_keeps_every_trade(collector_tables, tmp_path):
    # Another session goes in first, so that the database's ids are not the session's own.
    first, second = taped_session(1), taped_session(2)
    store(collector_tables, first, second)
    source = PostgresSessionSource(collector_tables, batch_rows=3)  # the tape spans batches

    loaded = source.load_session(2)

    assert loaded.trades.schema.equals(TRADE_SCHEMA)
    assert without_ids(loaded.trades).equals(without_ids(second.trades))
    ids = loaded.trades["id"].to_pylist()
    assert ids == sorted(ids) and min(ids) > max(source.load_session(1).trades["id"].to_pylist())
    assert loaded.deltas.drop_columns(["id"]).equals(second.deltas.drop_columns(["id"]))

    # Streamed: the opened session carries the same tape, and its copy keeps it.
    copy = ParquetSessionStore(tmp_path / "copy")
    with source.open_session(2) as opened:
        assert opened.trades.equals(loaded.trades)
        copy.write_session(opened)
    assert copy.load_session(2).trades.equals(loaded.trades)


def test_a_session_without_a_trade_row_has_an_empty_tape_not_none(collector_tables):
    store(collector_tables, book_session(1), taped_session(2))

    loaded = PostgresSessionSource(collector_tables).load_session(1)

    assert loaded.trades is not None and loaded.trades.num_rows == 0
    assert loaded.trades.schema.equals(TRADE_SCHEMA)


def test_a_database_without_the_trades_table_reads_as_before(collector_tables, tmp_path):
    run_sql(collector_tables, f"DROP TABLE {COLLECTOR_TRADES_TABLE}")
    session = book_session(1)
    store(collector_tables, session)  # no tape: the writer needs no trades table
    source = PostgresSessionSource(collector_tables)

    loaded = source.load_session(1)
    with source.open_session(1) as opened:
        assert opened.trades is None
        ParquetSessionStore(tmp_path / "copy").write_session(opened)

    assert loaded.trades is None
    assert loaded.info == session.info
    for table in ("snapshots", "deltas"):
        assert (
            getattr(loaded, table)
            .drop_columns(["id"])
            .equals(getattr(session, table).drop_columns(["id"]))
        )
    fingerprint = source.fingerprints([1])[1]
    assert fingerprint.trades is None
    assert "trades" not in fingerprint.to_json()  # the token of a session before tapes
    assert SessionFingerprint.from_json(fingerprint.to_json()) == fingerprint
    assert not (tmp_path / "copy" / "session-1" / "trades.parquet").exists()


def test_the_writer_refuses_an_exchange_time_it_cannot_keep(collector_tables):
    # ts holds Kalshi's whole seconds: 2.5 s would come back as 2 s.
    session = with_tape(
        book_session(1),
        trade(
            "MKT-A", "t-7", yes_price=45, count=3, taker_side="yes", exchange_ts_ms=T0_MS + 2_500
        ),
    )
    with pytest.raises(ValueError, match=r"session 1: trade 't-7' \(market MKT-A\).*whole second"):
        store(collector_tables, session)
    assert PostgresSessionSource(collector_tables).list_sessions() == []  # nothing committed


# -- the decimal-string format -----------------------------------------------------------
INSERT_TRADE = (
    f"INSERT INTO {COLLECTOR_TRADES_TABLE} (session_id, trade_id, market_ticker, yes_price, "
    "no_price, count, yes_price_dollars, no_price_dollars, count_fp, taker_side, ts, "
    "timestamp_ms, sequence_number) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
)


def insert_trades(url: str, rows: list[tuple]) -> None:
    with closing(psycopg2.connect(url)) as conn:
        with conn.cursor() as cur:
            cur.executemany(INSERT_TRADE, rows)
        conn.commit()


def as_dollars(session: RawSession) -> list[tuple]:
    """The session's trades as a newer collector stores them: decimal strings only."""
    return [
        (t["session_id"], t["trade_id"], t["market_ticker"], None, None, None,
         f"{t['yes_price'] / 100:.4f}", f"{t['no_price'] / 100:.4f}", f"{t['count']}.00",
         t["taker_side"], t["exchange_ts_ms"] // 1000, t["timestamp_ms"], t["sequence_number"])
        for t in session.trades.to_pylist()
    ]  # fmt: skip


def test_the_dollar_format_reads_to_the_same_cents_and_counts(collector_tables):
    taped = taped_session(1)
    store(collector_tables, book_session(1), book_session(2))
    insert_trades(collector_tables, as_dollars(taped))
    assert as_dollars(taped)[0][6:9] == ("0.4500", "0.5500", "3.00")  # Kalshi's spelling

    loaded = PostgresSessionSource(collector_tables).load_session(1)

    assert without_ids(loaded.trades).equals(without_ids(taped.trades))


def test_the_integer_columns_win_where_both_formats_are_stored(collector_tables):
    store(collector_tables, book_session(1))
    insert_trades(
        collector_tables,
        [(1, "t-1", "MKT-A", 45, 55, 3, "0.9900", "0.0100", "7.00", "yes", 1, T0_MS, None)],
    )
    loaded = PostgresSessionSource(collector_tables).load_session(1).trades
    assert loaded.select(["yes_price", "no_price", "count"]).to_pylist() == [
        {"yes_price": 45, "no_price": 55, "count": 3}
    ]


BAD_STRINGS = [
    # (yes_price_dollars, no_price_dollars, count_fp): the fields that must read as NULL
    ("0.565", "0.4400", "3.00"),  # not a whole cent
    ("abc", "", "3"),  # not a number; an empty string
    ("0.56", "0.44", "2.50"),  # not a whole contract
    ("NaN", "Infinity", "1e3"),  # not plain decimals
    (" 0.56", "0,44", "+3"),  # spaces, a comma, a sign Kalshi never writes
    ("9" * 5000, "0.44", "1" * 5000),  # absurdly long
]


def test_bad_dollar_strings_become_null_and_lose_nothing_else(collector_tables):
    store(collector_tables, book_session(1))
    good = (1, "t-good", "MKT-A", None, None, None, "0.5600", "0.4400", "10.00", "no", 1, T0_MS, 9)
    bad = [
        (1, f"t-bad-{i}", "MKT-A", None, None, None, *strings, "yes", 1, T0_MS + i, None)
        for i, strings in enumerate(BAD_STRINGS)
    ]
    insert_trades(collector_tables, [good, *bad])

    loaded = PostgresSessionSource(collector_tables).load_session(1).trades

    rows = loaded.to_pylist()
    assert len(rows) == 1 + len(BAD_STRINGS)  # every row is kept, for cleaning to count
    assert (rows[0]["yes_price"], rows[0]["no_price"], rows[0]["count"]) == (56, 44, 10)
    assert rows[0]["sequence_number"] == 9 and rows[0]["exchange_ts_ms"] == 1000
    nulls = [
        tuple(name for name in ("yes_price", "no_price", "count") if row[name] is None)
        for row in rows[1:]
    ]
    assert nulls == [
        ("yes_price",),
        ("yes_price", "no_price"),
        ("count",),
        ("yes_price", "no_price", "count"),
        ("yes_price", "no_price", "count"),
        ("yes_price", "count"),
    ]
    assert [row["trade_id"] for row in rows[1:]] == [t[1] for t in bad]


TRADE_COLUMNS = INSERT_TRADE.split("(", 1)[1].split(")")[0].replace(" ", "").split(",")


@pytest.mark.parametrize(
    "dropped",
    [
        ("yes_price_dollars", "no_price_dollars", "count_fp", "sequence_number"),  # older
        ("yes_price", "no_price", "count", "ts"),  # strings only, no exchange time
    ],
)
def test_a_trades_table_without_some_optional_columns_is_read(collector_tables, dropped):
    taped = taped_session(1)
    store(collector_tables, book_session(1))
    drops = ", ".join(f"DROP COLUMN {name}" for name in dropped)
    run_sql(collector_tables, f"ALTER TABLE {COLLECTOR_TRADES_TABLE} {drops}")
    both_formats = [
        (1, t["trade_id"], t["market_ticker"], t["yes_price"], t["no_price"], t["count"],
         f"{t['yes_price'] / 100:.2f}", f"{t['no_price'] / 100:.2f}", str(t["count"]),
         t["taker_side"], t["exchange_ts_ms"] // 1000, t["timestamp_ms"], t["sequence_number"])
        for t in taped.trades.to_pylist()
    ]  # fmt: skip
    kept = [i for i, name in enumerate(TRADE_COLUMNS) if name not in dropped]
    insert = (
        f"INSERT INTO {COLLECTOR_TRADES_TABLE} ({', '.join(TRADE_COLUMNS[i] for i in kept)}) "
        f"VALUES ({', '.join(['%s'] * len(kept))})"
    )
    with closing(psycopg2.connect(collector_tables)) as conn:
        with conn.cursor() as cur:
            cur.executemany(insert, [[row[i] for i in kept] for row in both_formats])
        conn.commit()

    loaded = PostgresSessionSource(collector_tables).load_session(1).trades

    want = without_ids(taped.trades)
    for column, stored_as in (("sequence_number", "sequence_number"), ("exchange_ts_ms", "ts")):
        if stored_as in dropped:  # read as NULL
            index = want.schema.get_field_index(column)
            want = want.set_column(index, column, pa.nulls(want.num_rows, pa.int64()))
    assert without_ids(loaded).equals(want)


# -- fingerprints ------------------------------------------------------------------------
def test_a_tape_that_grows_changes_the_fingerprint(collector_tables, tmp_path):
    store(collector_tables, taped_session(1), taped_session(2))
    source = PostgresSessionSource(collector_tables)
    before = source.fingerprints([1, 2])
    assert before[1].trades.rows == 4

    more = with_tape(
        _no_book(book_session(1)),
        trade("MKT-B", "a1b2-0005", yes_price=21, count=2, taker_side="no", seq=9),
    )
    with closing(psycopg2.connect(collector_tables)) as conn:
        append_collector_rows(conn, more)
    after = source.fingerprints([1, 2])

    assert after[2] == before[2]  # the other session did not change
    assert after[1].token != before[1].token
    assert after[1].trades.rows == 5 and after[1].trades.last_id > before[1].trades.last_id
    assert (after[1].snapshots, after[1].deltas) == (before[1].snapshots, before[1].deltas)
    change = after[1].changes_since(before[1])
    assert change.startswith("trades 4 rows up to id") and "snapshots" not in change

    # The copy's store gives the fingerprint the source gave for the rows it read.
    copy = ParquetSessionStore(tmp_path / "copy")
    with source.open_session(1) as opened:
        copy.write_session(opened)
    assert copy.fingerprints([1]) == {1: after[1]}


def test_a_tape_that_appears_changes_the_fingerprint(collector_tables):
    run_sql(collector_tables, f"DROP TABLE {COLLECTOR_TRADES_TABLE}")
    store(collector_tables, book_session(1))
    source = PostgresSessionSource(collector_tables)
    before = source.fingerprints([1])[1]

    run_sql(collector_tables, collector_ddl())  # the collector starts recording trades
    after = source.fingerprints([1])[1]

    assert before.trades is None and after.trades.rows == 0
    assert after.token != before.token
    assert after.changes_since(before) == "trades no tape -> 0 rows"


def _no_book(session: RawSession) -> RawSession:
    """``session`` without its book rows: what a collector appends when only trades come."""
    return RawSession(
        session.info, session.snapshots.slice(0, 0), session.deltas.slice(0, 0), session.trades
    )
