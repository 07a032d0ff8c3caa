"""Reading raw sessions: the collector's Postgres, the local Parquet store, the simulator.

Every source has the same small interface (:class:`SessionSource`): ``list_sessions()``
and ``load_session(session_id)`` returning a :class:`RawSession`.
"""

from typing import Protocol

from kalshi_pipeline.sources.parquet_store import (
    ParquetSessionStore,
    SessionExists,
    StoreCorrupt,
)
from kalshi_pipeline.sources.postgres import (
    ConnectionSettings,
    PostgresSessionSource,
    SourceMisconfigured,
    SourceTimeout,
    SourceUnavailable,
)
from kalshi_pipeline.sources.raw import RawSession, SessionInfo, SessionNotComplete


class SessionSource(Protocol):
    def list_sessions(self) -> list[SessionInfo]: ...

    def load_session(self, session_id: int, *, allow_incomplete: bool = False) -> RawSession: ...


__all__ = [
    "ConnectionSettings",
    "ParquetSessionStore",
    "PostgresSessionSource",
    "RawSession",
    "SessionExists",
    "SessionInfo",
    "SessionNotComplete",
    "SessionSource",
    "StoreCorrupt",
    "SourceMisconfigured",
    "SourceTimeout",
    "SourceUnavailable",
]
