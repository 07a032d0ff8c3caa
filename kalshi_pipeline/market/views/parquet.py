"""Views on disk: a lossless, verified Parquet round trip.

:func:`write_views` and :func:`write_view_batches` write one session's views, one row per
step (2-D step arrays as fixed-size lists; where the session has a trade tape, each step's
trades as lists, one column per trade array), atomically (a temporary file, then a rename),
with every view's description (its statistics and feature layout,
:meth:`~.market_view.MarketSessionView.describe`), the session id, the SHA-256 of the raw
copy it was built from and two SHA-256 digests in the file's metadata (:mod:`.integrity`);
:func:`read_views` reads them back equal, and :func:`view_descriptions` reads only the
descriptions, from the footer. Both verify what they read, and check the session and the
raw copy when the caller names them (``session_id``, ``built_from``): a file that is
damaged, of another session, built from another raw copy of it, or older than the digests
raises :class:`~.integrity.ViewsDamaged`, naming the file; nothing from it is returned.
:func:`views_footer` gives the descriptions with the file's version, and :func:`read_views`
given that version refuses a file replaced since (:class:`~.integrity.ViewsChanged`).
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from kalshi_pipeline.market.books import TOP_LEVELS
from kalshi_pipeline.market.features import NUM_FEATURES
from kalshi_pipeline.market.views.integrity import (
    CHECK_KEY,
    DataDigest,
    Footer,
    RawCopy,
    ViewsChanged,
    ViewsDamaged,
    check_built_from,
    check_entry,
    unreadable,
    verified_footer,
)
from kalshi_pipeline.market.views.market_view import (
    STATISTICS,
    STEP_ARRAYS,
    TRADE_ARRAYS,
    MarketSessionView,
)

_METADATA_KEY = b"kalshi_pipeline.views"


def views_to_table(views: list[MarketSessionView]) -> pa.Table:
    """One row per step of every view (the statistics go into the file's metadata)."""
    counts = [len(v) for v in views]
    columns: dict[str, pa.Array] = {
        "session_id": pa.array(np.repeat([v.session_id for v in views], counts), pa.int64()),
        "market_ticker": pa.array(
            np.repeat(np.array([v.market_ticker for v in views], dtype=object), counts),
            pa.string(),
        ).dictionary_encode(),
    }
    for name, dtype in STEP_ARRAYS.items():
        stacked = (
            np.concatenate([getattr(v, name) for v in views])
            if views
            else np.zeros((0, _width(name)) if _width(name) else 0, dtype=dtype)
        )
        if stacked.ndim == 2:
            flat = pa.array(stacked.astype(dtype, copy=False).ravel())
            columns[name] = pa.FixedSizeListArray.from_arrays(flat, stacked.shape[1])
        else:
            columns[name] = pa.array(stacked.astype(dtype, copy=False))
    if _has_tape(views):
        columns |= _trade_columns(views)
    return pa.table(columns)


def _has_tape(views: list[MarketSessionView]) -> bool:
    """Whether the views (all of one session) carry a trade tape."""
    tapes = {view.trade_tape for view in views}
    if len(tapes) > 1:
        raise ValueError("views of one session either all carry a trade tape or none does")
    return tapes == {True}


def _trade_columns(views: list[MarketSessionView]) -> dict[str, pa.Array]:
    """Each step's trades as one list per step row, a column per trade array (the steps
    themselves are the rows)."""
    per_step = np.concatenate([np.bincount(v.trade_steps, minlength=len(v)) for v in views])
    offsets = pa.array(np.r_[0, np.cumsum(per_step)].astype(np.int32))
    return {
        name: pa.ListArray.from_arrays(
            offsets, pa.array(np.concatenate([getattr(v, name) for v in views]).astype(dtype))
        )
        for name, dtype in TRADE_ARRAYS.items()
        if name != "trade_steps"
    }


def _trades_from(part: pa.Table, length: int) -> dict[str, np.ndarray]:
    """The trade arrays of one view's rows (:func:`_trade_columns` read back)."""
    trades = {}
    for name, dtype in TRADE_ARRAYS.items():
        if name != "trade_steps":
            lists = part.column(name).combine_chunks()
            trades[name] = lists.flatten().to_numpy(zero_copy_only=False).astype(dtype)
    # Every trade column has the same lists: the last one read gives each step's count.
    counts = lists.value_lengths().to_numpy(zero_copy_only=False)
    trades["trade_steps"] = np.repeat(np.arange(length, dtype=np.int32), counts)
    return {"trade_tape": True, **trades}


def views_from_table(table: pa.Table, described: list[dict]) -> list[MarketSessionView]:
    """The views of a table of steps, cut by their descriptions (in table order)."""
    views, start = [], 0
    for entry in described:
        stop = start + entry["length"]
        part = table.slice(start, entry["length"])
        arrays = {name: _to_numpy(part.column(name), dtype) for name, dtype in STEP_ARRAYS.items()}
        if entry.get("trade_tape"):
            arrays |= _trades_from(part, entry["length"])
        views.append(
            MarketSessionView(
                session_id=entry["session_id"],
                market_ticker=entry["market_ticker"],
                feature_layout=entry["feature_layout"],
                feature_layout_version=entry["feature_layout_version"],
                **arrays,
                **{name: entry[name] for name in STATISTICS},
            )
        )
        start = stop
    return views


def write_views(
    views: list[MarketSessionView],
    path: str | os.PathLike[str],
    session_id: int | None = None,
    raw_sha256: str | None = None,
) -> Path:
    """Write one session's views to one Parquet file atomically (temporary file, then
    rename); ``session_id`` and ``raw_sha256`` as in :func:`write_view_batches`.

    A failed write leaves the previous file as it was and no temporary file behind.
    """
    write_view_batches([views], path, session_id, raw_sha256)
    return Path(path)


def write_view_batches(
    batches: Iterable[list[MarketSessionView]],
    path: str | os.PathLike[str],
    session_id: int | None = None,
    raw_sha256: str | None = None,
) -> list[dict]:
    """Write batches of one session's views to one Parquet file as they come, one row
    group per batch, atomically as :func:`write_views`; returns every view's description.

    ``session_id`` is the session the file holds (recorded in it, and every view must be
    of it); unset, it is the first view's (none for an empty file). ``raw_sha256`` is the
    SHA-256 of the ``digests.json`` of the raw copy the views are built from (readers
    check it against their own: :func:`~.integrity.check_built_from`). Only one batch is in
    memory at a time: with :meth:`~.session_views.SessionViews.batches` a session is
    written without ever holding all its views. The descriptions and the digests go into
    the file's metadata when the last batch is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    described: list[dict] = []
    digest = DataDigest()
    writer = None
    try:
        for views in batches:
            if not views and writer is not None:
                continue
            session_id = _one_session(views, session_id, path)
            table = views_to_table(views)
            if writer is not None and not described and table.schema != writer.schema:
                writer.close()  # only an empty batch so far: start again with trade columns
                writer = None
            if writer is None:
                writer = _writer(tmp, table.schema)
            writer.write_table(table)
            digest.update(views)
            described += [v.describe() for v in views]
        if writer is None:  # no batch at all: an empty file with the views' schema
            writer = _writer(tmp, views_to_table([]).schema)
        descriptions = json.dumps(described).encode()
        check = check_entry(session_id, digest.hexdigest(), descriptions, raw_sha256)
        writer.add_key_value_metadata({_METADATA_KEY: descriptions, CHECK_KEY: check})
        writer.close()
        _fsync(tmp)  # on disk before it replaces the old file: a crash leaves one or the other
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return described


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def read_views(
    path: str | os.PathLike[str],
    session_id: int | None = None,
    version: str | None = None,
    built_from: RawCopy | None = None,
) -> list[MarketSessionView]:
    """The views of a views file, verified against its digests; with ``session_id``, the
    file must hold that session's views, and with ``built_from`` (the reader's raw copy of
    the session: :class:`~.integrity.RawCopy`), it must have been built from that copy.
    Else :class:`~.integrity.ViewsDamaged`. With ``version`` (from :func:`views_footer`),
    the file must still be that version, else :class:`~.integrity.ViewsChanged` (checked
    on the footer, before the data is read, after the raw copy)."""
    path = Path(path)
    with open(path, "rb") as handle:  # a missing file is a FileNotFoundError, not damage
        try:
            file = pq.ParquetFile(handle, page_checksum_verification=True)
            described, data_sha256, found, _ = _footer(file, path, session_id, built_from)
            if version is not None and found != version:
                raise ViewsChanged(path, session_id, version, found)
            table = file.read()
            if table.num_rows != sum(entry["length"] for entry in described):
                raise ViewsDamaged(path, session_id, "its rows do not add up to its views")
            views = views_from_table(table, described)
        except (ViewsDamaged, ViewsChanged):
            raise
        except Exception as exc:  # whatever a damaged file makes the reader raise
            raise unreadable(path, session_id, exc) from None  # the root cause: it names the file
    if DataDigest.of(views) != data_sha256:
        raise ViewsDamaged(path, session_id, "its step data do not match their digest")
    return views


def view_descriptions(
    path: str | os.PathLike[str], session_id: int | None = None, built_from: RawCopy | None = None
) -> list[dict]:
    """The per-view statistics of a views file, read from its footer only (verified
    against its digest, and its session and raw copy checked as in :func:`read_views`)."""
    return views_footer(path, session_id, built_from).descriptions


def views_footer(
    path: str | os.PathLike[str], session_id: int | None = None, built_from: RawCopy | None = None
) -> Footer:
    """A views file's footer, read alone and verified as in :func:`view_descriptions`:
    the per-view statistics and the file's ``version``, to pin for later reads."""
    path = Path(path)
    with open(path, "rb") as handle:
        try:
            return _footer(pq.ParquetFile(handle), path, session_id, built_from)
        except ViewsDamaged:
            raise
        except Exception as exc:
            raise unreadable(path, session_id, exc) from None  # the root cause: it names the file


