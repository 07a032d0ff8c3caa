"""Reading a stored session's files: opened from one version of its directory, checked
against its digests, decoded.

:func:`open_directory` opens every file of a session directory through one descriptor of
it, so all come from the same version even while a writer swaps another in;
:func:`check_digests` verifies them against ``digests.json``; :func:`decode_session`
decodes them into a :class:`~kalshi_pipeline.sources.raw.RawSession`, and
:class:`StoredSession` reads them a batch of rows at a time. The trade tape
(``trades.parquet``) is optional: a session without it reads ``trades=None``; one with it
must have it in ``digests.json`` (where there is one) and match. Any file that cannot be
decoded raises :class:`~kalshi_pipeline.sources.store_layout.StoreCorrupt` naming it.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from kalshi_pipeline.sources.raw import (
    BATCH_ROWS,
    TABLES,
    RawSession,
    SessionInfo,
)
from kalshi_pipeline.sources.store_layout import (
    DIGESTS,
    METADATA,
    SESSION_FILES,
    TABLE_FILES,
    TRADES_FILE,
    UNREADABLE,
    StoreCorrupt,
    decoded,
    parse_digests,
)
from kalshi_pipeline.sources.trades import TRADE_SCHEMA


def open_directory(directory: Path) -> dict[str, BinaryIO | None] | None:
    """Every session file opened (None if absent), or None if the directory moved under us.

    Files are opened relative to one descriptor of the directory, so all come from the
    same version; a file missing from a version that has since been swapped out means
    the writer deleted it, not that it was never there.
    """
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except FileNotFoundError:
        return None
    try:
        files = {name: _open_at(fd, name) for name in (*SESSION_FILES, TRADES_FILE, DIGESTS)}
        if None in files.values():
            try:
                live = os.stat(directory)
            except FileNotFoundError:
                live = None
            here = os.fstat(fd)
            if live is None or (live.st_dev, live.st_ino) != (here.st_dev, here.st_ino):
                for fh in files.values():
                    if fh is not None:
                        fh.close()
                return None
        return files
    finally:
        os.close(fd)


def _open_at(directory_fd: int, name: str) -> BinaryIO | None:
    try:
        fd = os.open(name, os.O_RDONLY, dir_fd=directory_fd)
    except FileNotFoundError:
        return None
    return open(fd, "rb")


def check_digests(session_id: int, directory: Path, files: dict[str, BinaryIO | None]) -> None:
    """Raise unless every file is present and matches digests.json (if there is one): the
    trade tape is there exactly when digests.json records one.

    The files are read through to hash them, a block at a time, and left at their start.
    """
    for name in SESSION_FILES:
        if files[name] is None:
            raise StoreCorrupt(f"session {session_id}: {directory / name} is missing")
    if files[DIGESTS] is None:
        return  # written before digests existed: loads unverified (module docstring)
    recorded = decoded(
        f"session {session_id}", directory / DIGESTS, parse_digests, files[DIGESTS].read()
    )
    files[DIGESTS].seek(0)
    has_tape, records_tape = files.get(TRADES_FILE) is not None, TRADES_FILE in recorded
    if has_tape != records_tape:
        why = "is missing" if records_tape else f"is not recorded in {directory / DIGESTS}"
        raise StoreCorrupt(f"session {session_id}: {directory / TRADES_FILE} {why}")
    for name in recorded:
        actual = hashlib.file_digest(files[name], "sha256").hexdigest()
        files[name].seek(0)
        if actual != recorded[name]:
            raise StoreCorrupt(
                f"session {session_id}: {directory / name} is corrupt: its SHA-256 {actual} "
                f"differs from {recorded[name]} recorded in {directory / DIGESTS}"
            )


def digests_sha256(files: dict[str, BinaryIO | None]) -> str | None:
    """The SHA-256 of an open session's ``digests.json`` (None if it has none), read from
    its start and left there."""
    handle = files[DIGESTS]
    if handle is None:
        return None
    handle.seek(0)
    digest = hashlib.sha256(handle.read()).hexdigest()
    handle.seek(0)
    return digest


def decode_session(
    session_id: int, directory: Path, files: dict[str, BinaryIO | None]
) -> RawSession:
    info = decode_info(session_id, directory, files[METADATA].read())
    where = f"session {session_id}"
    tables = [
        decoded(where, directory / name, _table(schema), files[name].read())
        for name, schema in TABLE_FILES
    ]
    return RawSession(info, *tables, trades=decode_trades(session_id, directory, files))


def decode_trades(
    session_id: int, directory: Path, files: dict[str, BinaryIO | None]
) -> pa.Table | None:
    """The session's trade tape, None if it has no ``trades.parquet``; read from the file's
    start and left at its end."""
    handle = files.get(TRADES_FILE)
    if handle is None:
        return None
    handle.seek(0)
    path = directory / TRADES_FILE
    return decoded(f"session {session_id}", path, _table(TRADE_SCHEMA), handle.read())


def load_directory(session_id: int, directory: Path) -> RawSession:
    """A session's files in ``directory`` (written by this process: not verified)."""
    names = [*SESSION_FILES, *([TRADES_FILE] if (directory / TRADES_FILE).exists() else [])]
    files = {name: open(directory / name, "rb") for name in names}  # noqa: SIM115
    try:
        return decode_session(session_id, directory, files)
    finally:
        for fh in files.values():
            fh.close()


