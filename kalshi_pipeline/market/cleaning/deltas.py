"""Deltas: one level of one side set to a new size, as event columns.

A delta with an unknown side, an action other than ``add``, ``remove`` or ``update``
(another word, another case, or none: the collector's CHECK constraint allows only those
three), a price outside 1..99 or a size that is negative, missing or above ``MAX_SIZE``
is dropped (and counted, naming its row id), but still counts as
received for the sequence checks. A value the source could not read as an integer (a NaN,
a string, a number of 5,000 digits) arrives here NULL or clamped far out of range
(:mod:`kalshi_pipeline.sources.raw_values`), so it is one of these repairs too. ``remove``
clears its level whatever ``new_size`` says (the collector's convention,
docs/data-model.md).
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from kalshi_pipeline.market.cleaning.columns import (
    EventColumns,
    filled,
    int_column,
    market_codes,
    positions,
    row_ids,
)
from kalshi_pipeline.market.cleaning.events import MAX_SIZE, NO, YES
from kalshi_pipeline.market.cleaning.report import IngestReport, RepairKind
from kalshi_pipeline.sources.raw import DELTA_ACTIONS, LEVELS

_REMOVE = DELTA_ACTIONS.index("remove")
_SIDES = ("yes", "no")


def delta_events(table: pa.Table, code, names, report: IngestReport) -> EventColumns:
    """The deltas as events (in table order), with ``valid`` false for the deltas
    dropped as repairs (they still count as received for the sequence checks)."""
    market = market_codes(table.column("market_ticker"), code)
    seq = int_column(table, "sequence_number")
    ts = int_column(table, "timestamp_ms")
    price = filled(table.column("price"), 0).to_numpy().astype(np.int64)  # NULL: out of range
    size = filled(table.column("new_size"), -1).to_numpy().astype(np.int64)
    # `remove` clears the level whatever new_size says (docs/data-model.md).
    action = positions(table.column("action"), DELTA_ACTIONS)
    known_action = action >= 0
    size = np.where(action == _REMOVE, 0, size)
    side = positions(table.column("side"), _SIDES)  # NULL or another word: unknown
    is_yes, is_no = side == 0, side == 1

    ids = row_ids(table)
    valid = np.ones(len(seq), dtype=bool)
    for kind, bad, message in (
        (RepairKind.UNKNOWN_SIDE, ~(is_yes | is_no), "delta with a side other than yes/no dropped"),
        (
            RepairKind.UNKNOWN_ACTION,
            ~known_action,
            "delta with an action other than add/remove/update dropped",
        ),
        (
            RepairKind.PRICE_OUT_OF_RANGE,
            (price < 1) | (price > LEVELS),
            "delta with a price outside 1..99 (or none, or not an integer) dropped",
        ),
        (
            RepairKind.NEGATIVE_SIZE,
            size < 0,
            "delta with a negative or missing size (or not an integer) dropped",
        ),
        (
            RepairKind.SIZE_OUT_OF_RANGE,
            size > MAX_SIZE,
            f"delta with a size above {MAX_SIZE} dropped",
        ),
    ):
        if bad.any():  # (most deltas break no rule: nothing to count or drop)
            rows = np.flatnonzero(valid & bad)
            report.repair(kind, names[market[rows]], seq[rows], message, row_ids=ids[rows])
            valid &= ~bad
    level = np.where(valid, np.where(is_yes, YES, NO) * LEVELS + price - 1, 0).astype(np.int16)
    return EventColumns(
        market=market,
        seq=seq,
        ts=ts,
        is_snapshot=np.zeros(len(seq), bool),
        level=level,
        size=size,
        snapshot_index=np.full(len(seq), -1, np.int64),
        row_id=ids,
        valid=valid,
    )
