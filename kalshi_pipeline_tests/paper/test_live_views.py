"""The live path equals the batch path: views grown a commit at a time are the batch
views bit for bit. Bad rows are cleaned and counted as the batch cleaning does; what the
live path cannot do without looking ahead is counted, not hidden."""

from __future__ import annotations

import dataclasses

import pyarrow as pa
import pytest

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.market.cleaning.pipeline import clean_session
from kalshi_pipeline.market.streaming import SessionStream
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot
from kalshi_pipeline_tests.paper.recorded import SEED_PARAMS, live_views, recorded_session


@pytest.mark.parametrize("seed", SEED_PARAMS)
def test_views_grown_live_equal_the_batch_views(seed):
    raw = recorded_session(seed)
    batch = {view.market_ticker: view for view in build_market_views(raw)}
    live, stream = live_views(raw)
    assert sorted(live) == sorted(batch)
    for ticker, view in batch.items():
        for name, values in live[ticker].items():
            assert values == getattr(view, name).tolist(), (ticker, name)
    # The windows were cut: markets longer than the features' 30 steps and 5 minutes.
    longest = max(batch.values(), key=len)
    assert len(longest) > 60 and longest.end_ms - longest.start_ms > 3_600_000
    assert sum(len(view.trade_steps) for view in batch.values()) > 0
    assert not stream.live_only or set(stream.live_only.values()) == {0}


def with_bad_rows(raw):
    """``raw`` with bad rows the cleaning repairs: a delta with a price of 150, one with
    a negative size, one of an unknown side, one with an unknown action, and a second
    copy of a delta (the same event under its number), each stored beside a good row."""
    deltas = raw.deltas.to_pylist()
    bad = []
    for index, change in ((40, {"price": 150}), (80, {"new_size": -5}),
                          (120, {"side": "up"}), (160, {"action": "explode"})):  # fmt: skip
        row = dict(deltas[index], **change, id=None)
        row["sequence_number"] = deltas[index]["sequence_number"]
        bad.append((index, row))
    copy = dict(deltas[200])
    bad.append((200, copy))
    rows = list(deltas)
    for index, row in sorted(bad, key=lambda item: -item[0]):
        rows.insert(index + 1, row)
    for number, row in enumerate(rows, start=1):
        row["id"] = number
    table = pa.Table.from_pylist(rows, schema=raw.deltas.schema)
    return dataclasses.replace(raw, deltas=table)


def test_bad_rows_are_cleaned_and_counted_as_the_batch_path_does():
    raw = with_bad_rows(recorded_session(1))
    batch_report = clean_session(raw).report
    batch = {view.market_ticker: view for view in build_market_views(raw)}
    live, stream = live_views(raw)
    for ticker, view in batch.items():
        assert live[ticker]["features"] == view.features.tolist()
        assert live[ticker]["sequence_numbers"] == view.sequence_numbers.tolist()
    kinds = ("price_out_of_range", "negative_size", "unknown_side", "unknown_action",
             "duplicate_sequence")  # fmt: skip
    counted = {kind: stream.report.repairs[kind] for kind in kinds}
    assert counted == {kind: batch_report.repairs[kind] for kind in kinds}
    assert all(count >= 1 for count in counted.values()), counted


def test_a_delta_stored_too_late_is_counted_not_hidden():
    """The batch path sorts a delta stored after later numbers into place; the live path
    had already acted on those, so it drops the late one and counts it."""
    raw = recorded_session(2)
    rows = raw.deltas.to_pylist()
    late = rows.pop(50)
    late["timestamp_ms"] = rows[60]["timestamp_ms"]
    rows.insert(61, late)
    raw = dataclasses.replace(raw, deltas=pa.Table.from_pylist(rows, schema=raw.deltas.schema))
    _, stream = live_views(raw)
    assert stream.live_only["delta_at_or_below_last_number"] == 1


def test_a_millisecond_split_across_two_commits_is_counted():
    """The collector commits a millisecond's rows together; when it does not, the rows
    that came after the millisecond's step was taken are counted."""
    raw = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=3, ts=T0_MS + 5),
        delta("MKT-A", seq=3, side="no", price=56, new_size=2, ts=T0_MS + 5),
    )
    stream = SessionStream(raw.info)
    stream.add(raw.snapshots, raw.deltas.slice(0, 0))
    first = stream.add(raw.snapshots.slice(0, 0), raw.deltas.slice(0, 1))
    second = stream.add(raw.snapshots.slice(0, 0), raw.deltas.slice(1, 1))
    assert len(first) == len(second) == 1  # two steps where the batch path has one
    assert stream.live_only["millisecond_split_across_commits"] == 1
    assert len(build_market_views(raw)[0]) == 2
