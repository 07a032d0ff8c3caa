"""Reading the collector's Postgres tables with PostgresSessionSource, on a real server.

Each test gets a scratch database holding the collector's tables (``collector_tables`` in
conftest.py). Sessions go in either through ``write_collector_session`` or through plain
SQL written the way the collector writes its rows.
"""

from __future__ import annotations

from contextlib import closing
from datetime import UTC, datetime

import psycopg2
import pytest

from kalshi_pipeline.sources import (
    ParquetSessionStore,
    PostgresSessionSource,
    RawSession,
    SessionNotComplete,
)
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline_tests.factories import delta, make_session, snapshot

SMALL = SimulatorConfig(markets=6)


def small_session(session_id: int, seed: int = 7, config: SimulatorConfig = SMALL) -> RawSession:
    return simulate_session(session_id, seed=seed, config=config)


def store(url: str, *sessions: RawSession) -> None:
    with closing(psycopg2.connect(url)) as conn:
        for session in sessions:
            write_collector_session(conn, session)


def run_sql(url: str, statement: str, params: tuple | None = None) -> None:
    with closing(psycopg2.connect(url)) as conn:
        with conn.cursor() as cur:
            cur.execute(statement, params)
        conn.commit()


def assert_same_rows_except_id(loaded: RawSession, expected: RawSession) -> None:
    """Column by column: the database assigns its own ``id``s, everything else survives."""
    for table in ("snapshots", "deltas"):
        got, want = getattr(loaded, table), getattr(expected, table)
        assert got.schema.equals(want.schema), table
        assert got.num_rows == want.num_rows, table
        for name in want.column_names:
            if name != "id":
                assert got[name].equals(want[name]), f"{table}.{name}"


def strictly_increasing(values: list[int]) -> bool:
    return all(a < b for a, b in zip(values, values[1:], strict=False))


def test_list_sessions_reads_back_what_was_written(collector_tables):
    closed = small_session(1)
    recording = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
        session_id=2,
        status="active",
    )
    store(collector_tables, closed, recording)

    listed = PostgresSessionSource(collector_tables).list_sessions()

    assert listed == [closed.info, recording.info]
    assert [info.is_complete for info in listed] == [True, False]
    assert listed[0].market_tickers == closed.info.market_tickers
    assert len(listed[0].market_tickers) == SMALL.markets


def test_load_session_returns_the_simulated_session(collector_tables):
    # Another session goes in first, so the database's ids differ from the simulator's.
    first, second = small_session(1, seed=3), small_session(2, seed=3)
    store(collector_tables, first, second)
    source = PostgresSessionSource(collector_tables)

    loaded = source.load_session(2)

    assert loaded.info == second.info
    assert_same_rows_except_id(loaded, second)
    for table in ("snapshots", "deltas"):
        ids = getattr(loaded, table)["id"].to_pylist()
        first_ids = getattr(source.load_session(1), table)["id"].to_pylist()
        assert strictly_increasing(ids), table
        assert min(ids) > max(first_ids), table


def test_rows_keep_their_storage_order_not_sequence_order(collector_tables):
    # The collector sometimes stores events out of sequence; repairing that is the
    # cleaning step's job, so the source must hand the rows over exactly as stored.
    session = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
        delta("MKT-A", seq=5, side="yes", price=41, new_size=3),
        delta("MKT-A", seq=3, side="no", price=55, new_size=0, old_size=7),
        delta("MKT-A", seq=4, side="yes", price=40, new_size=12, old_size=10),
    )
    store(collector_tables, session)

    loaded = PostgresSessionSource(collector_tables).load_session(1)

    assert loaded.deltas["sequence_number"].to_pylist() == [5, 3, 4]
    assert loaded.deltas["action"].to_pylist() == ["add", "remove", "update"]
    assert strictly_increasing(loaded.deltas["id"].to_pylist())


