"""The live path on faulty sessions: whatever the batch cleaning handles, the live path
handles too, with the same views, or counts why it cannot (``SessionStream.live_only``).

Each session here is small and hand-made (or a few simulated markets), replayed one
receive millisecond per commit as the collector commits it."""

from __future__ import annotations

import dataclasses
import tracemalloc
from collections import Counter

import pyarrow as pa

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.env.execution import BUY_YES
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.market.books import reconstruct_books
from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline.market.streaming import SessionStream
from kalshi_pipeline.paper.backtest import backtest
from kalshi_pipeline.paper.live_view import LiveView
from kalshi_pipeline.paper.replay import by_millisecond
from kalshi_pipeline.paper.trader import ChosenModel
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot, trade, with_tape
from kalshi_pipeline_tests.paper.recorded import live_views, paper_trade, recorded_session


def assert_live_equals_batch(raw):
    """Every market's live view columns equal its batch view's; the stream."""
    batch = {view.market_ticker: view for view in build_market_views(raw)}
    live, stream = live_views(raw)
    assert sorted(live) == sorted(batch), stream.rejected
    for ticker, view in batch.items():
        for name, values in live[ticker].items():
            assert values == getattr(view, name).tolist(), (ticker, name)
    return stream


def test_trades_without_a_sequence_number_are_placed_as_the_batch_path_places_them():
    """The collector numbers a trade only where it can: a tape of trades without numbers
    is placed on the book live as in the batch views."""
    raw = with_tape(
        make_session(
            snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
            delta("MKT-A", seq=3, side="yes", price=41, new_size=3),
            delta("MKT-A", seq=6, side="no", price=55, new_size=2),
        ),
        trade("MKT-A", "t1", 40, 6, "no", ts=T0_MS + 3),
        trade("MKT-A", "t2", 45, 2, "yes", ts=T0_MS + 6),
    )
    assert raw.trades.column("sequence_number").null_count == 2
    stream = assert_live_equals_batch(raw)
    assert not any(stream.live_only.values())


def test_a_market_missing_from_the_sessions_list_and_its_early_trade_are_followed():
    """A market the session row does not list (one that opened after the session began)
    gets its view live, and a trade received before its first book row is kept, off the
    book at its first step, as the batch path keeps it."""
    raw = with_tape(
        make_session(
            snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
            delta("MKT-A", seq=3, side="yes", price=41, new_size=3),
            snapshot("MKT-B", seq=5, yes_bids={30: 5}, no_bids={60: 5}, ts=T0_MS + 20),
            delta("MKT-B", seq=6, side="yes", price=30, new_size=2, ts=T0_MS + 25),
        ),
        trade("MKT-A", "a1", 40, 6, "no", ts=T0_MS + 3),
        trade("MKT-B", "b-early", 30, 3, "no", ts=T0_MS + 10),
    )
    raw = dataclasses.replace(raw, info=dataclasses.replace(raw.info, market_tickers=("MKT-A",)))
    stream = assert_live_equals_batch(raw)
    live, _ = live_views(raw)
    assert live["MKT-B"]["trade_off_book"] == [True]
    assert stream.report.repairs["trade_unknown_market"] == 0


# Counted once every market is cleaned: the live path keeps no such tally.
SESSION_WIDE = {RepairKind.SEQUENCE_GAP, RepairKind.SEQUENCE_SHARED}


def batch_repairs(raw) -> Counter:
    return reconstruct_books(raw).report.repairs


def per_market(repairs: Counter) -> dict:
    return {kind: n for kind, n in repairs.items() if n and kind not in SESSION_WIDE}


def stream_of(raw, commits) -> tuple[SessionStream, list]:
    """A stream fed ``commits``: rows (snapshots, deltas[, trades]) of ``raw``'s tables;
    and the chunks it gave."""
    stream, chunks = SessionStream(raw.info), []
    for rows in commits:
        taken = [table.take(pa.array(ids, pa.int64())) for table, ids in zip(
            (raw.snapshots, raw.deltas, raw.trades), rows, strict=False
        )]  # fmt: skip
        chunks += stream.add(*taken)
    stream.finish()
    return stream, chunks


