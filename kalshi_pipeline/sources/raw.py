"""The raw session: one collector recording (metadata, snapshots, deltas, trades) as Arrow
tables.

This module is the typed mirror of the collector's Postgres tables (``docs/data-model.md``;
the trade tape's schema and reading are :mod:`kalshi_pipeline.sources.trades`). Every
source returns a :class:`RawSession`; everything downstream (book reconstruction, views)
reads only this representation.

Schema
------
``RawSession.info`` (:class:`SessionInfo`) mirrors one ``rl_orderbook_sessions`` row.

``RawSession.snapshots`` mirrors ``rl_orderbook_snapshots`` (:data:`SNAPSHOT_SCHEMA`):

=================  ========================  ================================================
column             type                      meaning
=================  ========================  ================================================
id                 int64                     the collector's row id (storage order)
session_id         int64
market_ticker      string
timestamp_ms       int64                     collector receive time, ms since the epoch
sequence_number    int64                     session-wide exchange sequence
yes_bids           map<int32, int64>         the JSONB map ``{"<price_cents>": size}``,
no_bids            map<int32, int64>         decoded: price in cents -> resting size
yes_asks           map<int32, int64>         as stored; never trusted (asks derive from bids)
no_asks            map<int32, int64>
map_error          string (nullable)         why stored maps could not be decoded
                                             (``"<column>: <reason>; ..."``); each map
                                             that failed is null
=================  ========================  ================================================

``RawSession.deltas`` mirrors ``rl_orderbook_deltas`` (:data:`DELTA_SCHEMA`): ``id``,
``session_id``, ``market_ticker``, ``timestamp_ms``, ``sequence_number`` as above, then
``side`` (``"yes"``/``"no"``: the bid book that changed), ``action``
(``"add"|"remove"|"update"``, :data:`DELTA_ACTIONS`: ``remove`` clears the level, the others
only name the change; a row with any other action, possible in a collector database
without its CHECK constraint, is carried as stored and dropped by cleaning as
``unknown_action``), ``price`` (int32 cents, the collector's INT),
``old_size`` (int64, informative) and ``new_size`` (int64: the absolute size now resting
at ``price``).

The stored ``yes_spread``, ``no_spread``, ``*_mid_price`` and ``total_volume`` columns
are deliberately not carried: the collector often leaves them NULL or 0.

Rows are kept in storage order (by ``id``), not sequence order: detecting and repairing
out-of-order storage is the job of :mod:`kalshi_pipeline.market.cleaning`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, Protocol, Self

import pyarrow as pa

from kalshi_pipeline.sources.price_map_text import PriceMapError, decode_price_map
from kalshi_pipeline.sources.raw_values import column_array
from kalshi_pipeline.sources.trades import TRADE_SCHEMA

# A Kalshi contract trades at 1..99 cents: the price levels of each side's bid book. It
# lives with the raw schema because every layer above reads prices against it (cleaning,
# books, the simulator). The raw tables keep any price the collector stored; cleaning
# counts and drops those outside 1..LEVELS.
LEVELS = 99

PRICE_MAP_TYPE = pa.map_(pa.int32(), pa.int64())
PRICE_MAP_COLUMNS = ("yes_bids", "no_bids", "yes_asks", "no_asks")

SNAPSHOT_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("session_id", pa.int64()),
        ("market_ticker", pa.string()),
        ("timestamp_ms", pa.int64()),
        ("sequence_number", pa.int64()),
        *[(name, PRICE_MAP_TYPE) for name in PRICE_MAP_COLUMNS],
        ("map_error", pa.string()),
    ]
)

DELTA_SCHEMA = pa.schema(
    [
        ("id", pa.int64()),
        ("session_id", pa.int64()),
        ("market_ticker", pa.string()),
        ("timestamp_ms", pa.int64()),
        ("sequence_number", pa.int64()),
        ("side", pa.string()),
        ("action", pa.string()),
        ("price", pa.int32()),
        ("old_size", pa.int64()),
        ("new_size", pa.int64()),
    ]
)
# The actions the collector writes (its CHECK constraint), spelled exactly so.
DELTA_ACTIONS = ("add", "remove", "update")

TABLES = ("snapshots", "deltas")  # a raw session's two tables, as RawSession names them
BATCH_ROWS = 65_536  # rows per batch when a session is read a batch at a time


class SessionNotComplete(RuntimeError):
    """Raised when asked to ingest a session that is not complete (still recording, or
    of an unknown status): see :attr:`SessionInfo.is_complete`."""


class SessionStatus(StrEnum):
    """A session's ``status``: the collector's table allows these three words only."""

    ACTIVE = "active"  # still recording (or its collector crashed)
    CLOSED = "closed"
    ERROR = "error"


STATUS_WORDS = ", ".join(status.value for status in SessionStatus)


@dataclass(frozen=True, kw_only=True)
class SessionInfo:
    """One ``rl_orderbook_sessions`` row: what ``list_sessions()`` returns per session.

    ``snapshots_count``/``deltas_count``/``messages_received`` are the collector's own
    counters, which may over-count; the tables are the truth.

    ``status`` is the :class:`SessionStatus` its word names. A word the collector's table
    does not allow (``'ACTIVE'``, ``'paused'``: a database without the table's CHECK, or
    another writer) is kept as given, so that one odd row neither fails the listing of
    every session nor passes for a known word: such a session is never complete, and
    :attr:`incomplete_reason` names the word.
    """

    session_id: int
    status: SessionStatus | str
    started_at: datetime
    ended_at: datetime | None
    market_tickers: tuple[str, ...]
    environment: str = "local"
    websocket_url: str = ""
    messages_received: int = 0
    snapshots_count: int = 0
    deltas_count: int = 0
    last_message_at: datetime | None = None
    error_message: str | None = None
    connection_metadata: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        # Rows and JSON give the status as a word: hold a known word as its member; an
        # unknown word stays as given (never complete: incomplete_reason names it).
        with contextlib.suppress(ValueError):
            object.__setattr__(self, "status", SessionStatus(self.status))

    @property
    def status_is_known(self) -> bool:
        return isinstance(self.status, SessionStatus)

    @property
    def is_complete(self) -> bool:
        """No longer recording: status ``closed``, or an end time (``ended_at``).

        Nothing else counts. A collector that crashed leaves its session ``active`` with
        no end time, and one that failed may leave it ``error`` with none: both are
        skipped until they end (the collector may resume them). An unknown status is never
        complete, end time or not: what it means cannot be told. An ``error`` session with
        an end time is complete, and only used if it passes the data-quality checks
        downstream (``docs/data-model.md``).
        """
        if not self.status_is_known:
            return False
        return self.status == SessionStatus.CLOSED or self.ended_at is not None

    @property
    def incomplete_reason(self) -> str | None:
        """Why the session is not complete (None when it is), e.g. ``still active (no end
        time)`` or ``of unknown status 'ACTIVE' (the collector writes active, closed or
        error)``."""
        if not self.status_is_known:
            return f"of unknown status {self.status!r} (the collector writes {STATUS_WORDS})"
        if self.is_complete:
            return None
        return f"still {self.status} (no end time)"

    def to_json(self) -> dict[str, Any]:
        """A JSON-ready dict with ISO-8601 UTC timestamps (stable across runs)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if isinstance(value, StrEnum):
                value = value.value  # an unknown status is already a plain value
            elif isinstance(value, datetime):
                value = value.astimezone(UTC).isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[name] = value
        return out

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        values = dict(data)
        for name in ("started_at", "ended_at", "last_message_at"):
            if values.get(name) is not None:
                values[name] = datetime.fromisoformat(values[name])
        values["market_tickers"] = tuple(values.get("market_tickers") or ())
        return cls(**values)


