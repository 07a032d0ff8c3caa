"""Reading raw sessions: the collector's Postgres, the local Parquet store, the simulator.

Every source has the same small interface (:class:`SessionSource`): ``list_sessions()``,
``load_session(session_id)`` returning a :class:`RawSession`,
``open_session(session_id)``, a context manager giving the session to read a batch of rows
at a time (:class:`SessionBatches`) when it is too big to load, and
``fingerprints(session_ids)``, what tells that a session changed since it was read
(:class:`SessionFingerprint`).
"""

from collections.abc import Iterable
from contextlib import AbstractContextManager
from typing import Protocol

from kalshi_pipeline.sources.collector_connection import (
    ConnectionSettings,
    SourceMisconfigured,
    SourceTimeout,
    SourceUnavailable,
)
from kalshi_pipeline.sources.fingerprint import SessionFingerprint
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.postgres import PostgresSessionSource
from kalshi_pipeline.sources.raw import (
    RawSession,
    SessionBatches,
    SessionInfo,
    SessionNotComplete,
    SessionStatus,
)
from kalshi_pipeline.sources.store_layout import SessionExists, StoreCorrupt


class SessionSource(Protocol):
    def list_sessions(self) -> list[SessionInfo]: ...

    def load_session(self, session_id: int, *, allow_incomplete: bool = False) -> RawSession: ...

    def open_session(
        self, session_id: int, *, allow_incomplete: bool = False
    ) -> AbstractContextManager[SessionBatches]: ...

    def fingerprints(self, session_ids: Iterable[int]) -> dict[int, SessionFingerprint]: ...


__all__ = [
    "ConnectionSettings",
    "ParquetSessionStore",
    "PostgresSessionSource",
    "RawSession",
    "SessionBatches",
    "SessionExists",
    "SessionFingerprint",
    "SessionInfo",
    "SessionNotComplete",
    "SessionSource",
    "SessionStatus",
    "StoreCorrupt",
    "SourceMisconfigured",
    "SourceTimeout",
    "SourceUnavailable",
]