def test_a_delta_received_before_its_markets_first_snapshot_waits_for_it():
    """MKT-B's first rows are deltas, its snapshot comes in a later commit: the one
    numbered before the snapshot is dropped and counted, the one numbered after it kept,
    as the batch cleaning does (the live path rejected the market for good). MKT-C never
    gets a snapshot: rejected at the close, as in the batch path."""
    raw = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
        delta("MKT-B", seq=2, side="yes", price=31, new_size=3, ts=T0_MS + 3),
        delta("MKT-B", seq=5, side="no", price=61, new_size=2, ts=T0_MS + 4),
        delta("MKT-C", seq=6, side="no", price=61, new_size=2, ts=T0_MS + 5),
        snapshot("MKT-B", seq=3, yes_bids={30: 2}, no_bids={60: 1}, ts=T0_MS + 6),
        delta("MKT-B", seq=7, side="yes", price=32, new_size=4, ts=T0_MS + 9),
    )
    stream = assert_live_equals_batch(raw)
    assert stream.report.repairs["delta_before_snapshot"] == 2
    assert per_market(stream.report.repairs) == per_market(batch_repairs(raw))
    assert list(stream.rejected) == ["MKT-C"] and not any(stream.live_only.values())


RECONNECT_MS = T0_MS + 30_000


def test_a_restart_and_the_deltas_of_its_millisecond_are_cleaned_together():
    """A reconnect's snapshot restarts MKT-B's numbers; a delta of the same millisecond
    is numbered below the market's last (the old subscription's): cleaning's restart
    rule judges them together, as in the batch path (the live path dropped the delta as
    stored late)."""
    raw = make_session(
        snapshot("MKT-B", seq=101, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=102, side="yes", price=31, new_size=4),
        delta("MKT-B", seq=103, side="no", price=61, new_size=5),
        snapshot("MKT-B", seq=101, yes_bids={40: 7}, no_bids={50: 3}, ts=RECONNECT_MS),
        delta("MKT-B", seq=102, side="yes", price=41, new_size=1, ts=RECONNECT_MS),
        delta("MKT-B", seq=103, side="yes", price=42, new_size=1, ts=RECONNECT_MS + 7),
    )
    stream = assert_live_equals_batch(raw)
    assert stream.report.repairs["sequence_restart"] == batch_repairs(raw)["sequence_restart"] == 1
    assert not any(stream.live_only.values())


def late_snapshot(arrives_ms: int):
    """MKT-B's deltas numbered 2, 4, ..., 50, then a snapshot numbered 31 (a number never
    used) received ``arrives_ms`` after the session began, stored after them."""
    rows = [snapshot("MKT-B", seq=1, yes_bids={30: 2}, no_bids={60: 1}, ts=T0_MS)]
    for i, seq in enumerate(range(2, 52, 2)):
        change = {"side": "yes", "price": 30 + i % 5, "new_size": 4 + i}
        rows.append(delta("MKT-B", seq=seq, ts=T0_MS + 100 * (i + 1), **change))
    rows.append(snapshot("MKT-B", seq=31, yes_bids={45: 2}, no_bids={50: 1}, ts=arrives_ms))
    rows.append(delta("MKT-B", seq=52, side="yes", price=20, new_size=4, ts=arrives_ms + 300))
    return make_session(*rows)


def test_a_snapshot_stored_late_is_dropped_and_counted_not_made_a_step():
    """The batch path sorts a late snapshot into place; the live path cannot, and counts
    it (it made a step of the carried book, and shifted the market's next steps)."""
    raw = late_snapshot(T0_MS + 2_700)  # 200 ms after the delta numbered 50
    (view,) = build_market_views(raw)
    live, stream = live_views(raw)
    assert stream.live_only["snapshot_at_or_below_last_number"] == 1
    numbers = view.sequence_numbers.tolist()
    assert live["MKT-B"]["sequence_numbers"] == [n for n in numbers if n != 31]


def test_a_restart_judged_without_the_segments_history_is_counted():
    """Received seconds late, the snapshot numbered 31 is a restart to the live path (it
    keeps no earlier numbers); the batch path, seeing the segment's numbers, sorts it
    into place. The live path counts that it judged on its recent rows."""
    raw = late_snapshot(T0_MS + 10_000)
    _, stream = live_views(raw)
    assert batch_repairs(raw)["sequence_restart"] == 0
    assert stream.live_only["restart_judged_on_recent_rows"] == 1


def test_a_far_sequence_number_below_the_last_is_an_outlier_as_in_the_batch_path():
    raw = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=3),
        delta("MKT-A", seq=-(2**63), side="yes", price=42, new_size=3, ts=T0_MS + 5),
        delta("MKT-A", seq=6, side="no", price=55, new_size=2),
    )
    stream = assert_live_equals_batch(raw)
    assert stream.report.repairs["sequence_outlier"] == batch_repairs(raw)["sequence_outlier"] == 1
    assert not any(stream.live_only.values())


