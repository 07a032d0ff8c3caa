"""The embedded default session source: raw sessions as Parquet files on local disk.

Layout under the store's root::

    catalog.json                      one entry per session (SessionInfo), sorted by id
    session-<id>/metadata.json        that session's SessionInfo
    session-<id>/snapshots.parquet    SNAPSHOT_SCHEMA
    session-<id>/deltas.parquet       DELTA_SCHEMA

Writes are atomic: a session is written into a hidden temporary directory and renamed into
place, and the catalog is replaced with ``os.replace``; a session becomes visible only
once it is in the catalog, so a crash never leaves a half-written session visible.
Overwriting a session swaps the new directory in (the old one is moved aside first, then
deleted). Writing the same session twice gives byte-identical files. The store assumes a
single writer at a time; readers may run concurrently.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from kalshi_pipeline.sources.raw import (
    DELTA_SCHEMA,
    SNAPSHOT_SCHEMA,
    RawSession,
    SessionInfo,
    SessionNotComplete,
)

CATALOG = "catalog.json"
_PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True}


class ParquetSessionStore:
    """Read and write raw sessions in a local directory (created on first write)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ParquetSessionStore({str(self.path)!r})"

    # -- reading -----------------------------------------------------------------------
    def list_sessions(self) -> list[SessionInfo]:
        """Every session in the catalog, active ones included (check ``is_complete``)."""
        return [SessionInfo.from_json_dict(entry) for entry in self._read_catalog()]

    def load_session(self, session_id: int, *, allow_incomplete: bool = False) -> RawSession:
        """The raw session; a session still recording raises :class:`SessionNotComplete`."""
        info = self._info(session_id)
        if not info.is_complete and not allow_incomplete:
            raise SessionNotComplete(
                f"session {session_id} is still {info.status} (no end time): not ingested"
            )
        directory = self._session_dir(session_id)
        snapshots = pq.read_table(directory / "snapshots.parquet", schema=SNAPSHOT_SCHEMA)
        deltas = pq.read_table(directory / "deltas.parquet", schema=DELTA_SCHEMA)
        return RawSession(info, snapshots.combine_chunks(), deltas.combine_chunks())

    # -- writing -----------------------------------------------------------------------
    def write_session(self, session: RawSession) -> Path:
        """Write (or replace) one session atomically and add it to the catalog."""
        self.path.mkdir(parents=True, exist_ok=True)
        session_id = session.session_id
        final = self._session_dir(session_id)
        staging = self.path / f".tmp-{session_id}-{uuid.uuid4().hex}"
        staging.mkdir()
        try:
            _write_json(staging / "metadata.json", session.info.to_json_dict())
            _write_parquet(session.snapshots, staging / "snapshots.parquet")
            _write_parquet(session.deltas, staging / "deltas.parquet")
            _fsync_dir(staging)
            if final.exists():
                retired = self.path / f".old-{session_id}-{uuid.uuid4().hex}"
                final.rename(retired)
                try:
                    staging.rename(final)
                except BaseException:
                    # The catalog still lists this session: put the previous version back.
                    retired.rename(final)
                    raise
                # The new version is in place; failing to delete the old copy must not
                # abort the write before the catalog is updated.
                shutil.rmtree(retired, ignore_errors=True)
            else:
                staging.rename(final)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        catalog = {entry["session_id"]: entry for entry in self._read_catalog()}
        catalog[session_id] = session.info.to_json_dict()
        _write_json(self.path / CATALOG, [catalog[key] for key in sorted(catalog)])
        return final

    # -- internals ---------------------------------------------------------------------
    def _session_dir(self, session_id: int) -> Path:
        return self.path / f"session-{int(session_id)}"

    def _read_catalog(self) -> list[dict]:
        try:
            return json.loads((self.path / CATALOG).read_text())
        except FileNotFoundError:
            return []

    def _info(self, session_id: int) -> SessionInfo:
        for entry in self._read_catalog():
            if entry["session_id"] == session_id:
                return SessionInfo.from_json_dict(entry)
        raise KeyError(f"session {session_id} is not in the store at {self.path}")


def _write_parquet(table: pa.Table, path: Path) -> None:
    pq.write_table(table, path, **_PARQUET_OPTIONS)


def _write_json(path: Path, data: object) -> None:
    """Write JSON through a temporary file and ``os.replace``: readers see old or new."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    with open(tmp, "w") as fh:
        json.dump(data, fh, indent=1, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _fsync_dir(directory: Path) -> None:
    for child in directory.iterdir():
        with open(child, "rb") as fh:
            os.fsync(fh.fileno())
