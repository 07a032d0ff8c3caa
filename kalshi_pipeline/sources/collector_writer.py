"""Writing sessions into the collector's Postgres tables, as the collector would.

For ``kalshi-pipeline generate --postgres`` and for tests: :func:`collector_ddl` creates
the collector's four tables (``collector_schema.sql``, described in
``docs/data-model.md``; the trade tape's too) and :func:`write_collector_session` inserts
one :class:`~kalshi_pipeline.sources.raw.RawSession` into them (:func:`append_collector_rows`
adds rows to a session already there, as a collector that resumed it). Reading them back is
:class:`~kalshi_pipeline.sources.postgres.PostgresSessionSource`'s job. Writing a session
the way the collector records one live, a receive millisecond per commit, is
:mod:`~kalshi_pipeline.sources.live_writer`, with this module's statements.

A trade tape is written in the integer format (``yes_price``, ``no_price``, ``count``; the
decimal-string columns stay NULL), its exchange time as Kalshi's whole seconds (``ts``). A
session without a tape (``trades=None``) writes no trade row; the table need not exist then.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from importlib import resources

import psycopg2.extras
import pyarrow as pa
import pyarrow.csv as pa_csv

from kalshi_pipeline.sources.price_map_text import encode_price_map
from kalshi_pipeline.sources.raw import DELTA_SCHEMA, RawSession, SessionInfo
from kalshi_pipeline.sources.trades import COLLECTOR_TRADES_TABLE


def collector_ddl() -> str:
    """The collector's DDL for its four tables."""
    return resources.files("kalshi_pipeline.sources").joinpath("collector_schema.sql").read_text()


def write_collector_session(conn, session: RawSession) -> None:
    """Insert one raw session into the collector's tables as the collector would.

    Used by ``kalshi-pipeline generate --postgres`` and by tests. The session keeps its
    id (the BIGSERIAL is advanced past it); maps are written as JSONB, trades in the
    integer format. Commits.
    """
    trades = trade_rows(session)  # checked before anything is written
    with conn.cursor() as cur:
        insert_session_row(cur, session.info)
        _insert_rows(cur, session, trades)
    conn.commit()


def append_collector_rows(conn, session: RawSession) -> None:
    """Insert the snapshot, delta and trade rows of ``session`` under its id, whose
    ``rl_orderbook_sessions`` row already exists, as a collector that resumed that session
    would (the row itself is left as it is). Commits."""
    trades = trade_rows(session)
    with conn.cursor() as cur:
        _insert_rows(cur, session, trades)
    conn.commit()


def _insert_rows(cur, session: RawSession, trades: list[tuple]) -> None:
    insert_snapshot_rows(cur, snapshot_rows(session.snapshots))
    copy_deltas(cur, session.deltas)
    insert_trade_rows(cur, trades)


def insert_session_row(cur, info: SessionInfo) -> None:
    """The ``rl_orderbook_sessions`` row of ``info``, under the session's own id."""
    cur.execute(
        "INSERT INTO rl_orderbook_sessions (session_id, market_tickers, started_at, "
        "ended_at, status, websocket_url, environment, connection_metadata, "
        "messages_received, snapshots_count, deltas_count, last_message_at, error_message)"
        " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)",
        (
            info.session_id,
            list(info.market_tickers),
            info.started_at,
            info.ended_at,
            info.status,
            info.websocket_url,
            info.environment,
            psycopg2.extras.Json(dict(info.connection_metadata)),
            info.messages_received,
            info.snapshots_count,
            info.deltas_count,
            info.last_message_at,
            info.error_message,
        ),
    )
    # The id was given, not drawn: move the BIGSERIAL past it, as the collector's next
    # session would find it.
    cur.execute(
        "SELECT setval(pg_get_serial_sequence('rl_orderbook_sessions', 'session_id'), "
        "GREATEST((SELECT MAX(session_id) FROM rl_orderbook_sessions), 1))"
    )