def decode_info(session_id: int, directory: Path, raw: bytes) -> SessionInfo:
    path = directory / METADATA
    info = decoded(f"session {session_id}", path, _parse_info, raw)
    if info.session_id != session_id:
        raise StoreCorrupt(f"session {session_id}: {path} describes session {info.session_id}")
    return info


def _parse_info(raw: bytes) -> SessionInfo:
    data = json.loads(raw)
    if not isinstance(data, dict):
        raise ValueError(f"expected an object, got {type(data).__name__}")
    return SessionInfo.from_json(data)


def _table(schema: pa.Schema) -> Callable[[bytes], pa.Table]:
    def read(raw: bytes) -> pa.Table:
        table = pq.read_table(pa.BufferReader(raw), schema=schema, page_checksum_verification=True)
        return table.combine_chunks()

    return read


class StoredSession:
    """One verified stored session, read a batch of rows at a time (its files stay open
    while :meth:`ParquetSessionStore.open_session` holds them); ``trades`` is its whole
    trade tape, read on opening (None if it has none)."""

    def __init__(self, info: SessionInfo, directory: Path, files: dict[str, BinaryIO]) -> None:
        self.info = info
        self._directory = directory
        self._files = files
        self.trades = decode_trades(info.session_id, directory, files)

    @property
    def num_events(self) -> int:
        """Rows of both tables, from the files' footers."""
        return sum(self.rows(table) for table in TABLES)

    def rows(self, table: str) -> int:
        """Rows of ``table`` (``"snapshots"`` or ``"deltas"``), from its file's footer."""
        return self._parquet(table)[1].metadata.num_rows

    @property
    def digests_sha256(self) -> str | None:
        """The SHA-256 of this version's ``digests.json`` (None if it has none): a cheap
        name for this copy of the session, which what is built from it records."""
        return digests_sha256(self._files)

    def batches(self, table: str, columns: Sequence[str] | None = None) -> Iterator[pa.RecordBatch]:
        """The rows of ``table`` (``"snapshots"`` or ``"deltas"``) in storage order, in
        batches of ``BATCH_ROWS``; a file that cannot be decoded raises
        :class:`StoreCorrupt` naming it."""
        path, file = self._parquet(table)
        try:
            yield from file.iter_batches(batch_size=BATCH_ROWS, columns=columns)
        except UNREADABLE as exc:
            where = f"session {self.info.session_id}"
            raise StoreCorrupt(f"{where}: {path} cannot be read: {exc}") from exc

    def _parquet(self, table: str) -> tuple[Path, pq.ParquetFile]:
        name, schema = dict(zip(TABLES, TABLE_FILES, strict=True))[table]
        path = self._directory / name
        fh = self._files[name]
        fh.seek(0)

        def open_file(fh: BinaryIO) -> pq.ParquetFile:
            file = pq.ParquetFile(fh, page_checksum_verification=True)
            if not file.schema_arrow.equals(schema):
                raise ValueError(f"its schema is not {name}'s:\n{file.schema_arrow}")
            return file

        return path, decoded(f"session {self.info.session_id}", path, open_file, fh)