COLLECTOR_SESSIONS_SQL = """
INSERT INTO rl_orderbook_sessions
    (market_tickers, started_at, ended_at, status, websocket_url, environment,
     connection_metadata, messages_received, snapshots_count, deltas_count,
     last_message_at, error_message)
VALUES
    (ARRAY['KXFED-26JAN-A', 'KXCPI-26JAN-B'], '2026-01-05 14:00:00+00',
     '2026-01-05 15:00:00+00', 'closed', 'wss://api.elections.kalshi.com/trade-api/ws/v2',
     'production', '{"channels": ["orderbook_delta"]}', 40, 3, 4,
     '2026-01-05 14:59:59+00', NULL),
    (ARRAY['KXNBA-26JAN-C'], '2026-01-06 14:00:00+00', NULL, 'active',
     'wss://api.elections.kalshi.com/trade-api/ws/v2', 'production', NULL, 7, 1, 1,
     '2026-01-06 14:03:00+00', NULL),
    (ARRAY['KXRAIN-26JAN-D'], '2026-01-07 14:00:00+00', '2026-01-07 14:10:00+00', 'error',
     'wss://api.elections.kalshi.com/trade-api/ws/v2', 'paper', NULL, 0, 0, 0, NULL,
     'websocket closed: 1006');
"""

# Rows of session 1 interleaved with session 2's, stored yes_asks in the older 99 - p
# convention and the derived columns left NULL or 0, as the collector does.
COLLECTOR_SNAPSHOTS_SQL = """
INSERT INTO rl_orderbook_snapshots
    (session_id, market_ticker, timestamp_ms, sequence_number,
     yes_bids, yes_asks, no_bids, no_asks, yes_spread, no_spread,
     yes_mid_price, no_mid_price, total_volume)
VALUES
    (1, 'KXFED-26JAN-A', 1767621600000, 1, '{"45": 10, "44": 3}', '{"54": 8}',
     '{"55": 8}', '{"55": 10, "56": 3}', NULL, NULL, NULL, NULL, 0),
    (2, 'KXNBA-26JAN-C', 1767708000000, 1, '{"20": 1}', '{}', '{}', '{"80": 1}',
     0, 0, 0, 0, 0),
    (1, 'KXCPI-26JAN-B', 1767621600001, 2, '{}', '{"69": 2}', '{"30": 2}', '{}',
     NULL, NULL, NULL, NULL, NULL),
    (1, 'KXFED-26JAN-A', 1767621600500, 7, '{"46": 4}', '{}', '{}', '{"54": 4}',
     NULL, NULL, NULL, NULL, NULL);
"""

COLLECTOR_DELTAS_SQL = """
INSERT INTO rl_orderbook_deltas
    (session_id, market_ticker, timestamp_ms, sequence_number, side, action, price,
     old_size, new_size)
VALUES
    (1, 'KXFED-26JAN-A', 1767621600100, 3, 'yes', 'update', 45, 10, 12),
    (1, 'KXFED-26JAN-A', 1767621600100, 4, 'no', 'remove', 55, 8, 0),
    (2, 'KXNBA-26JAN-C', 1767708000100, 2, 'yes', 'add', 21, 0, 5),
    (1, 'KXCPI-26JAN-B', 1767621600200, 6, 'no', 'add', 31, NULL, 9),
    (1, 'KXCPI-26JAN-B', 1767621600200, 5, 'yes', 'add', 29, 0, 1);
"""


