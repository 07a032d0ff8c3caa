"""Writing a session's files into a store directory: fsynced, hashed as they are written.

:func:`write_session_files` writes ``metadata.json``, the two Parquet tables (row groups
of ``BATCH_ROWS`` rows, so the bytes depend on the rows only, not on how they were
batched), the trade tape where there is one (``trades.parquet``; none for
``trades=None``, a file of no rows for an empty tape) and ``digests.json`` of the bytes
meant; :func:`replace_file` swaps a file
atomically. Where and when they are called (staging, locking, renaming into place) is
:class:`~kalshi_pipeline.sources.parquet_store.ParquetSessionStore`'s job.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from collections.abc import Iterable
from pathlib import Path
from typing import BinaryIO

import pyarrow as pa
import pyarrow.parquet as pq

from kalshi_pipeline.sources.raw import BATCH_ROWS, TABLES, SessionBatches
from kalshi_pipeline.sources.store_layout import (
    DIGESTS,
    METADATA,
    PARQUET_OPTIONS,
    TABLE_FILES,
    TRADES_FILE,
    digests_json,
    json_bytes,
)
from kalshi_pipeline.sources.trades import TRADE_SCHEMA


def write_session_files(session: SessionBatches, directory: Path) -> None:
    """The session's files plus digests.json of the bytes meant, not of what reads back."""
    directory.mkdir()
    digests = {METADATA: write_file(directory / METADATA, json_bytes(session.info.to_json()))}
    for (name, schema), table in zip(TABLE_FILES, TABLES, strict=True):
        digests[name] = write_parquet(directory / name, schema, session.batches(table))
    if session.trades is not None:
        trades = session.trades.to_batches(max_chunksize=BATCH_ROWS)
        digests[TRADES_FILE] = write_parquet(directory / TRADES_FILE, TRADE_SCHEMA, trades)
    write_file(directory / DIGESTS, json_bytes(digests_json(digests)))


def write_parquet(path: Path, schema: pa.Schema, batches: Iterable[pa.RecordBatch]) -> str:
    """Write ``batches`` as row groups of ``BATCH_ROWS`` rows (so the bytes depend on the
    rows only, not on how they were batched) and fsync; returns the SHA-256 of the bytes
    written."""
    # The writer is closed before its file even when reading the batches fails (the
    # staged files are then discarded), so it never writes to a closed file later.
    with open(path, "wb") as fh:
        sink = _HashingSink(fh)
        with pq.ParquetWriter(pa.PythonFile(sink, mode="w"), schema, **PARQUET_OPTIONS) as writer:
            pending: list[pa.RecordBatch] = []
            rows = 0
            for batch in batches:
                pending.append(batch)
                rows += batch.num_rows
                while rows >= BATCH_ROWS:
                    table = pa.Table.from_batches(pending, schema)
                    writer.write_table(table.slice(0, BATCH_ROWS), row_group_size=BATCH_ROWS)
                    rest = table.slice(BATCH_ROWS)
                    pending, rows = rest.to_batches(), rest.num_rows
            if rows:
                writer.write_table(pa.Table.from_batches(pending, schema))
        fh.flush()
        os.fsync(fh.fileno())
    return sink.hexdigest()


class _HashingSink:
    """A binary file that hashes what is written through it."""

    closed = False

    def __init__(self, fh: BinaryIO) -> None:
        self._fh, self._hash, self._size = fh, hashlib.sha256(), 0

    def write(self, data: bytes) -> int:
        self._hash.update(data)
        self._size += len(data)
        return self._fh.write(data)

    def tell(self) -> int:
        return self._size

    def flush(self) -> None:
        self._fh.flush()

    def close(self) -> None:
        pass  # the file is the caller's to close

    def writable(self) -> bool:
        return True

    def hexdigest(self) -> str:
        return self._hash.hexdigest()


def write_file(path: Path, data: bytes) -> str:
    """Write and fsync ``data``; returns its SHA-256."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return hashlib.sha256(data).hexdigest()


def replace_file(path: Path, data: bytes) -> None:
    """Write through a temporary file and ``os.replace``: readers see old or new."""
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}")
    write_file(tmp, data)
    os.replace(tmp, path)
