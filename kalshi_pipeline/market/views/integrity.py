"""What makes a views file trusted: its session, the raw copy it was built from, two digests.

Views are derived data, read back by every training step, so a file that is not what was
written must never be used: a bit flipped on disk would change prices silently, and a
file copied over another session's would make one session vanish and another count
twice. A views file (:mod:`.parquet`) therefore carries in its footer, beside the views'
descriptions, the key :data:`CHECK_KEY` with ``{"session_id", "raw_sha256", "data_sha256",
"sha256"}``:

- ``session_id``: the one session whose views the file holds (a file holds one session);
- ``raw_sha256``: what the views were built from: the SHA-256 of the ``digests.json`` of
  the raw copy of the session they were built from (the home's own normalised copy,
  ``artifacts/raw/session-<id>``), or null for a raw copy stored without digests. Session
  ids are only unique within one collector, so a views file of the same session id from
  another home (ingested from another collector, or from the same collector before the
  session changed) would otherwise pass every other check. The pipeline's readers pass
  their home's raw copy as ``built_from`` (:class:`RawCopy`: the SHA-256 of its
  ``digests.json``, one small JSON file hashed per session read, never the data); a file
  built from another raw copy raises :class:`ViewsDamaged` saying so
  (:func:`check_built_from`). A raw copy without ``digests.json`` (stored before the raw
  store kept digests) is ``RawCopy(None)``: only views that recorded null match it, so a
  copy that lost its ``digests.json`` refuses views built from one that had it, but two
  such copies cannot be told apart (the raw store reads them unverified too). A home with
  no raw copy of the session at all cannot tell what its views were built from, and
  refuses them. A session ingested again has a new raw copy before ``market_views``
  rebuilds its views: in between, its views are refused too;
- ``data_sha256``: the SHA-256 of every view's step arrays, in file order, each in its
  dtype, little-endian (:class:`DataDigest`), followed, for a view of a session with a
  trade tape, by its trade arrays (a view without a tape hashes as views always did),
  computed as the batches are written and recomputed from the views read back, so it
  covers what training uses, not the file's layout;
- ``sha256``: the SHA-256 of the session id, ``raw_sha256``, ``data_sha256`` and the
  descriptions' bytes as stored (:func:`footer_digest`), so the small footer-only read
  (:func:`~.parquet.view_descriptions`) is verified without reading the step data.

Parquet's own page checksums are written too, so most damage to the step data is caught
while decoding. A reader passes the session it expects; a file of another session, a
digest that does not match, a footer that cannot be parsed, a file written before
views carried digests (no :data:`CHECK_KEY`) or before they recorded their raw copy (no
``raw_sha256``: written by an earlier build of this same release, and as untrusted as a
file without digests) raises :class:`ViewsDamaged`, naming the file and saying how to
build the views again from the session's raw copy. Nothing is read from such a file, and
it is never repaired in place: views are rebuilt by the step that writes them
(``market_views``).

A file's ``version`` is its footer's digest (:class:`Footer`). A reader that reads a
session's views in several steps (a training run: statistics first, then each phase, the
evaluation) pins the version it first read and passes it to every later read; a file
replaced in between (its session ingested again) raises :class:`ViewsChanged` instead of
mixing two versions of the session in one run.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import NamedTuple

import numpy as np

from kalshi_pipeline.market.views.market_view import STEP_ARRAYS, TRADE_ARRAYS, MarketSessionView

CHECK_KEY = b"kalshi_pipeline.views.check"
# The longest reason quoted from a reader's exception (pyarrow's can run to pages).
_MAX_REASON = 200


class ViewsDamaged(ValueError):
    """A views file that is not what was written for the session asked for."""

    def __init__(self, path: Path, session_id: int | None, reason: str) -> None:
        whose = f"session {session_id}'s" if session_id is not None else "these"
        todo = f"build {whose} views again from its raw copy" + (
            f": materialise the market_views partition {session_id} again"
            if session_id is not None
            else ""
        )
        super().__init__(f"views file {path} is not used: {reason} ({todo})")
        self.path, self.session_id, self.reason = path, session_id, reason


class DataDigest:
    """The SHA-256 of views' step arrays (and trade arrays, where a view has a tape),
    fed a batch of views at a time."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()

    def update(self, views: Iterable[MarketSessionView]) -> None:
        for view in views:
            arrays = STEP_ARRAYS | (TRADE_ARRAYS if view.trade_tape else {})
            for name, dtype in arrays.items():
                array = np.ascontiguousarray(getattr(view, name), np.dtype(dtype).newbyteorder("<"))
                self._hash.update(array.tobytes())

    def hexdigest(self) -> str:
        return self._hash.hexdigest()

    @classmethod
    def of(cls, views: Iterable[MarketSessionView]) -> str:
        digest = cls()
        digest.update(views)
        return digest.hexdigest()