def test_sessions_inserted_as_the_collector_writes_them(collector_tables):
    for statement in (COLLECTOR_SESSIONS_SQL, COLLECTOR_SNAPSHOTS_SQL, COLLECTOR_DELTAS_SQL):
        run_sql(collector_tables, statement)
    source = PostgresSessionSource(collector_tables)

    listed = source.list_sessions()
    assert [info.session_id for info in listed] == [1, 2, 3]
    assert [info.status for info in listed] == ["closed", "active", "error"]
    assert [info.is_complete for info in listed] == [True, False, True]
    assert listed[0].market_tickers == ("KXFED-26JAN-A", "KXCPI-26JAN-B")
    assert listed[0].started_at == datetime(2026, 1, 5, 14, tzinfo=UTC)
    assert listed[0].connection_metadata == {"channels": ["orderbook_delta"]}
    assert listed[1].ended_at is None
    assert listed[1].connection_metadata == {}
    assert listed[2].error_message == "websocket closed: 1006"

    session = source.load_session(1)
    snaps = session.snapshots
    assert snaps["id"].to_pylist() == [1, 3, 4]
    assert snaps["market_ticker"].to_pylist() == ["KXFED-26JAN-A", "KXCPI-26JAN-B", "KXFED-26JAN-A"]
    assert snaps["sequence_number"].to_pylist() == [1, 2, 7]
    assert snaps["timestamp_ms"].to_pylist() == [1767621600000, 1767621600001, 1767621600500]
    assert snaps["yes_bids"].to_pylist() == [[(44, 3), (45, 10)], [], [(46, 4)]]
    assert snaps["no_bids"].to_pylist() == [[(55, 8)], [(30, 2)], []]
    assert snaps["yes_asks"].to_pylist() == [[(54, 8)], [(69, 2)], []]  # as stored
    assert snaps["map_error"].to_pylist() == [None, None, None]

    deltas = session.deltas
    assert deltas["id"].to_pylist() == [1, 2, 4, 5]
    assert deltas["session_id"].to_pylist() == [1, 1, 1, 1]
    assert deltas["sequence_number"].to_pylist() == [3, 4, 6, 5]
    assert deltas["side"].to_pylist() == ["yes", "no", "no", "yes"]
    assert deltas["action"].to_pylist() == ["update", "remove", "add", "add"]
    assert deltas["price"].to_pylist() == [45, 55, 31, 29]
    assert deltas["old_size"].to_pylist() == [10, 8, None, 0]
    assert deltas["new_size"].to_pylist() == [12, 0, 9, 1]

    # An error session that recorded nothing still loads, as empty tables.
    empty = source.load_session(3)
    assert (empty.snapshots.num_rows, empty.deltas.num_rows) == (0, 0)


def test_an_active_session_is_not_loaded_unless_asked(collector_tables):
    run_sql(collector_tables, COLLECTOR_SESSIONS_SQL)
    run_sql(collector_tables, COLLECTOR_SNAPSHOTS_SQL)
    source = PostgresSessionSource(collector_tables)

    with pytest.raises(SessionNotComplete, match="session 2 is still active"):
        source.load_session(2)

    recording = source.load_session(2, allow_incomplete=True)
    assert recording.info.ended_at is None
    assert recording.snapshots["market_ticker"].to_pylist() == ["KXNBA-26JAN-C"]


def test_an_unknown_session_raises_key_error_naming_it(collector_tables):
    store(collector_tables, small_session(1))

    with pytest.raises(KeyError, match="session 42"):
        PostgresSessionSource(collector_tables).load_session(42)


@pytest.mark.parametrize(
    ("column", "stored"),
    [
        ("yes_bids", '{"abc": 5}'),
        ("no_bids", "[1, 2]"),
        ("no_asks", '{"45": "x"}'),
        ("yes_asks", '{"45": 2.5}'),
    ],
)
def test_a_malformed_price_map_marks_its_row_and_spares_the_rest(collector_tables, column, stored):
    run_sql(collector_tables, COLLECTOR_SESSIONS_SQL)
    run_sql(collector_tables, COLLECTOR_SNAPSHOTS_SQL)
    run_sql(
        collector_tables,
        f"UPDATE rl_orderbook_snapshots SET {column} = %s::jsonb WHERE id = 3",
        (stored,),
    )

    snaps = PostgresSessionSource(collector_tables).load_session(1).snapshots

    errors = snaps["map_error"].to_pylist()
    assert errors[0] is None and errors[2] is None
    assert errors[1].startswith(f"{column}: ")
    # Only the map that failed is null; the row's other maps are decoded.
    assert snaps[column][1].as_py() is None
    others = [name for name in ("yes_bids", "no_bids", "yes_asks", "no_asks") if name != column]
    assert all(snaps[name][1].as_py() is not None for name in others)
    # The market's other rows and the other market are decoded as usual.
    assert snaps["yes_bids"].to_pylist()[0::2] == [[(44, 3), (45, 10)], [(46, 4)]]


