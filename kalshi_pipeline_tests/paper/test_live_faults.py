"""The live path on faulty sessions: whatever the batch cleaning handles, the live path
handles too, with the same views, or counts why it cannot (``SessionStream.live_only``).

Each session here is small and hand-made (or a few simulated markets), replayed one
receive millisecond per commit as the collector commits it."""

from __future__ import annotations

import dataclasses

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot, trade, with_tape
from kalshi_pipeline_tests.paper.recorded import live_views


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
