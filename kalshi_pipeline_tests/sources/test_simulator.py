"""The simulator: deterministic, realistic in shape, clean, and carrying its signal."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pyarrow.compute as pc
import pytest

from kalshi_pipeline.market.books import reconstruct_books
from kalshi_pipeline.market.fees import taker_fee_cents as fee
from kalshi_pipeline.market.views import build_market_views
from kalshi_pipeline.sources.simulated_market import SimulatedMarketKind
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session


@pytest.fixture(scope="module")
def sessions():
    config = SimulatorConfig(population=Population.TWO_CLASS, markets=40)
    return [simulate_session(session_id, 5, config) for session_id in (1, 2, 3)]


@pytest.fixture(scope="module")
def books(sessions):
    return [reconstruct_books(session) for session in sessions]


def test_same_arguments_give_identical_sessions():
    config = SimulatorConfig(population=Population.TWO_CLASS, markets=12)
    first, again = simulate_session(3, 9, config), simulate_session(3, 9, config)
    assert first.snapshots.equals(again.snapshots)
    assert first.deltas.equals(again.deltas)
    assert first.info == again.info
    other_seed = simulate_session(3, 10, config)
    assert not first.deltas.equals(other_seed.deltas)


def test_rows_follow_the_collectors_conventions(sessions):
    for session in sessions:
        deltas = session.deltas
        prices = deltas.column("price").to_numpy()
        assert prices.min() >= 1 and prices.max() <= 99
        assert pc.min(deltas.column("new_size")).as_py() >= 0
        assert set(deltas.column("side").to_pylist()) == {"yes", "no"}
        sequences = np.sort(
            np.concatenate(
                [
                    session.snapshots.column("sequence_number").to_numpy(),
                    deltas.column("sequence_number").to_numpy(),
                ]
            )
        )
        # One session-wide sequence without gaps or repeats.
        assert np.array_equal(sequences, np.arange(1, len(sequences) + 1))
        start_ms = session.info.started_at.timestamp() * 1000
        end_ms = session.info.ended_at.timestamp() * 1000
        stamps = deltas.column("timestamp_ms").to_numpy()
        assert stamps.min() >= start_ms and stamps.max() <= end_ms
        assert session.info.status == "closed"


def test_simulated_sessions_need_no_repair_and_never_cross(books):
    for session_books in books:
        assert dict(session_books.report.repairs) == {}
        assert session_books.report.rejected == {}
        assert not session_books.crossed.any()


def test_markets_are_mostly_illiquid_with_a_liquid_minority(books):
    median_spreads = np.array(
        [
            np.median(
                b.best_yes_ask[b.market_rows(t)].astype(int) - b.best_yes_bid[b.market_rows(t)]
            )
            for b in books
            for t in b.tickers
        ]
    )
    wide = np.mean(median_spreads > 20)
    tight = np.mean(median_spreads <= 3)
    assert 0.65 <= wide <= 0.92
    assert 0.05 <= tight <= 0.35


def test_episode_lengths_coverage_and_bursts_vary_like_real_sessions(sessions, books):
    # docs/simulator.md: real views run from about 20 to 2,500 steps, median near 60.
    lengths = np.array([len(v) for s in sessions for v in build_market_views(s)])
    assert lengths.min() < 20 and lengths.max() > 250
    assert 45 <= np.median(lengths) <= 80

    coverage, gap_dispersion, same_ms = [], [], 0
    for b in books:
        span = b.timestamp_ms.max() - b.timestamp_ms.min()
        for t in b.tickers:
            stamps = b.timestamp_ms[b.market_rows(t)]
            coverage.append((stamps[-1] - stamps[0]) / span)
            gaps = np.diff(stamps)
            same_ms += int((gaps == 0).sum())
            if len(gaps) > 20:
                gap_dispersion.append(gaps.std() / max(gaps.mean(), 1e-9))
    coverage = np.array(coverage)
    assert coverage.min() < 0.3 and coverage.max() > 0.9
    # Bursts and quiet periods: inter-arrival times far more dispersed than a Poisson
    # process (whose coefficient of variation is 1).
    assert np.median(gap_dispersion) > 1.5
    assert same_ms > 100  # several events in one millisecond are common


def test_stored_asks_are_derived_from_the_opposite_bids(sessions):
    row = sessions[0].snapshots.slice(0, 1).to_pylist()[0]
    assert dict(row["yes_asks"]) == {100 - p: s for p, s in row["no_bids"]}
    assert dict(row["no_asks"]) == {100 - p: s for p, s in row["yes_bids"]}


def _round_trips(config: SimulatorConfig, horizon: int = 100, contracts: int = 10) -> dict:
    """Mean net result (cents per contract) of a taker round trip on the side a top-of-book
    imbalance beyond 0.8 points to: buy ``contracts`` at the ask, sell them at the bid
    ``horizon`` events later, Kalshi's taker fee paid both ways. Keyed by market kind:
    liquid (median spread <= 3 cents) or illiquid."""
    results: dict[SimulatedMarketKind, list[np.ndarray]] = {
        kind: [] for kind in SimulatedMarketKind
    }
    for session_id in (1, 2, 3, 4, 5, 6):
        b = reconstruct_books(simulate_session(session_id, 7, config))
        for ticker in b.tickers:
            rows = b.market_rows(ticker)
            yes_bid, no_bid = b.best_yes_bid[rows].astype(int), b.best_no_bid[rows].astype(int)
            if len(yes_bid) <= horizon:
                continue
            yes_top, no_top = b.best_yes_bid_size[rows], b.best_no_bid_size[rows]
            quoted = (yes_bid > 0) & (no_bid > 0)
            start, end = np.arange(len(yes_bid) - horizon), np.arange(horizon, len(yes_bid))
            imbalance = ((yes_top - no_top) / np.maximum(yes_top + no_top, 1))[start]
            buy_yes = (imbalance > 0.8) & quoted[start] & quoted[end]
            buy_no = (imbalance < -0.8) & quoted[start] & quoted[end]
            # YES: pay the YES ask (100 - NO bid), later get the YES bid; NO mirrors it.
            paid = np.where(buy_yes, 100 - no_bid[start], 100 - yes_bid[start])
            got = np.where(buy_yes, yes_bid[end], no_bid[end])
            trade = buy_yes | buy_no
            net = contracts * (got - paid) - fee(contracts, paid) - fee(contracts, got)
            tight = np.median(100 - no_bid - yes_bid) <= 3
            kind = SimulatedMarketKind.LIQUID if tight else SimulatedMarketKind.ILLIQUID
            results[kind].append(net[trade] / contracts)
    return {kind: np.concatenate(nets) for kind, nets in results.items()}


def test_book_imbalance_pays_for_a_round_trip_only_on_liquid_markets_with_the_signal():
    config = SimulatorConfig(population=Population.TWO_CLASS, markets=40)
    signal = _round_trips(config)
    control = _round_trips(replace(config, signal=False))
    assert all(len(nets) > 500 for nets in (*signal.values(), *control.values()))
    # With the signal, trading the imbalance on a tight book beats spread plus fees...
    assert signal["liquid"].mean() > 4.0
    # ...crossing a wide spread never pays, and without the signal nothing does.
    assert signal["illiquid"].mean() < -10.0
    assert control["liquid"].mean() < -2.0
    assert control["illiquid"].mean() < -10.0