def snapshot_rows(snapshots: pa.Table) -> list[tuple]:
    """The rows :func:`insert_snapshot_rows` writes, one per snapshot in the table's order,
    their price maps as the collector's JSON text."""
    return [
        (
            s["session_id"],
            s["market_ticker"],
            s["timestamp_ms"],
            s["sequence_number"],
            encode_price_map(s["yes_bids"]),
            encode_price_map(s["no_bids"]),
            encode_price_map(s["yes_asks"]),
            encode_price_map(s["no_asks"]),
        )
        for s in snapshots.to_pylist()
    ]


def insert_snapshot_rows(cur, rows: Sequence[tuple]) -> None:
    """Snapshot rows of :func:`snapshot_rows` (any slice of them), in one statement per
    1,000 rows; the price maps become JSONB. Nothing to write: no statement."""
    if not rows:
        return
    psycopg2.extras.execute_values(
        cur,
        "INSERT INTO rl_orderbook_snapshots (session_id, market_ticker, timestamp_ms, "
        "sequence_number, yes_bids, no_bids, yes_asks, no_asks) VALUES %s",
        rows,
        template="(%s,%s,%s,%s,%s::jsonb,%s::jsonb,%s::jsonb,%s::jsonb)",
        page_size=1000,
    )


def copy_deltas(cur, deltas: pa.Table) -> None:
    """The rows of ``deltas`` (a whole table or a slice of one), all but ``id`` (the
    table's BIGSERIAL numbers them), in one COPY. Nothing to write: no statement."""
    if not deltas.num_rows:
        return
    # COPY keeps the storage order (ids follow the table's row order) and is fast.
    delta_columns = DELTA_SCHEMA.names[1:]
    buffer = io.BytesIO()
    pa_csv.write_csv(
        deltas.select(delta_columns),
        buffer,
        pa_csv.WriteOptions(include_header=False),
    )
    buffer.seek(0)
    cur.copy_expert(
        f"COPY rl_orderbook_deltas ({', '.join(delta_columns)}) FROM STDIN WITH (FORMAT csv)",
        buffer,
    )


def trade_rows(session: RawSession) -> list[tuple]:
    """The rows :func:`insert_trade_rows` writes, one per trade in the tape's order, in
    the integer format (none without a tape). The collector's ``ts`` holds whole seconds:
    an exchange time that is not one cannot be written without losing it, and raises
    ValueError naming the trade."""
    if session.trades is None:
        return []
    rows = []
    for t in session.trades.to_pylist():
        exchange_ms = t["exchange_ts_ms"]
        if exchange_ms is not None and exchange_ms % 1000:
            raise ValueError(
                f"session {session.session_id}: trade {t['trade_id']!r} (market "
                f"{t['market_ticker']}): exchange_ts_ms {exchange_ms} is not a whole second; "
                f"{COLLECTOR_TRADES_TABLE}.ts holds Kalshi's whole seconds"
            )
        ts = None if exchange_ms is None else exchange_ms // 1000
        rows.append(
            (t["session_id"], t["trade_id"], t["market_ticker"], t["yes_price"], t["no_price"],
             t["count"], t["taker_side"], ts, t["timestamp_ms"], t["sequence_number"])
        )  # fmt: skip
    return rows


def insert_trade_rows(cur, rows: Sequence[tuple]) -> None:
    """Trade rows of :func:`trade_rows` (any slice of them), all but ``id`` (the BIGSERIAL
    numbers them in the given order), one statement per 1,000 rows. Nothing to write
    (a session without a tape among them): no statement, and the table need not exist."""
    if not rows:
        return
    psycopg2.extras.execute_values(
        cur,
        f"INSERT INTO {COLLECTOR_TRADES_TABLE} (session_id, trade_id, market_ticker, "
        "yes_price, no_price, count, taker_side, ts, timestamp_ms, sequence_number) VALUES %s",
        rows,
        page_size=1000,
    )
