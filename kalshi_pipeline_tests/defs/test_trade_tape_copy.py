"""raw_sessions' copy keeps the trade tape, from either source, and counts it."""

from __future__ import annotations

from contextlib import closing

import dagster as dg
import psycopg2
import pytest

from kalshi_pipeline.defs.partitions import sessions
from kalshi_pipeline.defs.resources import PipelineResource
from kalshi_pipeline.paths import COLLECTOR_URL_ENV
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline_tests.defs.conftest import metadata, store_at
from kalshi_pipeline_tests.sources.trade_rows import book_session, taped_session


def copy_raw_session(definitions, instance, key: str) -> dg.ExecuteInProcessResult:
    instance.add_dynamic_partitions(sessions.name, [key])
    return dg.materialize(
        definitions.assets,
        selection=["raw_sessions"],
        partition_key=key,
        instance=instance,
        resources=definitions.resources,
    )


@pytest.mark.parametrize("source", ["local parquet", "collector postgres"])
def test_the_raw_copy_keeps_the_trade_tape(
    source, pipeline_home, instance, definitions, request, monkeypatch
):
    session = taped_session(7)
    if source == "local parquet":
        store_at(pipeline_home).write_session(session)
    else:
        collector_tables = request.getfixturevalue("collector_tables")
        with closing(psycopg2.connect(collector_tables)) as conn:
            write_collector_session(conn, session)
        monkeypatch.setenv(COLLECTOR_URL_ENV, collector_tables)

    result = copy_raw_session(definitions, instance, "7")

    copy = PipelineResource().raw_store(7).load_session(7)
    keep = ["trade_id", "yes_price", "no_price", "count", "taker_side", "exchange_ts_ms",
            "timestamp_ms", "sequence_number"]  # fmt: skip
    assert copy.trades.select(keep).equals(session.trades.select(keep))
    raw = metadata(result, "raw_sessions")
    assert raw["source"] == source and raw["trades"] == session.trades.num_rows
    assert raw["source_fingerprint"]["trades"]["rows"] == session.trades.num_rows


def test_a_session_without_a_tape_is_copied_without_one(pipeline_home, instance, definitions):
    store_at(pipeline_home).write_session(book_session(8))

    result = copy_raw_session(definitions, instance, "8")

    assert PipelineResource().raw_store(8).load_session(8).trades is None
    raw = metadata(result, "raw_sessions")
    assert "trades" not in raw and "trades" not in raw["source_fingerprint"]