def footer_digest(
    session_id: int | None, data_sha256: str, described: bytes, raw_sha256: str | None
) -> str:
    """The SHA-256 over the session id, the raw copy's and the data's digests and the
    descriptions' bytes."""
    head = {"session_id": session_id, "raw_sha256": raw_sha256, "data_sha256": data_sha256}
    return hashlib.sha256(json.dumps(head, sort_keys=True).encode() + b"\n" + described).hexdigest()


def check_entry(
    session_id: int | None, data_sha256: str, described: bytes, raw_sha256: str | None = None
) -> bytes:
    """The footer value stored under :data:`CHECK_KEY` (``raw_sha256``: the SHA-256 of the
    ``digests.json`` of the raw copy the views were built from, if any)."""
    entry = {
        "session_id": session_id,
        "raw_sha256": raw_sha256,
        "data_sha256": data_sha256,
        "sha256": footer_digest(session_id, data_sha256, described, raw_sha256),
    }
    return json.dumps(entry, sort_keys=True).encode()


class ViewsChanged(ValueError):
    """A views file that is no longer the version a reader pinned: the file was replaced
    (its session built again) since the reader's earlier read of it."""

    def __init__(self, path: Path, session_id: int | None, pinned: str, found: str) -> None:
        super().__init__(
            f"views file {path} changed since it was first read: session {session_id}'s "
            f"views are now version {found[:12]}, not {pinned[:12]}"
        )
        self.path, self.session_id, self.pinned, self.found = path, session_id, pinned, found


class Footer(NamedTuple):
    """A views file's verified footer: its views' descriptions, the digest of their step
    data, and its ``version``: the footer's own digest, which covers the session, the raw
    copy it was built from, the descriptions and the data's digest, so any rebuild that
    changes what a reader gets changes it (and a rebuild that changes nothing keeps it);
    ``raw_sha256``: the SHA-256 of the raw copy's ``digests.json`` (None: one without)."""

    descriptions: list[dict]
    data_sha256: str
    version: str
    raw_sha256: str | None = None


def verified_footer(
    path: Path, metadata: Mapping[bytes, bytes] | None, descriptions_key: bytes,
    expected_session: int | None,
) -> Footer:  # fmt: skip
    """A views file's footer, once its session and its digest are checked (and every
    view described in it is of that session); else :class:`ViewsDamaged`."""
    metadata = metadata or {}
    raw_check, described = metadata.get(CHECK_KEY), metadata.get(descriptions_key)
    if raw_check is None:
        raise ViewsDamaged(
            path, expected_session, "it has no digest (written before views carried one)"
        )
    try:
        check = json.loads(raw_check)
        session, data_sha256, sha256 = check["session_id"], check["data_sha256"], check["sha256"]
    except (ValueError, TypeError, KeyError):
        raise ViewsDamaged(path, expected_session, "its digest cannot be parsed") from None
    if "raw_sha256" not in check:
        raise ViewsDamaged(
            path,
            expected_session,
            "it does not record the raw copy it was built from (written before views did)",
        )
    raw_sha256 = check["raw_sha256"]
    if described is None or footer_digest(session, data_sha256, described, raw_sha256) != sha256:
        raise ViewsDamaged(
            path, expected_session, "its footer (the views' descriptions) does not match its digest"
        )
    if expected_session is not None and session != expected_session:
        raise ViewsDamaged(
            path,
            expected_session,
            f"it holds the views of session {session}, not of session {expected_session}",
        )
    descriptions = json.loads(described)
    others = {d.get("session_id") for d in descriptions} - {session}
    if others:  # written by hand: write_view_batches refuses a view of another session
        raise ViewsDamaged(
            path,
            expected_session,
            f"it describes views of sessions {sorted(others, key=str)!r} too",
        )
    return Footer(descriptions, data_sha256, sha256, raw_sha256)


class RawCopy(NamedTuple):
    """The raw copy of a session a reader's views must have been built from: the SHA-256
    of its ``digests.json``, or None for a copy stored without one."""

    sha256: str | None

    def describe(self) -> str:
        return self.sha256[:12] if self.sha256 else "none (a raw copy without digests.json)"


def check_built_from(
    path: Path, session_id: int | None, footer: Footer, built_from: RawCopy
) -> None:
    """Raise :class:`ViewsDamaged` unless the file was built from the raw copy
    ``built_from`` (the reader's home's copy of the session)."""
    if footer.raw_sha256 != built_from.sha256:
        raise ViewsDamaged(
            path,
            session_id,
            f"it was built from another raw copy of session {session_id} (raw digests "
            f"{RawCopy(footer.raw_sha256).describe()}, not {built_from.describe()} as this "
            "home's raw copy): another home's or an earlier ingest's views",
        )


def unreadable(path: Path, session_id: int | None, exc: BaseException) -> ViewsDamaged:
    """The :class:`ViewsDamaged` for a file the Parquet reader could not decode."""
    detail = " ".join(f"{type(exc).__name__}: {exc}".split())
    if len(detail) > _MAX_REASON:
        detail = detail[: _MAX_REASON - 3] + "..."
    return ViewsDamaged(path, session_id, f"it cannot be decoded ({detail})")
