"""Views carry their market's trades: at the right steps, in order, through Parquet and
its digests; a session without a tape keeps the views (and files) it always had.

The rules are those of ``kalshi_pipeline/market/trade_flow.py``: a trade belongs to the
step of its millisecond, or to the next book change of its market (the last step if none
follows); within a step, trades keep receive order, then sequence number, then row id.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import fields

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kalshi_pipeline.market.views import (
    STEP_ARRAYS,
    TRADE_ARRAYS,
    MarketSessionView,
    SessionViews,
    ViewConfig,
    ViewsDamaged,
    build_market_views,
    read_views,
    write_view_batches,
    write_views,
)
from kalshi_pipeline.market.views.integrity import DataDigest
from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session
from kalshi_pipeline_tests.factories import (
    T0_MS,
    InBatches,
    delta,
    make_session,
    snapshot,
    trade,
    with_tape,
)
from kalshi_pipeline_tests.market.test_views import assert_views_identical

# MKT-A's book changes at T0 + 10, T0 + 20 (two deltas in one millisecond) and T0 + 30.
BOOK = (
    snapshot("MKT-A", seq=1, yes_bids={40: 10, 38: 5}, no_bids={55: 7}, ts=T0_MS + 10),
    delta("MKT-A", seq=4, side="yes", price=40, new_size=4, old_size=10, ts=T0_MS + 20),
    delta("MKT-A", seq=5, side="no", price=55, new_size=5, old_size=7, ts=T0_MS + 20),
    delta("MKT-A", seq=7, side="yes", price=41, new_size=3, ts=T0_MS + 30),
)


def the_view(raw: RawSession) -> MarketSessionView:
    (view,) = build_market_views(raw)
    return view


def test_a_trade_belongs_to_the_step_of_its_millisecond_or_the_next_book_change():
    view = the_view(
        with_tape(
            make_session(*BOOK),
            trade("MKT-A", "before", 40, 1, "no", ts=T0_MS + 5),  # before any: the first
            trade("MKT-A", "at-10", 40, 2, "no", ts=T0_MS + 10),  # its millisecond's step
            trade("MKT-A", "at-15", 40, 3, "no", ts=T0_MS + 15),  # no change at 15: next
            trade("MKT-A", "at-20", 45, 4, "yes", ts=T0_MS + 20),
            trade("MKT-A", "after", 40, 5, "no", ts=T0_MS + 99),  # none follows: the last
        )
    )

    assert (view.timestamps_ms - T0_MS).tolist() == [10, 20, 30]
    assert view.trade_steps.tolist() == [0, 0, 1, 1, 2]
    assert view.trade_counts.tolist() == [1, 2, 3, 4, 5]
    assert view.trade_taker_yes.tolist() == [False, False, False, True, False]
    # Read against the book before their step: none before the first step.
    assert view.trade_off_book.tolist() == [True, True, False, False, False]


def test_trades_of_one_millisecond_are_ordered_by_sequence_number_then_row_id():
    view = the_view(
        with_tape(
            make_session(*BOOK),
            trade("MKT-A", "third", 40, 3, "no", ts=T0_MS + 20, seq=3),
            trade("MKT-A", "second", 40, 2, "no", ts=T0_MS + 20, seq=2),
            trade("MKT-A", "last", 40, 5, "no", ts=T0_MS + 20),  # unnumbered: after
            trade("MKT-A", "earlier", 40, 1, "no", ts=T0_MS + 19),  # received before
            trade("MKT-A", "fourth", 40, 4, "no", ts=T0_MS + 20, seq=3),  # row id decides
        )
    )

    assert view.trade_steps.tolist() == [1, 1, 1, 1, 1]
    assert view.trade_counts.tolist() == [1, 2, 3, 4, 5]


def test_a_receive_time_that_stepped_back_never_sends_a_trade_to_an_earlier_step():
    """Steps at T0 + 10, T0 + 30, then an event received at T0 + 20 (its time went
    back): a trade received at T0 + 20 belongs to the step of T0 + 30, the next book
    change after it, not to a step that came later in the market's order."""
    view = the_view(
        with_tape(
            make_session(
                snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}, ts=T0_MS + 10),
                delta("MKT-A", seq=2, side="yes", price=41, new_size=1, ts=T0_MS + 30),
                delta("MKT-A", seq=3, side="yes", price=42, new_size=1, ts=T0_MS + 20),
            ),
            trade("MKT-A", "t", 40, 1, "no", ts=T0_MS + 20),
        )
    )

    assert (view.timestamps_ms - T0_MS).tolist() == [10, 30, 20]
    assert view.trade_steps.tolist() == [1]


def test_a_session_without_a_tape_is_not_a_session_with_no_trades():
    without = the_view(make_session(*BOOK))
    empty = the_view(with_tape(make_session(*BOOK)))

    assert not without.trade_tape and empty.trade_tape
    for view in (without, empty):
        for name, dtype in TRADE_ARRAYS.items():
            assert getattr(view, name).dtype == dtype and len(getattr(view, name)) == 0
    assert "trade_tape" not in without.describe() and "trades" not in without.describe()
    assert empty.describe()["trade_tape"] is True and empty.describe()["trades"] == 0
    assert without != empty


