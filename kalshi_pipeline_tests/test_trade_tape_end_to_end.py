"""The trade tape end to end: simulator -> collector's tables -> Postgres source -> views.

A generated kalshi session is written to a scratch database by the collector writer, read
back by the Postgres source and built into views: every trade it recorded arrives in its
market's view, none dropped by cleaning and none off the recorded book.
"""

from __future__ import annotations

from collections import Counter
from contextlib import closing

import numpy as np
import psycopg2
import pytest

from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline.market.views import SessionViews
from kalshi_pipeline.sources import PostgresSessionSource
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_sessions

KALSHI = SimulatorConfig(population=Population.KALSHI, markets=40)
TRADE_REPAIRS = [k for k in RepairKind if k.value.startswith(("trade_", "duplicate_trade"))]


def _per_market(tickers, counts) -> tuple[Counter, Counter]:
    trades, contracts = Counter(), Counter()
    for ticker, count in zip(tickers, counts, strict=True):
        trades[ticker] += 1
        contracts[ticker] += int(count)
    return trades, contracts


@pytest.fixture(scope="module")
def generated():
    return list(simulate_sessions(2, 5, KALSHI))


@pytest.mark.parametrize("index", [0, 1])
def test_every_trade_of_a_collector_session_reaches_its_view(collector_tables, generated, index):
    with closing(psycopg2.connect(collector_tables)) as conn:
        for session in generated:
            write_collector_session(conn, session)
    raw = PostgresSessionSource(collector_tables).load_session(generated[index].session_id)
    tape = raw.trades
    assert tape is not None and tape.num_rows == generated[index].trades.num_rows
    assert tape.num_rows > 50  # enough trades for the comparison to mean something

    builder = SessionViews(raw)
    views = [view for batch in builder.batches() for view in batch]

    assert all(view.trade_tape for view in views)
    assert not any(view.trade_off_book.any() for view in views)
    assert {kind: builder.report.repairs[kind] for kind in TRADE_REPAIRS} == dict.fromkeys(
        TRADE_REPAIRS, 0
    )
    want = _per_market(tape["market_ticker"].to_pylist(), tape["count"].to_pylist())
    got = _per_market(
        [view.market_ticker for view in views for _ in view.trade_counts],
        np.concatenate([view.trade_counts for view in views]),
    )
    assert got == want
