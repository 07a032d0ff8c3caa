"""A session that changes after it was read, an unknown status, and which tables a URL reads.

On the real server: a collector resumes a closed session (it goes back to ``active``,
gains rows and a market, closes again), and the session's fingerprint tells the version
read earlier from the new one; a status word the collector's table does not allow is
never taken for complete; and a URL whose options pick another schema is another source.
"""

from __future__ import annotations

from contextlib import closing
from urllib.parse import quote

import psycopg2
import pytest

from kalshi_pipeline.sources import (
    ParquetSessionStore,
    PostgresSessionSource,
    SessionNotComplete,
)
from kalshi_pipeline.sources.collector_writer import collector_ddl, write_collector_session
from kalshi_pipeline.sources.fingerprint import SessionFingerprint, TableExtent
from kalshi_pipeline.sources.raw import TABLES
from kalshi_pipeline.sources.redaction import describe_url
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session

SMALL = SimulatorConfig(markets=4)


def run_sql(url: str, *statements: str) -> None:
    with closing(psycopg2.connect(url)) as conn:
        with conn.cursor() as cur:
            for statement in statements:
                cur.execute(statement)
        conn.commit()


def resume(url: str, session_id: int, ticker: str) -> None:
    """What a collector that resumes a closed session does: active again, with a new
    market and its first snapshot (``close`` then ends it later)."""
    run_sql(
        url,
        f"UPDATE rl_orderbook_sessions SET status = 'active', ended_at = NULL, "
        f"market_tickers = array_append(market_tickers, '{ticker}') "
        f"WHERE session_id = {session_id}",
        "INSERT INTO rl_orderbook_snapshots (session_id, market_ticker, timestamp_ms, "
        "sequence_number, yes_bids, no_bids, yes_asks, no_asks) "
        f"SELECT {session_id}, '{ticker}', max(timestamp_ms) + 1000, max(sequence_number) + 1, "
        "'{\"40\": 5}', '{\"58\": 7}', '{}', '{}' FROM rl_orderbook_snapshots "
        f"WHERE session_id = {session_id}",
    )


def close(url: str, session_id: int) -> None:
    run_sql(
        url,
        "UPDATE rl_orderbook_sessions SET status = 'closed', ended_at = now() "
        f"WHERE session_id = {session_id}",
    )


def fingerprint_of(session) -> SessionFingerprint:
    """The fingerprint of a session's rows, counted row by row: what the sources' quick
    ways (one query, the footers) must give."""
    extents = {}
    for table in TABLES:
        ids = [i for batch in session.batches(table, ["id"]) for i in batch.column(0).to_pylist()]
        extents[table] = TableExtent(rows=len(ids), last_id=max(ids, default=None))
    if session.trades is not None:  # a trade tape, empty or not, is measured too
        ids = session.trades["id"].to_pylist()
        extents["trades"] = TableExtent(rows=len(ids), last_id=max(ids, default=None))
    return SessionFingerprint.of(session.info, extents)


def test_a_resumed_session_changes_its_fingerprint_and_the_change_is_named(
    collector_tables, tmp_path
):
    with closing(psycopg2.connect(collector_tables)) as conn:
        for session_id in (1, 2):
            write_collector_session(conn, simulate_session(session_id, 3, SMALL))
    source = PostgresSessionSource(collector_tables)
    before = source.fingerprints([1, 2, 99])
    assert sorted(before) == [1, 2]  # 99 is not listed: no fingerprint

    # What an ingest records (the fingerprint of the copy it wrote) is what the source
    # gives for the same rows, and what the copy's store gives.
    copy = ParquetSessionStore(tmp_path / "copy")
    with source.open_session(1) as opened:
        copy.write_session(opened)
    with copy.open_session(1) as stored:
        assert fingerprint_of(stored) == before[1]
    assert copy.fingerprints([1]) == {1: before[1]}

    resume(collector_tables, 1, "KXNEW-26JAN")
    recording = source.fingerprints([1, 2])
    assert recording[2] == before[2]  # the other session did not change
    assert recording[1].status == "active" and recording[1].ended_at is None
    assert not source.list_sessions()[0].is_complete

    close(collector_tables, 1)
    after = source.fingerprints([1])[1]
    assert after != before[1] and after.token != before[1].token
    change = after.changes_since(before[1])
    assert "ended_at" in change and "snapshots" in change and "deltas" not in change
    assert after.snapshots.rows == before[1].snapshots.rows + 1
    assert after.snapshots.last_id > before[1].snapshots.last_id
    with source.open_session(1) as opened:
        assert fingerprint_of(opened) == after
        assert "KXNEW-26JAN" in opened.info.market_tickers


