"""Views with no real time in them do not pass: data quality counts the times replaced.

Times in seconds instead of milliseconds, the rows of another session under this one's
id, or a session whose ``started_at`` is after its ``ended_at``: every event falls outside
the recorded window and has its time replaced by the session's start. Such a view keeps
its books but no real time; its data quality is 0 (not the 0.5 that ``T / (T + T)``
gave), the ``min_data_quality`` filter excludes it, and the session's report says its
window contradicts its events (which fails the ``data_quality`` check, see
``defs/test_checks.py``). Built the way the ingest builds them: from a real Parquet store,
streamed; and from the collector's PostgreSQL database.
"""

from __future__ import annotations

import dataclasses
from contextlib import closing
from datetime import timedelta

import psycopg2
import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline.market.difficulty import FilterConfig, score_views
from kalshi_pipeline.market.views import SessionViews, build_market_views
from kalshi_pipeline.sources import PostgresSessionSource
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session

SIM = SimulatorConfig(population=Population.TWO_CLASS, markets=6)


def in_seconds(raw: RawSession, ticker: str | None = None) -> RawSession:
    """``raw`` with the receive times of ``ticker``'s rows (all rows if None) in seconds."""

    def divided(table: pa.Table) -> pa.Table:
        ts = table.column("timestamp_ms")
        if ticker is None:
            chosen = pa.repeat(True, table.num_rows)
        else:
            chosen = pc.equal(table.column("market_ticker"), ticker)
        ts = pc.if_else(chosen, pc.divide(ts, 1000), ts)
        return table.set_column(table.schema.get_field_index("timestamp_ms"), "timestamp_ms", ts)

    return dataclasses.replace(raw, snapshots=divided(raw.snapshots), deltas=divided(raw.deltas))


def another_sessions_rows(raw: RawSession) -> RawSession:
    """Session 5's rows (recorded four days later) stored under ``raw``'s id."""
    other = simulate_session(5, 0, SIM)

    def relabelled(table: pa.Table) -> pa.Table:
        ids = pa.repeat(pa.scalar(raw.session_id, pa.int64()), table.num_rows)
        return table.set_column(table.schema.get_field_index("session_id"), "session_id", ids)

    info = dataclasses.replace(raw.info, market_tickers=other.info.market_tickers)
    return RawSession(info, relabelled(other.snapshots), relabelled(other.deltas))


def started_after_it_ended(raw: RawSession) -> RawSession:
    start, end = raw.info.started_at, raw.info.ended_at
    return dataclasses.replace(
        raw, info=dataclasses.replace(raw.info, started_at=end, ended_at=start)
    )


CONTRADICTIONS = {
    "times in seconds": in_seconds,
    "another session's rows": another_sessions_rows,
    "started_at after ended_at": started_after_it_ended,
}


def streamed_views(raw: RawSession, tmp_path):
    """The views and report of ``raw`` stored in a real Parquet store and built as the
    ``market_views`` asset builds them."""
    store = ParquetSessionStore(tmp_path / "store")
    store.write_session(raw)
    with (
        store.open_session(raw.session_id) as stored,
        SessionViews.streamed(stored, scratch=tmp_path) as builder,
    ):
        views = [view for batch in builder.batches() for view in batch]
    return views, builder.report


@pytest.mark.parametrize("contradict", CONTRADICTIONS.values(), ids=CONTRADICTIONS.keys())
def test_views_with_no_real_time_fail_the_filter_and_the_session_is_named(contradict, tmp_path):
    views, report = streamed_views(contradict(simulate_session(1, 0, SIM)), tmp_path)

    assert views  # the books are kept, and every view says how little is real
    assert report.repairs[RepairKind.TIMESTAMP_OUT_OF_WINDOW] > 0.9 * report.timed_events
    assert all(v.data_quality_score < 0.1 for v in views), [v.data_quality_score for v in views]
    table = score_views([v.describe() for v in views], FilterConfig())
    assert not any(table.column("passes_filters").to_pylist())
    assert all("poor data quality" in r for r in table.column("exclusion_reasons").to_pylist())
    why = report.window_contradiction()
    assert why is not None
    assert ("started_at" in why) if contradict is started_after_it_ended else ("of its" in why)


def test_one_market_in_seconds_loses_only_its_own_view(tmp_path):
    raw = simulate_session(1, 0, SIM)
    ticker = raw.deltas.column("market_ticker")[0].as_py()
    clean = {v.market_ticker: v.data_quality_score for v in build_market_views(raw)}

    views, report = streamed_views(in_seconds(raw, ticker), tmp_path)

    scores = {v.market_ticker: v.data_quality_score for v in views}
    assert scores.pop(ticker) == 0.0
    # One market's rows replaced: the session's window still holds most events.
    assert report.window_contradiction() is None
    assert scores == {t: q for t, q in clean.items() if t != ticker}


def test_replaced_times_lower_the_score_by_their_share_once():
    """A third of one market's deltas in seconds: its score loses those steps' share,
    once (a replaced time is not counted as a defect as well), and no other view moves."""
    raw = simulate_session(1, 0, SIM)
    ticker = raw.deltas.column("market_ticker")[0].as_py()
    clean = {v.market_ticker: v for v in build_market_views(raw)}
    tickers = raw.deltas.column("market_ticker").to_pylist()
    ts = raw.deltas.column("timestamp_ms").to_pylist()
    mine = [i for i, t in enumerate(tickers) if t == ticker]
    for i in mine[1 : len(mine) // 3 + 1]:
        ts[i] //= 1000
    deltas = raw.deltas.set_column(
        raw.deltas.schema.get_field_index("timestamp_ms"), "timestamp_ms", pa.array(ts, pa.int64())
    )

    views = {
        v.market_ticker: v for v in build_market_views(dataclasses.replace(raw, deltas=deltas))
    }

    view = views[ticker]
    share = (len(mine) // 3) / len(view)  # each replaced time is a step of its own
    assert view.data_quality_score == pytest.approx(clean[ticker].data_quality_score * (1 - share))
    assert all(
        views[t].data_quality_score == v.data_quality_score for t, v in clean.items() if t != ticker
    )


def test_clean_sessions_score_as_before_the_time_factor():
    """The score of clean data is ``T / (T + defects)`` times the arrived share, as it
    was before replaced times counted (clean data has none)."""
    for session_id in (1, 2):
        builder = SessionViews(
            simulate_session(
                session_id, 0, SimulatorConfig(population=Population.TWO_CLASS, markets=12)
            )
        )
        views = [view for batch in builder.batches() for view in batch]
        arrived = 1.0 - builder.report.missing_fraction
        for view in views:
            defects = builder.report.market_defects[view.market_ticker]
            assert view.data_quality_score == len(view) / (len(view) + defects) * arrived


def test_a_collector_session_that_started_after_it_ended_is_named(collector_tables):
    raw = simulate_session(3, 0, SIM)
    with closing(psycopg2.connect(collector_tables)) as conn:
        write_collector_session(conn, raw)
        with conn.cursor() as cur:
            cur.execute(
                "UPDATE rl_orderbook_sessions SET started_at = ended_at + %s WHERE session_id = 3",
                (timedelta(hours=1),),
            )
        conn.commit()

    builder = SessionViews(PostgresSessionSource(collector_tables).load_session(3))
    views = [view for batch in builder.batches() for view in batch]

    assert "is after its ended_at" in builder.report.window_contradiction()
    assert views and all(v.data_quality_score == 0.0 for v in views)