def test_trades_change_no_book_feature_or_statistic():
    """Unnumbered trades (numbered ones fill the sequence, a statistic's factor)."""
    raw = simulate_session(5, 2, SimulatorConfig(population=Population.TWO_CLASS, markets=4))
    tape = synthetic_tape(raw)
    assert tape.num_rows > 50
    without = build_market_views(raw)
    full = build_market_views(dataclasses.replace(raw, trades=tape))

    for a, b in zip(without, full, strict=True):
        for f in fields(MarketSessionView):
            if f.name in STEP_ARRAYS:
                assert np.array_equal(getattr(a, f.name), getattr(b, f.name)), f.name
            elif f.name not in TRADE_ARRAYS and f.name != "trade_tape":
                assert getattr(a, f.name) == getattr(b, f.name), f.name
    assert sum(len(v.trade_steps) for v in full) == tape.num_rows


def test_taker_volume_adds_each_steps_contracts_by_taker_side():
    view = the_view(
        with_tape(
            make_session(*BOOK),
            trade("MKT-A", "a", 40, 2, "no", ts=T0_MS + 20),
            trade("MKT-A", "b", 45, 3, "yes", ts=T0_MS + 20),
            trade("MKT-A", "c", 45, 4, "yes", ts=T0_MS + 25),
            trade("MKT-A", "d", 40, 7, "no", ts=T0_MS + 10),
        )
    )

    assert view.taker_volume.tolist() == [[0, 7], [3, 2], [4, 0]]
    assert the_view(make_session(*BOOK)).taker_volume.tolist() == [[0, 0]] * 3


# -- on disk -------------------------------------------------------------------------
def synthetic_tape(raw: RawSession) -> pa.Table:
    """A trade for every fourth size decrease of a simulated session, at that level, in
    that millisecond: a NO taker for a YES bid level, a YES taker for a NO bid level
    (unnumbered: the simulated sequence has no room for trades)."""
    d = raw.deltas.to_pylist()
    rows = [r for r in d if (r["old_size"] or 0) > r["new_size"]][::4]
    trades = [
        trade(
            r["market_ticker"],
            f"{r['market_ticker']}-{r['sequence_number']}",
            r["price"] if r["side"] == "yes" else 100 - r["price"],
            r["old_size"] - r["new_size"],
            "no" if r["side"] == "yes" else "yes",
            ts=r["timestamp_ms"],
        )
        for r in rows
    ]
    return with_tape(raw, *trades).trades


@pytest.fixture(scope="module")
def traded() -> RawSession:
    raw = simulate_session(6, 3, SimulatorConfig(population=Population.TWO_CLASS, markets=6))
    return dataclasses.replace(raw, trades=synthetic_tape(raw))


def test_views_with_trades_round_trip_through_parquet_exactly(traded, tmp_path):
    views = build_market_views(traded)
    assert sum(len(v.trade_steps) for v in views) > 100
    path = write_views(views, tmp_path / "session-6.parquet", 6)

    back = read_views(path, 6)

    assert_views_identical(back, views)
    for got, want in zip(back, views, strict=True):
        for name, dtype in TRADE_ARRAYS.items():
            assert getattr(got, name).dtype == dtype
            assert np.array_equal(getattr(got, name), getattr(want, name)), name


def test_streamed_views_in_small_groups_carry_the_trades_of_the_whole(traded, tmp_path):
    whole = build_market_views(traded)
    config = ViewConfig(chunk_events=300, clean_events=500)
    with SessionViews.streamed(InBatches(traded, rows=97), config) as builder:
        path = tmp_path / "session-6.parquet"
        write_view_batches(builder.batches(), path, 6)

    assert_views_identical(read_views(path, 6), whole)
    assert pq.ParquetFile(path).metadata.num_row_groups > 1


def test_a_tapeless_file_keeps_the_columns_descriptions_and_digest_it_always_had(tmp_path):
    views = build_market_views(
        simulate_session(7, 4, SimulatorConfig(population=Population.TWO_CLASS, markets=3))
    )
    path = write_views(views, tmp_path / "session-7.parquet", 7)

    names = set(pq.ParquetFile(path).schema_arrow.names)
    assert names == {"session_id", "market_ticker", *STEP_ARRAYS}
    footer = dict(pq.ParquetFile(path).metadata.metadata)
    for described in json.loads(footer[b"kalshi_pipeline.views"]):
        assert "trade_tape" not in described and "trades" not in described
    old_digest = hashlib.sha256()
    for view in views:
        for name, dtype in STEP_ARRAYS.items():
            array = np.ascontiguousarray(getattr(view, name), np.dtype(dtype).newbyteorder("<"))
            old_digest.update(array.tobytes())
    assert DataDigest.of(views) == old_digest.hexdigest()


def test_a_changed_trade_in_the_file_is_refused_by_the_data_digest(traded, tmp_path):
    views = build_market_views(traded)
    path = write_views(views, tmp_path / "session-6.parquet", 6)
    table = pq.read_table(path)
    counts = table.column("trade_counts").combine_chunks()
    values = counts.flatten().to_numpy().copy()
    values[0] += 1  # one contract more in one trade
    changed = pa.ListArray.from_arrays(counts.offsets, pa.array(values))
    index = table.schema.get_field_index("trade_counts")
    metadata = dict(pq.ParquetFile(path).metadata.metadata)
    table = table.set_column(index, "trade_counts", changed)
    pq.write_table(table.replace_schema_metadata(metadata), path)

    with pytest.raises(ViewsDamaged, match="step data do not match their digest"):
        read_views(path, 6)