def test_deleted_rows_change_the_fingerprint(collector_tables):
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, simulate_session(1, 3, SMALL))
    source = PostgresSessionSource(collector_tables)
    before = source.fingerprints([1])[1]
    run_sql(collector_tables, "DELETE FROM rl_orderbook_deltas WHERE id = 2")
    after = source.fingerprints([1])[1]
    assert after.deltas.rows == before.deltas.rows - 1 and after.token != before.token


@pytest.mark.parametrize("word", ["ACTIVE", "Closed", "paused"])
def test_an_unknown_status_is_listed_never_complete_and_named(collector_tables, word):
    """A collector database without the table's CHECK can hold any status word: that
    session is never complete (not even with an end time), its word is named, and the
    other sessions are listed as before."""
    run_sql(
        collector_tables,
        "ALTER TABLE rl_orderbook_sessions DROP CONSTRAINT rl_orderbook_sessions_status_check",
    )
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, simulate_session(1, 3, SMALL))
        write_collector_session(conn, simulate_session(2, 3, SMALL))
    run_sql(
        collector_tables, f"UPDATE rl_orderbook_sessions SET status = '{word}' WHERE session_id = 2"
    )
    source = PostgresSessionSource(collector_tables)

    listed = source.list_sessions()
    assert [(i.session_id, i.is_complete) for i in listed] == [(1, True), (2, False)]
    assert listed[1].ended_at is not None  # an end time does not make it complete
    assert f"unknown status {word!r}" in listed[1].incomplete_reason
    with pytest.raises(SessionNotComplete, match=f"session 2 is of unknown status '{word}'"):
        source.load_session(2)
    assert source.fingerprints([2])[2].status == word


def test_a_url_whose_options_pick_another_schema_is_another_source(collector_db):
    """Two sets of collector tables in one database, chosen by the URL's search_path:
    their identities differ, the default schema's is host:port/database as before, and
    no identity holds the password."""
    run_sql(collector_db, collector_ddl(), "CREATE SCHEMA other")
    run_sql(collector_db, "SET search_path TO other; " + collector_ddl())
    with_password = collector_db.replace("postgres@", "postgres:hunter2-secret@", 1)
    other = f"{with_password}?options={quote('-c search_path=other')}"
    also_other = f"{collector_db}?options={quote('-csearch_path=other,public')}"

    public = PostgresSessionSource(collector_db).identity()
    assert public == describe_url(collector_db)
    chosen = PostgresSessionSource(other).identity()
    assert chosen == f"{describe_url(collector_db)} schema other"
    assert PostgresSessionSource(also_other).identity() == chosen
    assert "hunter2" not in chosen

    # Tables that exist only in part: each is named with where it resolved.
    run_sql(collector_db, "DROP TABLE other.rl_orderbook_deltas")
    broken = PostgresSessionSource(also_other).identity()
    assert "other.rl_orderbook_sessions" in broken and "public.rl_orderbook_deltas" in broken


def test_a_session_counter_that_is_not_a_whole_number_lists_as_zero(collector_tables):
    """The session's counters are shown, never used: in a database with looser column
    types, a NaN, a fraction or a huge one does not fail the listing of every session."""
    run_sql(
        collector_tables,
        "ALTER TABLE rl_orderbook_sessions ALTER COLUMN messages_received TYPE NUMERIC, "
        "ALTER COLUMN snapshots_count TYPE NUMERIC, ALTER COLUMN deltas_count TYPE NUMERIC",
    )
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, simulate_session(1, 3, SMALL))
    run_sql(
        collector_tables,
        "UPDATE rl_orderbook_sessions SET messages_received = 'NaN', snapshots_count = 2.5, "
        "deltas_count = 1e400",
    )
    [info] = PostgresSessionSource(collector_tables).list_sessions()
    assert (info.messages_received, info.snapshots_count) == (0, 0)
    assert info.deltas_count == 2**63 - 1 and info.is_complete