def with_bad_time(*, bad_ms: int):
    """MKT-A's delta numbered 3 received at ``bad_ms`` (outside the recorded window),
    stored after MKT-B's delta of T0 + 20 ms: cleaning gives it MKT-A's previous time."""
    return make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}, ts=T0_MS),
        snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}, ts=T0_MS + 1),
        delta("MKT-A", seq=4, side="yes", price=41, new_size=3, ts=T0_MS + 10),
        delta("MKT-B", seq=5, side="yes", price=31, new_size=3, ts=T0_MS + 20),
        delta("MKT-A", seq=6, side="no", price=60, new_size=2, ts=bad_ms),
        delta("MKT-A", seq=7, side="yes", price=38, new_size=9, ts=T0_MS + 30),
    )


def test_a_row_with_a_time_outside_the_window_is_replayed_where_it_was_stored():
    """The replay puts it with the row stored before it (the collector stored it on
    receipt, whatever time it wrote); replayed at its own time (the epoch, first) it was
    a delta before any snapshot, and its market lost its late rows."""
    raw = with_bad_time(bad_ms=0)
    stream = assert_live_equals_batch(raw)
    assert stream.report.repairs["timestamp_out_of_window"] == 1
    assert stream.live_only["delta_at_or_below_last_number"] == 0


def test_a_repaired_time_of_a_step_already_taken_is_counted_where_a_maker_fill_differs():
    """MKT-A's bad-time delta becomes a step at the time of its last step, which the
    maker replay took as the last of its millisecond a commit earlier: an order arriving
    in that millisecond joined its book live, where the backtest (seeing one more step
    of it) joins the next book, would cross and is refused. The views are equal; the
    fills differ, and the live path counts why."""
    raw = with_bad_time(bad_ms=0)
    stream = assert_live_equals_batch(raw)
    assert stream.live_only["repaired_time_of_a_step_taken"] == 1
    config = EnvConfig(execution="maker", latency_ms=10)
    on_40 = ChosenModel(name="on-40", path="", policy=lambda obs: BUY_YES * (obs[0] == 0.4))
    paper = paper_trade(raw, config, on_40)
    expected = backtest(build_market_views(raw), config, lambda ticker: on_40)
    assert [fill.market for fill in paper.fills] == ["MKT-A"] and not expected.fills


def test_rows_of_a_segment_before_a_restart_are_counted():
    """A delta of the old subscription stored after the reconnect's rows: the batch path
    puts it in the old segment (by its time), whose steps the live path has taken."""
    raw = make_session(
        snapshot("MKT-B", seq=101, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=102, side="yes", price=31, new_size=4),
        snapshot("MKT-B", seq=101, yes_bids={40: 7}, no_bids={50: 3}, ts=RECONNECT_MS),
        delta("MKT-B", seq=102, side="yes", price=41, new_size=1, ts=RECONNECT_MS + 5),
        delta("MKT-B", seq=103, side="no", price=61, new_size=5),  # old, stored late
    )
    stream, _ = stream_of(raw, [([0], []), ([], [0]), ([1], []), ([], [1, 2])])
    assert stream.report.repairs["sequence_restart"] == 1
    assert stream.live_only["row_of_an_earlier_segment"] == 1


def test_a_snapshot_in_a_millisecond_already_stepped_is_a_split_commit():
    raw = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=3, ts=T0_MS + 5),
        snapshot("MKT-A", seq=3, yes_bids={42: 1}, no_bids={56: 2}, ts=T0_MS + 5),
    )
    stream, _ = stream_of(raw, [([0], []), ([], [0]), ([1], [])])
    assert stream.live_only["millisecond_split_across_commits"] == 1


def test_a_growing_view_keeps_a_step_once():
    """A live view's 2-D columns are kept as rows; their Python lists (the maker replay
    reads the books') are made when asked for and then extended in place. A features row
    was kept a second time as 36 Python floats, never read: 2.5 kB a step, now 0.7 kB."""
    raw = recorded_session(0)
    stream = SessionStream(raw.info)
    chunks = [chunk for rows in by_millisecond(raw) for chunk in stream.add(*rows)]
    tracemalloc.start()
    views: dict[str, LiveView] = {}
    for chunk in chunks:
        views.setdefault(chunk.ticker, LiveView(1, chunk.ticker)).append(chunk)
    held, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    assert held / sum(len(view) for view in views.values()) < 1_200
    ticker = chunks[0].ticker
    prices = views[ticker].yes_bid_prices.tolist()
    ours = [c.columns["yes_bid_prices"].tolist() for c in chunks if c.ticker == ticker]
    assert prices == sum(ours, [])
    views[ticker].append(dataclasses.replace(chunks[0], first_step=len(prices)))
    assert views[ticker].yes_bid_prices.tolist() is prices and prices[-1] == prices[0]


