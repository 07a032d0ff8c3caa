"""A delta whose action is not one the collector writes is a counted repair, never applied.

The collector writes ``add``, ``remove`` or ``update`` (its CHECK constraint); a database
without that constraint can hold any word, another case or none. Such a delta is dropped
as ``unknown_action``, named by session, market, sequence number and row id: not applied
as an update, nor as a removal. Through a real Parquet store (the ingest's path) and
through the collector's PostgreSQL database with its CHECK constraint dropped.
"""

from __future__ import annotations

from contextlib import closing

import psycopg2
import pytest

from kalshi_pipeline.market.books import reconstruct_books
from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline.market.views import SessionViews
from kalshi_pipeline.sources import PostgresSessionSource
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline_tests.factories import delta, snapshot
from kalshi_pipeline_tests.market.test_cleaning import (
    assert_good_market_unaffected,
    assert_names,
    beside_good,
    example,
)
from kalshi_pipeline_tests.market.test_malformed_values import with_delta_value

MKT_B = (
    snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}),
    delta("MKT-B", seq=7, side="yes", price=30, new_size=9, action="update"),
)


@pytest.mark.parametrize("action", ["explode", "REMOVE", "Update", " add", "", None])
def test_a_delta_with_an_unknown_action_is_dropped_through_a_parquet_store(action, tmp_path):
    session = with_delta_value(beside_good(*MKT_B), 7, "action", action)
    (row_id,) = [row["id"] for row in session.deltas.to_pylist() if row["sequence_number"] == 7]
    store = ParquetSessionStore(tmp_path / "store")
    store.write_session(session)

    with (
        store.open_session(1) as stored,
        SessionViews.streamed(stored, scratch=tmp_path) as builder,
    ):
        for _ in builder.batches():
            pass
    books = reconstruct_books(store.load_session(1))

    for report in (builder.report, books.report):
        assert report.repairs[RepairKind.UNKNOWN_ACTION] == 1
        issue = example(report, RepairKind.UNKNOWN_ACTION)
        assert_names(issue, "MKT-B", 7)
        assert f"row id {row_id}" in str(issue)
        assert "an action other than add/remove/update" in str(issue)
        assert RepairKind.UNKNOWN_ACTION.is_defect
    b = books.market_rows("MKT-B")
    assert books.sequence_number[b].tolist() == [2]  # not applied: the snapshot's book only
    assert books.best_yes_bid_size[b].tolist() == [2]
    assert_good_market_unaffected(*MKT_B)


def test_a_delta_with_an_unknown_action_in_the_collectors_database_is_dropped(
    collector_tables,
):
    """Three deltas of the collector's database rewritten with actions its constraints
    forbid (another word, another case, none): each is counted and named, and the books
    are those of the session without them (the same rows deleted), not with them
    applied."""
    raw = simulate_session(3, 0, SimulatorConfig(markets=6))
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, raw)
        with conn.cursor() as cur:
            cur.execute(
                "ALTER TABLE rl_orderbook_deltas DROP CONSTRAINT rl_orderbook_deltas_action_check, "
                "ALTER COLUMN action DROP NOT NULL"
            )
            cur.execute("SELECT id FROM rl_orderbook_deltas WHERE new_size > 0 ORDER BY id")
            bad = [row[0] for row in cur.fetchall()[10:13]]
            for row_id, action in zip(bad, ["explode", "REMOVE", None], strict=True):
                cur.execute(
                    "UPDATE rl_orderbook_deltas SET action = %s WHERE id = %s", (action, row_id)
                )
        conn.commit()
        source = PostgresSessionSource(collector_tables)
        books = reconstruct_books(source.load_session(3))
        with conn.cursor() as cur:
            cur.execute("DELETE FROM rl_orderbook_deltas WHERE id = ANY(%s)", (bad,))
        conn.commit()
        without = reconstruct_books(source.load_session(3))

    assert books.report.repairs[RepairKind.UNKNOWN_ACTION] == 3
    named = " ".join(
        str(issue) for issue in books.report.examples if issue.kind == RepairKind.UNKNOWN_ACTION
    )
    assert all(f"row id {row_id}" in named for row_id in bad)
    for name, values in without.columns().items():
        assert values.tolist() == books.columns()[name].tolist(), name
