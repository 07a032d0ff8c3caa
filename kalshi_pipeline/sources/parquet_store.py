"""The embedded default session source: raw sessions as Parquet files on local disk.

Layout under the store's root::

    catalog.json                      {"sessions": one SessionInfo per session, sorted by
                                       id, "sha256": the SHA-256 of those entries}
    .lock                             locked (flock) by every write
    session-<id>/metadata.json        that session's SessionInfo
    session-<id>/snapshots.parquet    SNAPSHOT_SCHEMA, with Parquet page checksums
    session-<id>/deltas.parquet       DELTA_SCHEMA, with Parquet page checksums
    session-<id>/trades.parquet       TRADE_SCHEMA, only for a session with a trade tape
    session-<id>/digests.json         the SHA-256 of each of the files above

The store never loses a session and never returns one silently changed:

- **A stored session is never overwritten.** ``write_session`` of a session already
  stored does nothing if the content (info, both tables and the tape) is the same, and raises
  :class:`SessionExists` if it differs. ``write_session(..., replace=True)`` swaps the new
  version in instead; it is only for derived copies that can be made again (the
  pipeline's own normalised copy of an ingested session), never for the store of record.
- **Writes are atomic and one at a time.** A write holds an exclusive ``flock`` on
  ``.lock`` from staging to catalog update, so writers in other processes never lose each
  other's catalog entries. A session is written into a hidden ``.tmp-*`` directory and
  renamed into place; a replaced version is first moved aside to ``.old-*`` and deleted
  once the catalog describes the new one; the catalog is replaced through a
  ``.catalog.json.*`` temporary and ``os.replace``. A writer killed mid-write leaves
  only such hidden leftovers, which the next writer clears with the lock held (so never
  a live writer's): staging is deleted, a moved-aside version whose replacement never
  arrived is put back, and a session renamed into place before its catalog entry was
  written gets its entry. Writing the same session into two stores gives byte-identical
  files.
- **The catalog can always be rebuilt** from the session directories
  (:meth:`ParquetSessionStore.rebuild_catalog`); the store does so itself when
  ``catalog.json`` is missing but sessions exist. A catalog that cannot be parsed or has
  the wrong shape raises :class:`StoreCorrupt` naming the file; it never reads as empty.
- **The catalog verifies itself.** The sensor and ``demo`` decide from ``list_sessions()``
  alone which sessions exist and are complete, so a flipped bit there (an environment,
  a ticker, an end time) would silently change what gets ingested. ``catalog.json``
  therefore holds, beside its entries, the SHA-256 of their canonical JSON (sorted keys,
  no whitespace); every read recomputes it, and a mismatch raises :class:`StoreCorrupt`
  naming the file and saying how to rebuild it. The digest is over the parsed entries,
  not the file's bytes, so it does not depend on layout. This is simpler than checking
  each entry against its session's metadata.json, which would make listing read every
  session directory. A catalog written by earlier versions is a bare list of entries:
  it is still read, unverified, so that existing stores keep working, and the next write
  or ``rebuild_catalog()`` replaces it with a verified one.
- **Corruption is detected on load.** ``digests.json`` lives beside the files it
  describes, so it survives a lost catalog, and ``load_session`` and ``open_session``
  check every file against it (a change to ``digests.json`` itself shows as a mismatch
  or as unreadable). A mismatch raises :class:`StoreCorrupt` naming the session and
  the file. Sessions written before digests existed have no ``digests.json``: they
  still load, unverified, so that existing stores keep working; write them into a new
  store to get digests. Sessions stored before trade tapes were kept have no
  ``trades.parquet`` and read ``trades=None``, as a session without a tape does; their
  files and digests are the same bytes as before.

Readers take no lock: they read a session's files through one descriptor of its
directory, so they see one version whole even while a writer swaps another in; only if
the directory moves under them do they wait for the writer's lock and read again.

A session too big to hold goes through a batch of rows at a time both ways:
``write_session`` takes any :class:`~kalshi_pipeline.sources.raw.SessionBatches` and
writes row groups of ``BATCH_ROWS`` rows, hashing as it writes; ``open_session`` gives the
stored session as one (its files hashed a block at a time, then read from the same open
files).

This module holds the store itself: its lock, its catalog kept in step with the session
directories, and the staging, swapping and clearing of leftovers.
:mod:`~kalshi_pipeline.sources.store_layout` names the files and encodes the two JSON
indexes, :mod:`~kalshi_pipeline.sources.store_writing` writes a session's files and
:mod:`~kalshi_pipeline.sources.store_reading` opens, verifies and decodes them.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import uuid
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from kalshi_pipeline.sources.fingerprint import TRADES, SessionFingerprint, parquet_extent
from kalshi_pipeline.sources.raw import (
    TABLES,
    RawSession,
    SessionBatches,
    SessionInfo,
    check_complete,
)
from kalshi_pipeline.sources.store_layout import (
    CATALOG,
    DIGESTS,
    LOCK,
    METADATA,
    TABLE_FILES,
    TRADES_FILE,
    SessionExists,
    StoreCorrupt,
    catalog_by_id,
    catalog_json,
    decoded,
    entries_digest,
    json_bytes,
    parse_catalog_file,
)
from kalshi_pipeline.sources.store_reading import (
    StoredSession,
    check_digests,
    decode_info,
    decode_session,
    digests_sha256,
    load_directory,
    open_directory,
)
from kalshi_pipeline.sources.store_writing import replace_file, write_session_files

__all__ = ["ParquetSessionStore", "SessionExists", "StoreCorrupt", "StoredSession"]

# The file of each table a fingerprint measures.
_EXTENT_FILES = {**dict(zip(TABLES, (n for n, _ in TABLE_FILES), strict=True)), TRADES: TRADES_FILE}


class ParquetSessionStore:
    """Read and write raw sessions in a local directory (created on first write)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def __repr__(self) -> str:
        return f"ParquetSessionStore({str(self.path)!r})"

    # -- reading -----------------------------------------------------------------------
    def list_sessions(self) -> list[SessionInfo]:
        """Every session in the catalog, active ones included (check ``is_complete``)."""
        return [SessionInfo.from_json(entry) for entry in self._catalog().values()]

    def load_session(self, session_id: int, *, allow_incomplete: bool = False) -> RawSession:
        """The raw session, verified; one still recording raises :class:`SessionNotComplete`."""
        self._check_listed(session_id)
        session = self._load(session_id)
        check_complete(session.info, allow_incomplete)
        return session

    @contextmanager
    def open_session(
        self, session_id: int, *, allow_incomplete: bool = False
    ) -> Iterator[StoredSession]:
        """The session to read a batch of rows at a time (a
        :class:`~kalshi_pipeline.sources.raw.SessionBatches`), for sessions too big to load.

        Its files are opened once, from one version of its directory, and verified against
        their digests by reading them through; every later batch comes from those same
        open files, so what is read is what was verified whatever a writer swaps in
        meanwhile. Only the batch being read is in memory. The files close on exit.
        """
        self._check_listed(session_id)
        with self._verified(session_id) as files:
            directory = self._session_dir(session_id)
            info = decode_info(session_id, directory, files[METADATA].read())
            check_complete(info, allow_incomplete)
            yield StoredSession(info, directory, files)

    def fingerprints(self, session_ids: Iterable[int]) -> dict[int, SessionFingerprint]:
        """The fingerprint of each stored session among ``session_ids``, by id, from its
        metadata and its files' footers (not verified: reading a session verifies it)."""
        listed = self._catalog()
        found = {}
        for session_id in sorted({int(i) for i in session_ids} & set(listed)):
            directory = self._session_dir(session_id)
            with self._verified(session_id, check=False) as files:
                info = decode_info(session_id, directory, files[METADATA].read())
                extents = {
                    table: decoded(f"session {session_id}", directory / name, parquet_extent,
                                   files[name])
                    for table, name in _EXTENT_FILES.items()
                    if files[name] is not None  # no trades.parquet: no tape
                }  # fmt: skip
            found[session_id] = SessionFingerprint.of(info, extents)
        return found

    def digests_sha256(self, session_id: int) -> str | None:
        """The SHA-256 of a stored session's ``digests.json``, read alone (the session's
        data is neither read nor verified): a cheap name for this copy of it, which what
        is built from it records. None for a session stored before digests; KeyError for
        one not stored."""
        self._check_listed(session_id)
        with self._verified(session_id, check=False) as files:
            return digests_sha256(files)

    # -- writing -----------------------------------------------------------------------
    def write_session(self, session: SessionBatches, *, replace: bool = False) -> Path:
        """Store one session atomically and add it to the catalog; returns its directory.

        The rows are written a batch at a time (row groups of ``BATCH_ROWS`` rows,
        whatever the batches' sizes), so a session read a batch at a time (a source's
        ``open_session``) is never held whole. A session already stored with the same
        content is left untouched; with different content it raises
        :class:`SessionExists`, unless ``replace=True`` (derived copies only, see the
        module docstring).
        """
        session_id = session.info.session_id
        final = self._session_dir(session_id)
        with self._lock():
            catalog = self._synced_catalog()
            retired = None
            staging = self.path / f".tmp-{session_id}-{uuid.uuid4().hex}"
            try:
                write_session_files(session, staging)
                if final.exists():
                    if self._holds(staging, session_id, replace=replace):
                        shutil.rmtree(staging)
                        return final
                    if not replace:
                        raise SessionExists(
                            f"session {session_id} is already stored at {final} with "
                            "different content; nothing was written. A store never "
                            "overwrites a session: write this one under a new session id, "
                            f"or, if the stored copy is known to be wrong, move {final} "
                            "out of the store first."
                        )
                    retired = self.path / f".old-{session_id}-{uuid.uuid4().hex}"
                    final.rename(retired)
                    try:
                        staging.rename(final)
                    except BaseException:
                        retired.rename(final)  # the catalog still describes this version
                        raise
                else:
                    staging.rename(final)
            except BaseException:
                shutil.rmtree(staging, ignore_errors=True)
                raise
            catalog[session_id] = session.info.to_json()
            self._write_catalog(catalog)
            if retired is not None:
                # The new version is in place and catalogued: a failure here loses nothing,
                # and what it leaves is cleared by the next write.
                shutil.rmtree(retired, ignore_errors=True)
        return final

    def rebuild_catalog(self) -> list[SessionInfo]:
        """Write catalog.json afresh from the session directories (each verified)."""
        with self._lock():
            catalog = self._synced_catalog(rebuild=True)
        return [SessionInfo.from_json(entry) for entry in catalog.values()]

    # -- internals ---------------------------------------------------------------------
    def _session_dir(self, session_id: int) -> Path:
        return self.path / f"session-{int(session_id)}"

    def _session_ids_on_disk(self) -> list[int]:
        if not self.path.is_dir():
            return []
        names = (p.name.removeprefix("session-") for p in self.path.glob("session-*"))
        return sorted(int(name) for name in names if name.isdigit())

    @contextmanager
    def _lock(self) -> Iterator[None]:
        """Hold the store's write lock (the kernel releases it if the process dies)."""
        self.path.mkdir(parents=True, exist_ok=True)
        with open(self.path / LOCK, "a") as fh:
            fcntl.flock(fh, fcntl.LOCK_EX)
            yield

    def _catalog(self) -> dict[int, dict]:
        """The catalog by session id; rebuilt if missing while session directories exist."""
        catalog = self._read_catalog()
        if catalog is None and self._session_ids_on_disk():
            with self._lock():
                catalog = self._synced_catalog()
        return catalog or {}

    def _read_catalog(self) -> dict[int, dict] | None:
        """catalog.json by session id, verified against its digest; None if there is none."""
        path = self.path / CATALOG
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            return None
        hint = f" (rebuild it from the session directories: {self!r}.rebuild_catalog())"
        entries, recorded = decoded("the catalog", path, parse_catalog_file, raw, hint)
        if recorded is not None:  # None: a bare list from earlier versions (module docstring)
            actual = entries_digest(entries)
            if actual != recorded:
                raise StoreCorrupt(
                    f"the catalog: {path} is corrupt: the SHA-256 of its entries {actual} "
                    f"differs from {recorded} recorded in it{hint}"
                )
        return decoded("the catalog", path, catalog_by_id, entries, hint)

    def _write_catalog(self, catalog: dict[int, dict]) -> None:
        replace_file(self.path / CATALOG, json_bytes(catalog_json(catalog)))

    def _synced_catalog(self, *, rebuild: bool = False) -> dict[int, dict]:
        """The catalog made to agree with the session directories; hold the lock to call.

        Clears what killed writers left (module docstring), then takes the entry of each
        session directory the catalog lacks, or whose replacement was interrupted, from
        its own verified metadata.json; ``rebuild`` does so for every directory.
        """
        interrupted = self._clear_leftovers()
        catalog = {} if rebuild else (self._read_catalog() or {})
        before = dict(catalog)
        for session_id in self._session_ids_on_disk():
            if session_id not in catalog or session_id in interrupted:
                with self._verified(session_id, locked=True) as files:
                    directory = self._session_dir(session_id)
                    info = decode_info(session_id, directory, files[METADATA].read())
                catalog[session_id] = info.to_json()
        if rebuild or catalog != before:
            self._write_catalog(catalog)
        return {key: catalog[key] for key in sorted(catalog)}

    def _clear_leftovers(self) -> set[int]:
        """Remove dead writers' temporaries; the ids whose replacement was interrupted.

        Only called with the lock held: no live writer owns any of these then.
        """
        interrupted = set()
        for retired in self.path.glob(".old-*"):
            session_id = int(retired.name.split("-")[1])
            final = self._session_dir(session_id)
            if final.exists():
                shutil.rmtree(retired)
            else:  # killed between its two renames: the previous version stays
                retired.rename(final)
            interrupted.add(session_id)
        for staging in self.path.glob(".tmp-*"):
            shutil.rmtree(staging)
        for temporary in self.path.glob(f".{CATALOG}.*"):
            temporary.unlink()
        return interrupted

    @contextmanager
    def _verified(
        self, session_id: int, *, locked: bool = False, check: bool = True
    ) -> Iterator[dict[str, BinaryIO]]:
        """The session's files, open, from one version of its directory and checked
        against its digests (unless not ``check``); closed on exit."""
        directory = self._session_dir(session_id)
        files = open_directory(directory)
        if files is None and not locked:
            # Moved while we opened it (a writer swapping versions, or one killed mid-swap):
            # wait for the lock, which also finishes a dead writer's swap, and open again.
            with self._lock():
                self._synced_catalog()
                files = open_directory(directory)
        if files is None:
            raise StoreCorrupt(f"session {session_id}: its directory {directory} is missing")
        try:
            if check:
                check_digests(session_id, directory, files)
            yield files
        finally:
            for fh in files.values():
                if fh is not None:
                    fh.close()

    def _check_listed(self, session_id: int) -> None:
        if session_id not in self._catalog():
            raise KeyError(f"session {session_id} is not in the store at {self.path}")

    def _load(self, session_id: int, *, locked: bool = False) -> RawSession:
        with self._verified(session_id, locked=locked) as files:
            return decode_session(session_id, self._session_dir(session_id), files)

    def _holds(self, staging: Path, session_id: int, *, replace: bool) -> bool:
        """Whether the stored copy of this session has the content just written to
        ``staging`` (hold the lock). The same rows written the same way give the same
        bytes, so equal digests settle it; otherwise a derived copy is replaced, and a
        session of record is compared row by row (it may be in an earlier layout)."""
        try:
            with self._verified(session_id, locked=True) as files:
                stored = files[DIGESTS].read() if files[DIGESTS] is not None else None
        except StoreCorrupt:
            if replace:  # a broken derived copy is simply made again
                return False
            raise
        if stored == (staging / DIGESTS).read_bytes():
            return True
        if replace:
            return False
        old, new = self._load(session_id, locked=True), load_directory(session_id, staging)
        same_tape = (old.trades is None) == (new.trades is None) and (
            old.trades is None or old.trades.equals(new.trades)
        )
        return (
            old.info == new.info
            and same_tape
            and all(getattr(old, table).equals(getattr(new, table)) for table in TABLES)
        )