def test_a_trade_received_before_the_latest_step_time_is_of_a_step_taken():
    """MKT-A's clock stepped back (5 s, then 2 s); a trade of 3 s, received after that,
    belongs to the step of 5 s in the batch path (steps are compared on times that never
    go back). The live path had taken it: counted, not put on the next step."""
    raw = with_tape(
        make_session(
            snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}, ts=T0_MS + 1_000),
            delta("MKT-A", seq=2, side="yes", price=41, new_size=3, ts=T0_MS + 5_000),
            delta("MKT-A", seq=3, side="yes", price=42, new_size=3, ts=T0_MS + 2_000),
            delta("MKT-A", seq=4, side="yes", price=43, new_size=3, ts=T0_MS + 6_000),
        ),
        trade("MKT-A", "t", 41, 2, "no", ts=T0_MS + 3_000),
    )
    (view,) = build_market_views(raw)
    assert view.trade_steps.tolist() == [1]
    commits = [([0], [], []), ([], [0], []), ([], [1], []), ([], [], [0]), ([], [2], [])]
    stream, chunks = stream_of(raw, commits)
    assert [len(chunk.trades["trade_steps"]) for chunk in chunks] == [0, 0, 0, 0]
    assert stream.live_only["trade_of_a_step_taken"] == 1


def test_a_copy_of_the_last_snapshot_is_a_duplicate_not_a_restart():
    """The collector stored MKT-A's last snapshot again a commit later: a copy, as in the
    batch path; no restart is taken (nor counted), so a later late delta is still late."""
    raw = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=3, ts=T0_MS + 5),
        snapshot("MKT-A", seq=3, yes_bids={42: 1}, no_bids={56: 2}, ts=T0_MS + 9),
        snapshot("MKT-A", seq=3, yes_bids={42: 1}, no_bids={56: 2}, ts=T0_MS + 2_000),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=3, ts=T0_MS + 3_000),
    )
    commits = [([0], []), ([], [0]), ([1], []), ([2], []), ([], [1])]
    stream, chunks = stream_of(raw, commits)
    assert [len(chunk) for chunk in chunks] == [1, 1, 1]
    assert stream.report.repairs["duplicate_sequence"] == 1
    assert stream.live_only["restart_judged_on_recent_rows"] == 0
    assert stream.live_only["delta_at_or_below_last_number"] == 1


def test_a_far_number_on_the_sessions_first_row_costs_no_other_market():
    """The session's first commit is one snapshot with a number 9e15 away: the median of
    one row was that number, and every later row was an outlier (every view lost). Numbers
    are judged from the third row read; the far one taken before is counted."""
    raw = make_session(
        snapshot("MKT-Z", seq=9 * 10**15, yes_bids={20: 1}, no_bids={70: 1}, ts=T0_MS),
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}, ts=T0_MS + 1),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=3, ts=T0_MS + 2),
        snapshot("MKT-B", seq=3, yes_bids={30: 2}, no_bids={60: 1}, ts=T0_MS + 3),
        delta("MKT-B", seq=4, side="no", price=61, new_size=5, ts=T0_MS + 4),
        delta("MKT-A", seq=5, side="no", price=56, new_size=2, ts=T0_MS + 5),
    )
    batch = {view.market_ticker: view for view in build_market_views(raw)}
    live, stream = live_views(raw)
    assert sorted(batch) == ["MKT-A", "MKT-B"] and sorted(live) == ["MKT-A", "MKT-B", "MKT-Z"]
    for ticker, view in batch.items():
        assert live[ticker]["features"] == view.features.tolist(), ticker
    assert stream.live_only["outlier_taken_before_judged"] == 1


def test_rows_of_a_market_rejected_earlier_go_with_it_in_a_commit_shared_with_another():
    """MKT-A is rejected (two different deltas share a number) after its first step; a
    later commit holds rows of MKT-A and of MKT-B: MKT-A's go with the market, as in the
    batch path (which has no view of it), and MKT-B's view goes on, equal to its batch
    view."""
    raw = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
        snapshot("MKT-B", seq=2, yes_bids={30: 5}, no_bids={60: 4}),
        delta("MKT-A", seq=3, side="yes", price=41, new_size=3, ts=T0_MS + 5),
        delta("MKT-A", seq=3, side="no", price=50, new_size=1, ts=T0_MS + 5),
        delta("MKT-A", seq=4, side="yes", price=42, new_size=2, ts=T0_MS + 9),
        delta("MKT-B", seq=5, side="yes", price=31, new_size=2, ts=T0_MS + 9),
    )
    [batch] = build_market_views(raw)
    live, stream = live_views(raw)
    assert list(stream.rejected) == ["MKT-A"] and len(live["MKT-A"]["timestamps_ms"]) == 1
    assert batch.market_ticker == "MKT-B" and len(batch) == 2
    for name, values in live["MKT-B"].items():
        assert values == getattr(batch, name).tolist(), name
