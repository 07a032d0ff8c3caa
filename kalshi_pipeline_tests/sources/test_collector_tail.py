"""Following a session while it is written live: ``write_live_session`` commits one receive
millisecond at a time and ``CollectorTail`` reads what was committed after a cursor, on a
real server (``collector_tables`` in conftest.py).

What a reader must be able to rely on: everything it reads, put together, is the session
as a whole load reads it; no read splits a millisecond; a lost connection loses and
doubles nothing.
"""

from __future__ import annotations

import dataclasses
import threading
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import timedelta

import numpy as np
import psycopg2
import pyarrow as pa
import pytest

from kalshi_pipeline.sources import PostgresSessionSource, RawSession, SourceUnavailable
from kalshi_pipeline.sources.collector_connection import ConnectionSettings
from kalshi_pipeline.sources.collector_tail import CollectorTail, Cursor, NewRows, SessionNotFound
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.live_writer import millisecond_batches, write_live_session
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot, trade, with_tape

SMALL = SimulatorConfig(markets=3)
AT_ONCE = 1e9  # a speed at which no millisecond waits for the next


def small_session(session_id: int = 1) -> RawSession:
    return simulate_session(session_id, seed=3, config=SMALL)


def joined(reads: list[NewRows], table: str) -> pa.Table:
    return pa.concat_tables([getattr(found, table) for found in reads]).combine_chunks()


def assert_reads_make_the_session(reads: list[NewRows], url: str, session_id: int) -> None:
    """Put together, the reads are the session as loaded after its close, row for row."""
    loaded = PostgresSessionSource(url).load_session(session_id)
    for table in ("snapshots", "deltas", "trades"):
        assert joined(reads, table).equals(getattr(loaded, table)), table


def milliseconds(found: NewRows) -> np.ndarray:
    tables = [found.snapshots, found.deltas, found.trades]
    return np.concatenate([t["timestamp_ms"].to_numpy() for t in tables])


def assert_whole_milliseconds(reads: list[NewRows]) -> None:
    """No millisecond is continued in the next read: each read ends before the next begins."""
    spans = [(ms.min(), ms.max()) for ms in map(milliseconds, reads) if len(ms)]
    for (_, last), (first, _) in zip(spans, spans[1:], strict=False):
        assert last < first


def test_what_a_reader_follows_while_a_session_is_written_is_the_whole_session(
    collector_tables,
):
    session = small_session()
    reads: list[NewRows] = []

    def follow() -> None:
        cursor = Cursor()
        with CollectorTail(collector_tables) as tail:
            while (live := tail.live_session()) is None:
                pass
            while True:
                found = tail.read(live.session_id, cursor)
                reads.append(found)
                cursor = found.cursor
                if found.info.is_complete:
                    return

    reader = threading.Thread(target=follow)
    reader.start()
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_live_session(conn, session, speed=50_000)
    reader.join(timeout=60)

    assert not reader.is_alive()
    assert reads[-1].info == session.info  # closed, with its end and counters
    assert_reads_make_the_session(reads, collector_tables, 1)
    assert_whole_milliseconds(reads)


def test_each_commit_is_read_whole_the_moment_it_is_made(collector_tables):
    """A read right after each commit finds that millisecond's rows, all of them, and the
    session still active; the live session is the newest active one, crashed ones aside."""
    session = small_session(2)
    crashed = dataclasses.replace(
        small_session(1).info, status="active", ended_at=None, last_message_at=None
    )
    reads, live = [], []
    with (
        closing(psycopg2.connect(collector_tables)) as conn,
        CollectorTail(collector_tables) as tail,
    ):
        assert tail.live_session() is None
        write_collector_session(conn, dataclasses.replace(small_session(1), info=crashed))

        def read_now(ms: int, wall_time: float) -> None:
            live.append(tail.live_session())
            reads.append(tail.read(2, reads[-1].cursor if reads else Cursor()))
            assert set(milliseconds(reads[-1])) == {ms}

        write_live_session(conn, session, AT_ONCE, on_commit=read_now)
        after_close = tail.live_session()
        final = tail.read(2, reads[-1].cursor)

    assert len(reads) == len(millisecond_batches(session))
    assert {found.info.status for found in reads} == {"active"}
    assert all(info is not None and info.session_id == 2 for info in live)
    assert after_close == crashed  # the newest active session now
    assert len(final) == 0 and final.info == session.info and final.cursor == reads[-1].cursor
    assert_reads_make_the_session(reads, collector_tables, 2)


