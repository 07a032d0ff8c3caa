"""A session's fingerprint: what tells that a session changed after it was ingested.

A collector may resume a session it had closed (it goes back to ``active``, gains rows,
perhaps a market, and closes again). Its id stays the same, so the id alone cannot say
that the copy ingested earlier is out of date. :class:`SessionFingerprint` can: the
session's ``status`` and ``ended_at``, and for each raw table (the trade tape too, where
the session has one) its row count and its last row id. The collector only appends,
under ids drawn from a sequence, so new rows raise the last id and deleted ones lower the
count; a resumed session changes its end or status too. Price maps rewritten in place
under the same ids are not seen: the collector does not do that.

A session without a trade tape (a collector database without the trades table, a store
written before tapes were kept) has ``trades=None``, which is left out of
:meth:`SessionFingerprint.to_json`: its fingerprint and token are the ones it had before
tapes existed, so such a session is not taken for changed. A session whose tape appears
(the table is added) or grows (trades appended) changes its fingerprint.

Each source gives the fingerprints of many sessions cheaply
(``source.fingerprints(session_ids)``): the collector's Postgres in one query (a count
and a max over the ``(session_id, id)`` indexes), the Parquet store from its catalog and
its files' footers. An ingest records the fingerprint of the copy it wrote, from that
copy's footers, so it describes exactly the rows that were read.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC
from typing import Any, BinaryIO, Self

import pyarrow.compute as pc
import pyarrow.parquet as pq

from kalshi_pipeline.sources.raw import TABLES, SessionInfo

TRADES = "trades"  # the trade tape's extent, beside TABLES' (None: no tape)

__all__ = ["SessionFingerprint", "TableExtent", "parquet_extent"]


@dataclass(frozen=True, kw_only=True)
class TableExtent:
    """How much of one raw table a session holds: its rows and its last row id."""

    rows: int
    last_id: int | None  # None for no rows

    def describe(self) -> str:
        return f"{self.rows} rows" + (f" up to id {self.last_id}" if self.rows else "")


@dataclass(frozen=True, kw_only=True)
class SessionFingerprint:
    """A session's status, end and extent of each table (see the module docstring)."""

    session_id: int
    status: str
    ended_at: str | None  # ISO-8601 UTC, as SessionInfo.to_json writes it
    snapshots: TableExtent
    deltas: TableExtent
    trades: TableExtent | None = None  # None: the session has no trade tape

    @classmethod
    def of(cls, info: SessionInfo, extents: Mapping[str, TableExtent]) -> Self:
        """The fingerprint of the session ``info`` describes, whose tables hold ``extents``
        (``"trades"`` among them only if it has a trade tape)."""
        return cls(
            session_id=info.session_id,
            status=str(info.status),
            ended_at=info.ended_at.astimezone(UTC).isoformat() if info.ended_at else None,
            snapshots=extents["snapshots"],
            deltas=extents["deltas"],
            trades=extents.get(TRADES),
        )

    def _tables(self) -> tuple[str, ...]:
        """The tables this fingerprint describes: TABLES, and the trades if there is a tape."""
        return TABLES if self.trades is None else (*TABLES, TRADES)

    @property
    def token(self) -> str:
        """16 hex digits of the SHA-256 of the fingerprint: equal sessions, equal tokens."""
        canonical = json.dumps(self.to_json(), sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def describe(self) -> str:
        end = f"ended {self.ended_at}" if self.ended_at else "no end time"
        tables = ", ".join(f"{t} {getattr(self, t).describe()}" for t in self._tables())
        return f"{self.status}, {end}, {tables}"

    def changes_since(self, old: SessionFingerprint | None) -> str:
        """What differs from ``old`` (the fingerprint recorded at ingest), in words."""
        if old is None:
            return f"no fingerprint was recorded when it was ingested; now {self.describe()}"
        changed = [
            f"{name} {getattr(old, name)} -> {getattr(self, name)}"
            for name in ("status", "ended_at")
            if getattr(old, name) != getattr(self, name)
        ] + [
            f"{t} {_described(getattr(old, t))} -> {_described(getattr(self, t))}"
            for t in (*TABLES, TRADES)
            if getattr(old, t) != getattr(self, t)
        ]
        return "; ".join(changed) or "unchanged"

    def to_json(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "status": self.status,
            "ended_at": self.ended_at,
            **{t: dataclasses.asdict(getattr(self, t)) for t in self._tables()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        tables = {t: TableExtent(**data[t]) for t in TABLES}
        trades = TableExtent(**data[TRADES]) if data.get(TRADES) is not None else None
        return cls(
            session_id=data["session_id"], status=data["status"], ended_at=data["ended_at"],
            trades=trades, **tables,
        )  # fmt: skip


def _described(extent: TableExtent | None) -> str:
    return "no tape" if extent is None else extent.describe()


def parquet_extent(file: BinaryIO) -> TableExtent:
    """A stored raw table's rows and last id, from its footer's statistics (the ``id``
    column is read only if a row group has none)."""
    parquet = pq.ParquetFile(file)
    meta, last = parquet.metadata, None
    for group in range(meta.num_row_groups):
        column = meta.row_group(group).column(0)  # "id", the schema's first column
        stats = column.statistics
        if meta.row_group(group).num_rows == 0:
            continue
        if stats is None or not stats.has_min_max:
            top = pc.max(parquet.read_row_group(group, columns=["id"]).column(0)).as_py()
        else:
            top = stats.max
        last = top if last is None or top > last else last
    return TableExtent(rows=meta.num_rows, last_id=last)
