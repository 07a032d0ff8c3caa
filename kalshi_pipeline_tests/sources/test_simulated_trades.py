"""The kalshi population's trade tape agrees with its book, read from the raw tables only."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_sessions
from kalshi_pipeline.sources.trades import TAKER_SIDES, TRADE_SCHEMA

KALSHI = SimulatorConfig(population=Population.KALSHI, markets=60, session_minutes=600.0)


@pytest.fixture(scope="module")
def store():
    return list(simulate_sessions(3, 2, KALSHI))


def _columns(table, *names):
    return [table.column(name).to_numpy(zero_copy_only=False) for name in names]


def test_every_trade_is_a_size_decrease_of_its_level_in_its_millisecond(store):
    matched = 0
    for session in store:
        trades = session.trades
        assert trades is not None and trades.schema.equals(TRADE_SCHEMA)
        ticker, ms, yes_price, no_price, count, taker = _columns(
            trades, "market_ticker", "timestamp_ms", "yes_price", "no_price", "count",
            "taker_side",
        )  # fmt: skip
        d_ticker, d_ms, side, price, old, new = _columns(
            session.deltas, "market_ticker", "timestamp_ms", "side", "price", "old_size",
            "new_size",
        )  # fmt: skip
        # Taker "no" hits the YES bid at yes_price; taker "yes" lifts the NO bid at no_price.
        book_side = np.where(taker == "no", "yes", "no")
        level = np.where(taker == "no", yes_price, no_price)
        wanted = Counter(zip(ticker, ms, book_side, level, count, strict=True))
        decreases = old > new
        offered = Counter(
            zip(d_ticker[decreases], d_ms[decreases], side[decreases], price[decreases],
                (old - new)[decreases], strict=True)
        )  # fmt: skip
        missing = wanted - offered
        assert not missing, f"session {session.session_id}: trades without their decrease"
        matched += sum(wanted.values())
    assert matched > 300


def test_trades_are_numbered_before_the_deltas_of_their_millisecond(store):
    for session in store:
        trades, deltas, snapshots = session.trades, session.deltas, session.snapshots
        numbers = np.concatenate(
            [t.column("sequence_number").to_numpy() for t in (trades, deltas, snapshots)]
        )
        assert np.array_equal(np.sort(numbers), np.arange(1, len(numbers) + 1))
        first_delta: dict[tuple[str, int], int] = {}
        for ticker, ms, seq in zip(*_columns(deltas, "market_ticker", "timestamp_ms",
                                             "sequence_number"), strict=True):  # fmt: skip
            key = (ticker, int(ms))
            first_delta[key] = min(first_delta.get(key, seq), seq)
        for ticker, ms, seq in zip(*_columns(trades, "market_ticker", "timestamp_ms",
                                             "sequence_number"), strict=True):  # fmt: skip
            assert seq < first_delta[(ticker, int(ms))]
        assert np.all(np.diff(trades.column("sequence_number").to_numpy()) > 0)


def test_trade_rows_are_well_formed_and_their_ids_unique(store):
    ids = []
    for session in store:
        t = session.trades
        yes, no, count = _columns(t, "yes_price", "no_price", "count")
        assert ((yes >= 1) & (yes <= 99) & (yes + no == 100) & (count >= 1)).all()
        assert set(t.column("taker_side").to_pylist()) <= set(TAKER_SIDES)
        exchange, received = _columns(t, "exchange_ts_ms", "timestamp_ms")
        assert ((exchange <= received) & (received - exchange < 1000)).all()
        assert exchange.min() >= session.info.started_at.timestamp() * 1000
        ids += t.column("trade_id").to_pylist()
    assert len(set(ids)) == len(ids)


def test_the_two_class_population_records_no_tape_and_kalshi_an_empty_one_when_quiet():
    two_class = SimulatorConfig(population=Population.TWO_CLASS, markets=3)
    assert next(simulate_sessions(1, 0, two_class)).trades is None
    # A few minutes of a handful of quiet markets: a tape with no trade, not no tape.
    short = SimulatorConfig(population=Population.KALSHI, markets=2, session_minutes=1.0)
    session = next(simulate_sessions(1, 0, short))
    assert session.trades is not None and session.trades.schema.equals(TRADE_SCHEMA)
    assert session.trades.num_rows == 0