def test_a_lost_connection_raises_and_the_next_read_goes_on_from_the_cursor(collector_tables):
    name = f"kp-tail-{uuid.uuid4().hex[:8]}"
    tail = CollectorTail(collector_tables, settings=ConnectionSettings(application_name=name))
    reads, failures, commits = [], [], []

    def read_with_a_kill(ms: int, wall_time: float) -> None:
        commits.append(ms)
        cursor = reads[-1].cursor if reads else Cursor()
        if len(commits) % 50 == 0:  # now and then the server ends the reader's connection
            with closing(psycopg2.connect(collector_tables)) as admin, admin.cursor() as cur:
                cur.execute(
                    "SELECT pg_terminate_backend(pid, 10000) FROM pg_stat_activity "
                    "WHERE application_name = %s",
                    (name,),
                )
                assert cur.fetchone() == (True,)
            with pytest.raises(SourceUnavailable) as raised:
                tail.read(1, cursor)
            failures.append(str(raised.value))
        reads.append(tail.read(1, cursor))

    with tail, closing(psycopg2.connect(collector_tables)) as conn:
        write_live_session(conn, small_session(), AT_ONCE, on_commit=read_with_a_kill)

    assert len(failures) == len(commits) // 50 > 0
    assert all("connection failed or lost while reading session 1 after" in f for f in failures)
    assert_reads_make_the_session(reads, collector_tables, 1)


def test_a_read_is_one_snapshot_whatever_commits_while_it_runs(collector_tables):
    """A read held up (a lock on the deltas) while the writer commits a trade and closes
    the session sees both or neither, never one without the other (a read that took the
    session row before the wait and the trades after it would see the trade of a session
    still active); the next read sees the rest, and the two together hold the trade once."""
    active = dataclasses.replace(small_session().info, status="active", ended_at=None)
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, dataclasses.replace(small_session(), info=active))
    name = f"kp-tail-{uuid.uuid4().hex[:8]}"
    tail = CollectorTail(collector_tables, settings=ConnectionSettings(application_name=name))
    with (
        tail,
        ThreadPoolExecutor(1) as pool,
        closing(psycopg2.connect(collector_tables)) as locker,
        closing(psycopg2.connect(collector_tables)) as writer,
    ):
        with locker.cursor() as cur:
            cur.execute("LOCK TABLE rl_orderbook_deltas IN ACCESS EXCLUSIVE MODE")
        reading = pool.submit(tail.read, 1)
        wait_until_blocked(writer, name)
        with writer.cursor() as cur:
            cur.execute(LATE_TRADE)
            cur.execute("UPDATE rl_orderbook_sessions SET status = 'closed' WHERE session_id = 1")
        writer.commit()
        locker.commit()
        held_up = reading.result(timeout=60)
        after = tail.read(1, held_up.cursor)

    saw_the_trade = "late" in held_up.trades["trade_id"].to_pylist()
    assert saw_the_trade == (held_up.info.status == "closed")
    assert after.info.status == "closed"
    trades = held_up.trades["trade_id"].to_pylist() + after.trades["trade_id"].to_pylist()
    assert trades.count("late") == 1
    assert len(trades) == small_session().trades.num_rows + 1
    assert len(after) == (0 if saw_the_trade else 1)


LATE_TRADE = (
    "INSERT INTO rl_orderbook_trades (session_id, trade_id, market_ticker, yes_price, "
    "no_price, count, taker_side, ts, timestamp_ms) SELECT session_id, 'late', market_ticker, "
    "yes_price, no_price, count, taker_side, ts, timestamp_ms + 1 FROM rl_orderbook_trades "
    "WHERE session_id = 1 ORDER BY id DESC LIMIT 1"
)


def wait_until_blocked(conn, application_name: str) -> None:
    """Until the connection named ``application_name`` waits on a lock."""
    with conn.cursor() as cur:
        while True:
            cur.execute(
                "SELECT count(*) FROM pg_stat_activity "
                "WHERE application_name = %s AND wait_event_type = 'Lock'",
                (application_name,),
            )
            blocked = cur.fetchone()[0]
            conn.rollback()  # each look a new snapshot of pg_stat_activity
            if blocked:
                return


def test_each_millisecond_is_written_in_one_transaction_of_its_own(collector_tables):
    at = {"ts": T0_MS + 1000}  # a whole second: a trade's exchange time must be one
    session = with_tape(
        make_session(
            snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}, **at),
            snapshot("MKT-B", seq=2, yes_bids={30: 10}, no_bids={65: 7}, **at),
            delta("MKT-A", seq=3, side="yes", price=41, new_size=3, **at),
            delta("MKT-B", seq=5, side="no", price=66, new_size=2, ts=T0_MS + 1001),
            snapshot("MKT-A", seq=6, yes_bids={40: 10}, no_bids={55: 7}, ts=T0_MS + 1002),
            delta("MKT-A", seq=7, side="yes", price=42, new_size=3, ts=T0_MS + 1002),
        ),
        trade("MKT-A", "t-1", 40, 5, "no", seq=4, **at),
        trade("MKT-B", "t-2", 35, 1, "yes", seq=6, ts=T0_MS + 1001),
    )
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_live_session(conn, session, AT_ONCE)
        with conn.cursor() as cur:
            cur.execute(
                "SELECT timestamp_ms, xmin::text FROM rl_orderbook_snapshots UNION ALL "
                "SELECT timestamp_ms, xmin::text FROM rl_orderbook_deltas UNION ALL "
                "SELECT timestamp_ms, xmin::text FROM rl_orderbook_trades"
            )
            rows = cur.fetchall()

    transactions = {ms: {xid for m, xid in rows if m == ms} for ms, _ in rows}
    assert all(len(xids) == 1 for xids in transactions.values())
    assert len({xid for _, xid in rows}) == len(transactions) == len(millisecond_batches(session))


