"""Views on disk: a lossless Parquet round trip.

:func:`write_views` and :func:`write_view_batches` write one row per step (2-D step
arrays as fixed-size lists), atomically, with every view's description (its statistics
and feature layout, :meth:`~.market_view.MarketSessionView.describe`) in the file's
metadata; :func:`read_views` reads them back equal, and :func:`view_descriptions` reads
only the descriptions, from the footer.
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
from kalshi_pipeline.market.views.market_view import STATISTICS, STEP_ARRAYS, MarketSessionView

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
    return pa.table(columns)


def views_from_table(table: pa.Table, described: list[dict]) -> list[MarketSessionView]:
    """The views of a table of steps, cut by their descriptions (in table order)."""
    views, start = [], 0
    for entry in described:
        stop = start + entry["length"]
        part = table.slice(start, entry["length"])
        arrays = {name: _to_numpy(part.column(name), dtype) for name, dtype in STEP_ARRAYS.items()}
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


def write_views(views: list[MarketSessionView], path: str | os.PathLike[str]) -> Path:
    """Write views to one Parquet file atomically (temporary file, then rename).

    A failed write leaves the previous file as it was and no temporary file behind.
    """
    write_view_batches([views], path)
    return Path(path)


def write_view_batches(
    batches: Iterable[list[MarketSessionView]], path: str | os.PathLike[str]
) -> list[dict]:
    """Write batches of views to one Parquet file as they come, one row group per
    batch, atomically as :func:`write_views`; returns every view's description.

    Only one batch is in memory at a time: with
    :meth:`~.session_views.SessionViews.batches` a session is written without ever
    holding all its views. The descriptions go into the file's metadata when the last
    batch is written.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{uuid.uuid4().hex}.tmp")
    described: list[dict] = []
    writer = None
    try:
        for views in batches:
            if not views and writer is not None:
                continue
            table = views_to_table(views)
            if writer is None:
                writer = pq.ParquetWriter(tmp, table.schema, compression="zstd")
            writer.write_table(table)
            described += [v.describe() for v in views]
        if writer is None:  # no batch at all: an empty file with the views' schema
            writer = pq.ParquetWriter(tmp, views_to_table([]).schema)
        writer.add_key_value_metadata({_METADATA_KEY: json.dumps(described).encode()})
        writer.close()
        os.replace(tmp, path)
    except BaseException:
        if writer is not None:
            writer.close()
        tmp.unlink(missing_ok=True)
        raise
    return described


def read_views(path: str | os.PathLike[str]) -> list[MarketSessionView]:
    file = pq.ParquetFile(path)
    return views_from_table(file.read(), _described(file))


def view_descriptions(path: str | os.PathLike[str]) -> list[dict]:
    """The per-view statistics of a views file, read from its footer only."""
    return _described(pq.ParquetFile(path))


def _described(file: pq.ParquetFile) -> list[dict]:
    return json.loads(file.metadata.metadata[_METADATA_KEY])


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
