"""The Parquet store's layout on disk and the formats of its two JSON indexes.

Names the files of a store (``catalog.json``, ``.lock``, each ``session-<id>/``'s four
files and its trade tape's, where it has one), the errors the store raises, and how
``catalog.json`` and ``digests.json`` are encoded, decoded and checked. The layout and its
guarantees are described in :mod:`kalshi_pipeline.sources.parquet_store`; the reading and
the writing of session files are in :mod:`~kalshi_pipeline.sources.store_reading` and
:mod:`~kalshi_pipeline.sources.store_writing`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import pyarrow as pa

from kalshi_pipeline.sources.raw import DELTA_SCHEMA, SNAPSHOT_SCHEMA, SessionInfo

CATALOG = "catalog.json"
LOCK = ".lock"
METADATA, SNAPSHOTS, DELTAS = "metadata.json", "snapshots.parquet", "deltas.parquet"
DIGESTS = "digests.json"
SESSION_FILES = (METADATA, SNAPSHOTS, DELTAS)  # the files digests.json always covers
# The trade tape (TRADE_SCHEMA): only in a session that has one, and then in digests.json
# too. A session without it (no tape, or stored before tapes were kept) reads trades=None.
TRADES_FILE = "trades.parquet"
# The file and schema of each raw table, in the order of raw.TABLES.
TABLE_FILES = ((SNAPSHOTS, SNAPSHOT_SCHEMA), (DELTAS, DELTA_SCHEMA))
PARQUET_OPTIONS = {"compression": "zstd", "write_statistics": True, "write_page_checksum": True}

# What decoding a damaged file can raise; each becomes StoreCorrupt naming the file.
UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, OSError, pa.ArrowException)

T = TypeVar("T")
D = TypeVar("D")


class SessionExists(FileExistsError):
    """A different version of this session is already stored; the store never overwrites it."""


class StoreCorrupt(ValueError):
    """A store file that is missing, unreadable, or not what was written."""


def decoded(where: str, path: Path, decode: Callable[[D], T], data: D, hint: str = "") -> T:
    """``decode(data)``, any failure raised as :class:`StoreCorrupt` naming the file."""
    try:
        return decode(data)
    except UNREADABLE as exc:
        raise StoreCorrupt(f"{where}: {path} cannot be read: {exc}{hint}") from exc


def json_bytes(data: object) -> bytes:
    """The bytes of every JSON file the store writes (sorted keys: same data, same bytes)."""
    return (json.dumps(data, indent=1, sort_keys=True) + "\n").encode()


# -- digests.json ------------------------------------------------------------------------
def digests_json(digests: dict[str, str]) -> dict[str, dict[str, str]]:
    """digests.json's content for the SHA-256 of each session file."""
    return {"sha256": digests}


def parse_digests(raw: bytes) -> dict[str, str]:
    """The SHA-256 of each session file recorded in digests.json's bytes ``raw``: every one
    of :data:`SESSION_FILES`, and :data:`TRADES_FILE` where the session has a tape."""
    data = json.loads(raw)
    digests = data.get("sha256") if isinstance(data, dict) else None
    if not (
        isinstance(digests, dict)
        and sorted(set(digests) - {TRADES_FILE}) == sorted(SESSION_FILES)
        and all(isinstance(value, str) for value in digests.values())
    ):
        raise ValueError(
            f'expected {{"sha256": {{file: hex digest}}}} for {SESSION_FILES}'
            f" (and {TRADES_FILE} if the session has a trade tape)"
        )
    return digests


# -- catalog.json ------------------------------------------------------------------------
def catalog_json(catalog: dict[int, dict]) -> dict:
    """catalog.json's content: the entries by session id and the SHA-256 of them."""
    entries = [catalog[key] for key in sorted(catalog)]
    return {"sessions": entries, "sha256": entries_digest(entries)}


def entries_digest(entries: list) -> str:
    """SHA-256 of the catalog entries' canonical JSON (independent of the file's layout)."""
    canonical = json.dumps(entries, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(canonical.encode()).hexdigest()


def parse_catalog_file(raw: bytes) -> tuple[list, str | None]:
    """The entries and their recorded SHA-256 (None for an earlier version's bare list)."""
    data = json.loads(raw)
    if isinstance(data, list):
        return data, None
    if not (
        isinstance(data, dict)
        and sorted(data) == ["sessions", "sha256"]
        and isinstance(data["sessions"], list)
        and isinstance(data["sha256"], str)
    ):
        got = sorted(data) if isinstance(data, dict) else type(data).__name__
        raise ValueError(f'expected {{"sessions": [...], "sha256": hex digest}}, got {got}')
    return data["sessions"], data["sha256"]


def catalog_by_id(entries: list) -> dict[int, dict]:
    """The catalog's entries by session id; raises ValueError on one that is not a
    session's, or repeats an id."""
    catalog: dict[int, dict] = {}
    for position, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ValueError(f"entry {position} is a {type(entry).__name__}, not an object")
        try:
            session_id = SessionInfo.from_json(entry).session_id
        except (TypeError, ValueError) as exc:
            raise ValueError(f"entry {position}: {exc}") from None
        if not isinstance(session_id, int) or session_id in catalog:
            raise ValueError(f"entry {position}: session_id {session_id!r} is not a new integer")
        catalog[session_id] = entry
    return catalog