def test_a_read_with_a_limit_ends_at_a_millisecond_boundary(collector_tables):
    session = small_session()
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, session)
    reads, cursor = [], Cursor()
    with CollectorTail(collector_tables) as tail:
        # The first millisecond holds three snapshots: read whole, whatever the limit.
        while len(found := tail.read(1, cursor, limit=2)):
            reads.append(found)
            cursor = found.cursor

    assert reads[0].snapshots.num_rows == 3
    # The first read doubled its limit to hold that millisecond; the others keep to it.
    assert max(found.deltas.num_rows for found in reads[1:]) == 2
    assert_reads_make_the_session(reads, collector_tables, 1)
    assert_whole_milliseconds(reads)


def test_pacing_waits_each_millisecond_s_offset_divided_by_the_speed(collector_tables):
    """With a clock that only sleeping moves, the writer sleeps until each millisecond's
    time: in all, the session's span divided by the speed."""
    session, now, commits = small_session(), [0.0], []
    speed = 1000.0

    def sleep(seconds: float) -> None:
        assert seconds > 0
        now[0] += seconds

    with closing(psycopg2.connect(collector_tables)) as conn:
        write_live_session(
            conn, session, speed, on_commit=lambda ms, _: commits.append((ms, now[0])),
            sleep=sleep, clock=lambda: now[0],
        )  # fmt: skip

    first = commits[0][0]
    assert [ms for ms, _ in commits] == sorted({ms for ms, _ in commits})
    assert [at for _, at in commits] == pytest.approx(
        [(ms - first) / 1000 / speed for ms, _ in commits]
    )
    assert [ms for ms, _ in commits] == millisecond_batches(session).milliseconds.tolist()


def test_rows_without_a_usable_receive_time_are_written_with_the_row_before_them(
    collector_tables,
):
    """NULL, earlier than the row before, after the session's end: each row is still
    written, in its table's order, in the millisecond of the row before it."""
    with closing(psycopg2.connect(collector_tables)) as conn, conn.cursor() as cur:
        cur.execute(
            "ALTER TABLE rl_orderbook_deltas ALTER COLUMN timestamp_ms DROP NOT NULL, "
            "DROP CONSTRAINT rl_orderbook_deltas_timestamp_ms_check"
        )
        conn.commit()
    late = T0_MS + int(timedelta(hours=2).total_seconds() * 1000)  # after ended_at
    session = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=3),  # its time made NULL below
        delta("MKT-A", seq=3, side="yes", price=42, new_size=3, ts=T0_MS + 9),
        delta("MKT-A", seq=4, side="no", price=50, new_size=1, ts=T0_MS + 5),
        delta("MKT-A", seq=5, side="no", price=51, new_size=1, ts=late),
        delta("MKT-A", seq=6, side="no", price=52, new_size=1, ts=T0_MS + 12),
    )
    times = pa.array([None, T0_MS + 9, T0_MS + 5, late, T0_MS + 12], pa.int64())
    deltas = session.deltas.set_column(3, "timestamp_ms", times)
    session = dataclasses.replace(session, deltas=deltas)
    commits = []
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_live_session(conn, session, AT_ONCE, on_commit=lambda ms, _: commits.append(ms))

    loaded = PostgresSessionSource(collector_tables).load_session(1)
    assert loaded.deltas.equals(session.deltas)
    assert loaded.snapshots.equals(session.snapshots)
    assert commits == [T0_MS + 1, T0_MS + 9, T0_MS + 12]


def test_a_missing_session_is_named_and_no_trades_table_reads_as_no_tape(collector_tables):
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, small_session())
        with conn.cursor() as cur:
            cur.execute("DROP TABLE rl_orderbook_trades")
        conn.commit()

    with CollectorTail(collector_tables) as tail:
        with pytest.raises(SessionNotFound, match="session 7 is not in rl_orderbook_sessions"):
            tail.session(7)
        with pytest.raises(SessionNotFound, match="session 7 is not in rl_orderbook_sessions"):
            tail.read(7)
        found = tail.read(1)

    assert found.trades is None and found.cursor.trades == 0
    assert found.deltas.num_rows == small_session().deltas.num_rows


def test_a_cursor_round_trips_through_json():
    cursor = Cursor(snapshots=4, deltas=359, trades=26)
    assert Cursor.from_json(cursor.to_json()) == cursor
    assert Cursor.from_json({}) == Cursor()