def _footer(
    file: pq.ParquetFile, path: Path, session_id: int | None, built_from: RawCopy | None
) -> Footer:
    footer = verified_footer(path, file.metadata.metadata, _METADATA_KEY, session_id)
    if built_from is not None:
        check_built_from(path, session_id, footer, built_from)
    return footer


def _writer(path: Path, schema: pa.Schema) -> pq.ParquetWriter:
    return pq.ParquetWriter(path, schema, compression="zstd", write_page_checksum=True)


def _one_session(views: list[MarketSessionView], session_id: int | None, path: Path) -> int | None:
    """The file's session: ``session_id``, else the first view's; a view of another
    session is refused (a file holds one session, whose id its readers check)."""
    for view in views:
        if session_id is None:
            session_id = view.session_id
        if view.session_id != session_id:
            raise ValueError(
                f"views file {path}: view {view.key} is not of session {session_id} "
                "(a views file holds one session's views)"
            )
    return session_id


def _width(name: str) -> int:
    """Columns of a 2-D step array in an empty table (0 for 1-D arrays)."""
    if name == "features":
        return NUM_FEATURES
    return TOP_LEVELS if name.endswith(("_prices", "_sizes")) else 0


def _to_numpy(column: pa.ChunkedArray, dtype) -> np.ndarray:
    array = column.combine_chunks()
    if pa.types.is_fixed_size_list(array.type):
        width = array.type.list_size
        return array.flatten().to_numpy(zero_copy_only=False).astype(dtype).reshape(-1, width)
    return array.to_numpy(zero_copy_only=False).astype(dtype)
