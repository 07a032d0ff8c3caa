"""The live path on faulty sessions: whatever the batch cleaning handles, the live path
handles too, with the same views, or counts why it cannot (``SessionStream.live_only``).

Each session here is small and hand-made (or a few simulated markets), replayed one
receive millisecond per commit as the collector commits it."""

from __future__ import annotations

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