def check_complete(info: SessionInfo, allow_incomplete: bool = False) -> None:
    """Raise :class:`SessionNotComplete` naming why, unless the session is complete or
    ``allow_incomplete``."""
    if not info.is_complete and not allow_incomplete:
        raise SessionNotComplete(
            f"session {info.session_id} is {info.incomplete_reason}: not ingested"
        )


@dataclass(frozen=True)
class RawSession:
    """One session as recorded: metadata plus the snapshot and delta tables."""

    info: SessionInfo
    snapshots: pa.Table
    deltas: pa.Table
    # The public trade tape (TRADE_SCHEMA, kalshi_pipeline.sources.trades); None when the
    # collector recorded none, an empty table when it recorded no trade.
    trades: pa.Table | None = None

    def __post_init__(self) -> None:
        if not self.snapshots.schema.equals(SNAPSHOT_SCHEMA):
            raise ValueError(
                f"session {self.info.session_id}: snapshots do not have SNAPSHOT_SCHEMA:\n"
                f"{self.snapshots.schema}"
            )
        if not self.deltas.schema.equals(DELTA_SCHEMA):
            raise ValueError(
                f"session {self.info.session_id}: deltas do not have DELTA_SCHEMA:\n"
                f"{self.deltas.schema}"
            )
        if self.trades is not None and not self.trades.schema.equals(TRADE_SCHEMA):
            raise ValueError(
                f"session {self.info.session_id}: trades do not have TRADE_SCHEMA:\n"
                f"{self.trades.schema}"
            )

    @property
    def session_id(self) -> int:
        return self.info.session_id

    @property
    def num_events(self) -> int:
        return self.snapshots.num_rows + self.deltas.num_rows

    def batches(
        self, table: str, columns: Sequence[str] | None = None, rows: int = BATCH_ROWS
    ) -> Iterator[pa.RecordBatch]:
        """``table`` (``"snapshots"`` or ``"deltas"``) in batches of at most ``rows``
        rows, in storage order: the :class:`SessionBatches` reading of a session in memory."""
        data = getattr(self, table)
        yield from (data.select(columns) if columns else data).to_batches(max_chunksize=rows)


