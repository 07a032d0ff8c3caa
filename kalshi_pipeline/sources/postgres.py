"""Reading the collector's Postgres tables (and writing them, for the simulator and tests).

:class:`PostgresSessionSource` reads ``rl_orderbook_sessions``, ``rl_orderbook_snapshots``
and ``rl_orderbook_deltas`` exactly as the collector writes them (DESIGN.md section 2).
Rows stream through server-side (named) cursors in batches of ``batch_rows`` and are
turned into Arrow record batches as they arrive, so a session with millions of deltas is
held once, as Arrow columns, never also as a list of Python rows. JSONB price maps are
fetched as text and decoded by :func:`~kalshi_pipeline.sources.raw.snapshot_table`, so a
malformed map marks its row instead of failing the whole session.

The connection URL is never logged or put in error messages (it may hold a password).
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import resources

import psycopg2
import psycopg2.extras
import pyarrow as pa
import pyarrow.csv as pa_csv

from kalshi_pipeline.sources.raw import (
    DELTA_SCHEMA,
    SNAPSHOT_SCHEMA,
    RawSession,
    SessionInfo,
    SessionNotComplete,
    encode_price_map,
    snapshot_table,
)

_SESSION_COLUMNS = (
    "session_id, status, started_at, ended_at, market_tickers, environment, websocket_url, "
    "messages_received, snapshots_count, deltas_count, last_message_at, error_message, "
    "connection_metadata"
)
_SNAPSHOT_QUERY = (
    "SELECT id, session_id, market_ticker, timestamp_ms, sequence_number, "
    "yes_bids::text, no_bids::text, yes_asks::text, no_asks::text "
    "FROM rl_orderbook_snapshots WHERE session_id = %s ORDER BY id"
)
_DELTA_QUERY = (
    "SELECT id, session_id, market_ticker, timestamp_ms, sequence_number, side, action, "
    "price, old_size, new_size FROM rl_orderbook_deltas WHERE session_id = %s ORDER BY id"
)


def collector_ddl() -> str:
    """The collector's DDL for its three tables."""
    return resources.files("kalshi_pipeline.sources").joinpath("collector_schema.sql").read_text()


class PostgresSessionSource:
    """Sessions from the collector's database at ``url`` (a libpq URL or DSN)."""

    def __init__(self, url: str, *, batch_rows: int = 100_000) -> None:
        self._url = url
        self.batch_rows = batch_rows

    def __repr__(self) -> str:
        return "PostgresSessionSource(<url hidden>)"

    @contextmanager
    def _connect(self) -> Iterator[psycopg2.extensions.connection]:
        conn = psycopg2.connect(self._url)
        try:
            conn.set_session(readonly=True)
            yield conn
        finally:
            conn.close()

    def list_sessions(self) -> list[SessionInfo]:
        """Every session, active ones included (check ``is_complete``), by id."""
        with self._connect() as conn, conn.cursor() as cur:
            cur.execute(f"SELECT {_SESSION_COLUMNS} FROM rl_orderbook_sessions ORDER BY session_id")
            return [_session_info(row) for row in cur.fetchall()]

    def load_session(self, session_id: int, *, allow_incomplete: bool = False) -> RawSession:
        """The raw session; a session still recording raises :class:`SessionNotComplete`."""
        with self._connect() as conn:
            with conn.cursor() as cur:
                cur.execute(
                    f"SELECT {_SESSION_COLUMNS} FROM rl_orderbook_sessions WHERE session_id = %s",
                    (session_id,),
                )
                row = cur.fetchone()
            if row is None:
                raise KeyError(f"session {session_id} is not in rl_orderbook_sessions")
            info = _session_info(row)
            if not info.is_complete and not allow_incomplete:
                raise SessionNotComplete(
                    f"session {session_id} is still {info.status} (no end time): not ingested"
                )
            snapshots = pa.concat_tables(
                [snapshot_table(rows) for rows in self._batches(conn, _SNAPSHOT_QUERY, session_id)]
                or [SNAPSHOT_SCHEMA.empty_table()]
            )
            delta_batches = [
                _delta_batch(rows) for rows in self._batches(conn, _DELTA_QUERY, session_id)
            ]
            deltas = pa.Table.from_batches(delta_batches, schema=DELTA_SCHEMA)
        return RawSession(info, snapshots.combine_chunks(), deltas.combine_chunks())

    def _batches(self, conn, query: str, session_id: int) -> Iterator[list[tuple]]:
        # A named cursor is a server-side cursor: Postgres keeps the result set and hands
        # over batch_rows rows per round trip.
        with conn.cursor(name=f"kalshi_pipeline_{session_id}") as cur:
            cur.itersize = self.batch_rows
            cur.execute(query, (session_id,))
            while rows := cur.fetchmany(self.batch_rows):
                yield rows


def _delta_batch(rows: list[tuple]) -> pa.RecordBatch:
    columns = zip(*rows, strict=True)
    return pa.RecordBatch.from_arrays(
        [pa.array(col, type=f.type) for col, f in zip(columns, DELTA_SCHEMA, strict=True)],
        schema=DELTA_SCHEMA,
    )


def _session_info(row: tuple) -> SessionInfo:
    (sid, status, started, ended, tickers, env, url, msgs, snaps, deltas, last, err, meta) = row
    return SessionInfo(
        session_id=int(sid),
        status=status,
        started_at=started,
        ended_at=ended,
        market_tickers=tuple(tickers or ()),
        environment=env or "local",
        websocket_url=url or "",
        messages_received=int(msgs or 0),
        snapshots_count=int(snaps or 0),
        deltas_count=int(deltas or 0),
        last_message_at=last,
        error_message=err,
        connection_metadata=meta or {},
    )


def write_collector_session(conn, session: RawSession) -> None:
    """Insert one raw session into the collector's tables as the collector would.

    Used by ``kalshi-pipeline generate --postgres`` and by tests. The session keeps its
    id (the BIGSERIAL is advanced past it); maps are written as JSONB. Commits.
    """
    info = session.info
    with conn.cursor() as cur:
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
        cur.execute(
            "SELECT setval(pg_get_serial_sequence('rl_orderbook_sessions', 'session_id'), "
            "GREATEST((SELECT MAX(session_id) FROM rl_orderbook_sessions), 1))"
        )
        snaps = session.snapshots.to_pylist()
        psycopg2.extras.execute_values(
            cur,
            "INSERT INTO rl_orderbook_snapshots (session_id, market_ticker, timestamp_ms, "
            "sequence_number, yes_bids, no_bids, yes_asks, no_asks) VALUES %s",
            [
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
                for s in snaps
            ],
            template="(%s,%s,%s,%s,%s::jsonb,%s::jsonb,%s::jsonb,%s::jsonb)",
        )
        # COPY keeps the storage order (ids follow the table's row order) and is fast.
        delta_columns = DELTA_SCHEMA.names[1:]
        buffer = io.BytesIO()
        pa_csv.write_csv(
            session.deltas.select(delta_columns),
            buffer,
            pa_csv.WriteOptions(include_header=False),
        )
        buffer.seek(0)
        cur.copy_expert(
            f"COPY rl_orderbook_deltas ({', '.join(delta_columns)}) FROM STDIN WITH (FORMAT csv)",
            buffer,
        )
    conn.commit()
