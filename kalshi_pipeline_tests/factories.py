"""Small hand-made sessions for tests: write the events, get a RawSession.

    session = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10, 39: 5}, no_bids={55: 7}),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=3),
    )

Rows are stored in the order given (ids 1, 2, ... per table), which lets a test store
rows out of sequence order on purpose. Timestamps default to one millisecond per
sequence number after 2026-01-05.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa

from kalshi_pipeline.sources.raw import (
    DELTA_SCHEMA,
    RawSession,
    SessionInfo,
    snapshot_table,
)
from kalshi_pipeline.sources.trades import TRADE_SCHEMA

T0_MS = int(datetime(2026, 1, 5, tzinfo=UTC).timestamp() * 1000)


def snapshot(
    ticker: str,
    seq: int,
    yes_bids: dict | str | None = None,
    no_bids: dict | str | None = None,
    *,
    yes_asks: dict | str | None = None,
    no_asks: dict | str | None = None,
    ts: int | None = None,
) -> dict[str, Any]:
    """A snapshot row; asks default to the ones derived from the bids (100 - p).

    A map may be given as a dict ``{price: size}`` or as raw JSON text (to test
    malformed maps).
    """
    yes_bids, no_bids = yes_bids or {}, no_bids or {}
    if yes_asks is None and isinstance(no_bids, dict):
        yes_asks = {100 - p: s for p, s in no_bids.items()}
    if no_asks is None and isinstance(yes_bids, dict):
        no_asks = {100 - p: s for p, s in yes_bids.items()}
    return {
        "kind": "snapshot",
        "market_ticker": ticker,
        "sequence_number": seq,
        "timestamp_ms": T0_MS + seq if ts is None else ts,
        "maps": [_json_ready(m) for m in (yes_bids, no_bids, yes_asks, no_asks)],
    }


def delta(
    ticker: str,
    seq: int,
    side: str,
    price: int,
    new_size: int | None,
    *,
    old_size: int = 0,
    action: str | None = None,
    ts: int | None = None,
) -> dict[str, Any]:
    """A delta row; ``action`` defaults to add/remove/update from the sizes."""
    if action is None:
        action = "remove" if new_size == 0 else ("add" if old_size == 0 else "update")
    return {
        "kind": "delta",
        "market_ticker": ticker,
        "sequence_number": seq,
        "timestamp_ms": T0_MS + seq if ts is None else ts,
        "side": side,
        "action": action,
        "price": price,
        "old_size": old_size,
        "new_size": new_size,
    }


def make_session(*rows: dict[str, Any], session_id: int = 1, status: str = "closed") -> RawSession:
    snaps = [r for r in rows if r["kind"] == "snapshot"]
    deltas = [r for r in rows if r["kind"] == "delta"]
    snapshot_rows = [
        (i + 1, session_id, r["market_ticker"], r["timestamp_ms"], r["sequence_number"], *r["maps"])
        for i, r in enumerate(snaps)
    ]
    delta_columns = {name: [] for name in DELTA_SCHEMA.names}
    for i, r in enumerate(deltas):
        delta_columns["id"].append(i + 1)
        delta_columns["session_id"].append(session_id)
        for name in DELTA_SCHEMA.names[2:]:
            delta_columns[name].append(r[name])
    tickers = tuple(sorted({r["market_ticker"] for r in rows} - {None}))
    started = datetime(2026, 1, 5, tzinfo=UTC)
    info = SessionInfo(
        session_id=session_id,
        status=status,
        started_at=started,
        ended_at=None if status == "active" else started + timedelta(hours=1),
        market_tickers=tickers,
        environment="test",
        snapshots_count=len(snaps),
        deltas_count=len(deltas),
    )
    return RawSession(
        info,
        snapshot_table(snapshot_rows),
        pa.Table.from_pydict(delta_columns, schema=DELTA_SCHEMA),
    )


def _json_ready(levels: dict | str | None) -> dict | str | None:
    if isinstance(levels, dict):
        return {str(p): s for p, s in levels.items()}
    return levels


class InBatches:
    """A raw session offered ``rows`` rows at a time (a ``SessionBatches``), as a source
    streaming a session too big to load would."""

    def __init__(self, raw: RawSession, rows: int) -> None:
        self.info, self.trades, self._raw, self._rows = raw.info, raw.trades, raw, rows

    def batches(self, table, columns=None):
        return self._raw.batches(table, columns, rows=self._rows)


_GIVEN = object()  # an argument left out (None is a NULL on purpose)


def trade(
    ticker: str | None,
    trade_id: str | None,
    yes_price: int | None,
    count: int | None,
    taker_side: str | None,
    *,
    seq: int | None = None,
    ts: Any = _GIVEN,
    no_price: Any = _GIVEN,
    exchange_ts_ms: Any = _GIVEN,
) -> dict[str, Any]:
    """One trade row of a hand-made tape (:func:`with_tape` gives its row id and session).

    Left out: ``ts`` (the receive time) is one millisecond per sequence number after
    :data:`T0_MS`, as the book rows here; ``no_price`` is ``100 - yes_price``;
    ``exchange_ts_ms`` the whole second at or before ``ts``. Any of them given as None is
    NULL, and any field may be out of range on purpose.
    """
    if ts is _GIVEN:
        ts = T0_MS + (seq or 0)
    if no_price is _GIVEN:
        no_price = None if yes_price is None else 100 - yes_price
    if exchange_ts_ms is _GIVEN:
        exchange_ts_ms = None if ts is None else ts - ts % 1000
    return {
        "trade_id": trade_id,
        "market_ticker": ticker,
        "yes_price": yes_price,
        "no_price": no_price,
        "count": count,
        "taker_side": taker_side,
        "exchange_ts_ms": exchange_ts_ms,
        "timestamp_ms": ts,
        "sequence_number": seq,
    }


def with_tape(raw: RawSession, *trades: dict[str, Any]) -> RawSession:
    """``raw`` with a trade tape of ``trades``, stored in the order given (ids 1, 2, ...);
    none given: a tape that recorded no trade."""
    rows = [{"id": i + 1, "session_id": raw.session_id, **row} for i, row in enumerate(trades)]
    return dataclasses.replace(raw, trades=pa.Table.from_pylist(rows, schema=TRADE_SCHEMA))