class SessionBatches(Protocol):
    """A raw session read a batch of rows at a time: what a session too big to hold in
    memory offers (a stored one: ``ParquetSessionStore.open_session``; one in memory:
    :class:`RawSession`). ``batches`` yields the rows of ``table`` (one of :data:`TABLES`)
    in storage order, only ``columns`` if given, as record batches of that table's schema.
    ``trades`` is the whole trade tape (:data:`~kalshi_pipeline.sources.trades.TRADE_SCHEMA`;
    None when none was recorded), held at once: a tape is far smaller than the deltas."""

    @property
    def info(self) -> SessionInfo: ...

    @property
    def trades(self) -> pa.Table | None: ...

    def batches(
        self, table: str, columns: Sequence[str] | None = None
    ) -> Iterator[pa.RecordBatch]: ...


def snapshot_table(rows: list[tuple]) -> pa.Table:
    """Build the snapshots table from collector-shaped rows.

    Each row is ``(id, session_id, market_ticker, timestamp_ms, sequence_number,
    yes_bids, no_bids, yes_asks, no_asks)`` with the maps as JSON text or mappings. A map
    that cannot be decoded does not stop the session: that map is null, the reason is in
    ``map_error``, and the cleaning step decides (a bad bid map rejects the market by
    name; a bad ask map is ignored, asks being derived from bids). The other columns
    take any value as :func:`delta_table` does.
    """
    columns: dict[str, list] = {name: [] for name in SNAPSHOT_SCHEMA.names}
    for row in rows:
        for name, value in zip(SNAPSHOT_SCHEMA.names[:5], row[:5], strict=True):
            columns[name].append(value)
        errors = []
        for name, raw in zip(PRICE_MAP_COLUMNS, row[5:9], strict=True):
            try:
                columns[name].append(decode_price_map(raw))
            except Exception as exc:  # whatever it is, it marks the row: never the session
                columns[name].append(None)
                why = exc if isinstance(exc, PriceMapError) else type(exc).__name__
                errors.append(f"{name}: {why}")
        columns["map_error"].append("; ".join(errors) or None)
    arrays = [
        pa.array(columns[f.name], f.type)
        if f.type == PRICE_MAP_TYPE
        else column_array(columns[f.name], f.type)
        for f in SNAPSHOT_SCHEMA
    ]
    return pa.Table.from_arrays(arrays, schema=SNAPSHOT_SCHEMA)


def delta_table(rows: list[tuple]) -> pa.Table:
    """Build the deltas table from collector-shaped rows (:data:`DELTA_SCHEMA`'s columns,
    in order). A value that does not fit its column never fails the session: an integer
    too large is clamped to the column's limit, anything else that is not an integer
    (NaN, a string, a fraction) or not text is NULL; cleaning counts and drops that row
    (:mod:`kalshi_pipeline.sources.raw_values`)."""
    columns = list(zip(*rows, strict=True)) or [()] * len(DELTA_SCHEMA)
    arrays = [column_array(list(c), f.type) for c, f in zip(columns, DELTA_SCHEMA, strict=True)]
    return pa.Table.from_arrays(arrays, schema=DELTA_SCHEMA)