def test_small_batches_give_the_same_tables(collector_tables):
    session = small_session(1, config=SimulatorConfig(markets=8))
    store(collector_tables, session)
    # Enough rows that batches of 7 take several server-side cursor fetches per table.
    assert session.snapshots.num_rows > 7 and session.deltas.num_rows > 7

    default = PostgresSessionSource(collector_tables).load_session(1)
    batched = PostgresSessionSource(collector_tables, batch_rows=7).load_session(1)

    assert batched.snapshots.equals(default.snapshots)
    assert batched.deltas.equals(default.deltas)
    assert_same_rows_except_id(batched, session)


def test_the_url_is_never_shown(collector_tables):
    store(collector_tables, small_session(1))
    # Trust auth ignores the password, but it must still never leak.
    url = collector_tables.replace("postgres@", "postgres:hunter2-secret@")
    source = PostgresSessionSource(url)
    assert source.list_sessions()  # the URL does work

    with pytest.raises(KeyError) as missing:
        source.load_session(42)

    for shown in (repr(source), str(source), str(missing.value)):
        assert "hunter2-secret" not in shown
        assert url not in shown
        assert collector_tables.rsplit("/", 1)[1] not in shown  # not even the database


def test_an_error_session_is_complete_once_it_has_an_end_and_json_null_is_an_empty_side(
    collector_tables,
):
    run_sql(
        collector_tables,
        "INSERT INTO rl_orderbook_sessions (market_tickers, status, environment) "
        "VALUES (ARRAY['KXFED-26JAN-A'], 'error', 'production')",
    )
    run_sql(
        collector_tables,
        "INSERT INTO rl_orderbook_snapshots (session_id, market_ticker, timestamp_ms, "
        "sequence_number, yes_bids, no_bids, yes_asks, no_asks) VALUES "
        "(1, 'KXFED-26JAN-A', 1767621600000, 1, '{\"45\": 3}', 'null', 'null', NULL)",
    )
    source = PostgresSessionSource(collector_tables)

    # With no end time its collector may still resume it: not complete (only closed, or
    # an end time, is).
    (info,) = source.list_sessions()
    assert info.status == "error" and info.ended_at is None and not info.is_complete
    with pytest.raises(SessionNotComplete, match="session 1 is still error"):
        source.load_session(1)
    run_sql(collector_tables, "UPDATE rl_orderbook_sessions SET ended_at = now()")
    assert source.list_sessions()[0].is_complete

    snaps = source.load_session(1).snapshots
    assert snaps["map_error"].to_pylist() == [None]
    assert snaps["yes_bids"].to_pylist() == [[(45, 3)]]
    assert snaps["no_bids"].to_pylist() == [[]]
    assert snaps["no_asks"].to_pylist() == [[]]


def test_an_opened_session_streams_into_the_store_a_batch_at_a_time(collector_tables, tmp_path):
    """A session read a batch at a time goes into the Parquet store without being held
    whole: the stored copy is the loaded session, byte for byte."""
    session = small_session(1, config=SimulatorConfig(markets=8))
    store(collector_tables, session)
    source = PostgresSessionSource(collector_tables, batch_rows=7)
    loaded = source.load_session(1)

    with source.open_session(1) as opened:
        sizes = [len(batch) for batch in opened.batches("deltas")]
        narrow = [
            batch.num_columns for batch in opened.batches("snapshots", ["id", "market_ticker"])
        ]
        streamed = ParquetSessionStore(tmp_path / "streamed")
        streamed.write_session(opened)
    whole = ParquetSessionStore(tmp_path / "whole")
    whole.write_session(loaded)

    assert max(sizes) == 7 and sum(sizes) == loaded.deltas.num_rows
    assert set(narrow) == {2}
    for name in ("metadata.json", "snapshots.parquet", "deltas.parquet"):
        written = (tmp_path / "streamed" / "session-1" / name).read_bytes()
        assert written == (tmp_path / "whole" / "session-1" / name).read_bytes(), name
