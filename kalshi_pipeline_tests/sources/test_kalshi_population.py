"""The kalshi population: a control whose resting orders earn nothing, a signal that is
there, takers who follow the zero-profit rule, and sessions that need no repair.

Markets are simulated one at a time here (:func:`simulate_kalshi_market`), so that the
fair price the simulator keeps hidden from the raw tables can be read beside each event.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import bootstrap

from kalshi_pipeline.market.books import reconstruct_books
from kalshi_pipeline.market.cleaning import clean_session
from kalshi_pipeline.sources import kalshi_market, kalshi_quotes
from kalshi_pipeline.sources.kalshi_population import KalshiTraits, simulate_kalshi_market
from kalshi_pipeline.sources.raw import LEVELS
from kalshi_pipeline.sources.simulated_market import MarketEvents
from kalshi_pipeline.sources.simulator import (
    Population,
    SimulatorConfig,
    simulate_session,
    ticker_pool,
)

KALSHI = SimulatorConfig(population=Population.KALSHI)


def simulated_markets(config: SimulatorConfig, seed: int, markets: int, sessions: int) -> list:
    """``sessions`` sessions of the first ``markets`` markets of the seed's pool."""
    config = config.resolved()
    pool, duration = ticker_pool(seed, config), int(config.session_minutes * 60_000)
    return [
        simulate_kalshi_market(
            np.random.default_rng(np.random.SeedSequence([seed, session, i])), traits, config,
            duration,
        )
        for session in range(sessions)
        for i, traits in enumerate(pool[:markets])
    ]  # fmt: skip


@pytest.fixture(scope="module")
def control() -> list[MarketEvents]:
    return simulated_markets(SimulatorConfig(signal=False), 11, 300, 4)


@pytest.fixture(scope="module")
def signal() -> list[MarketEvents]:
    return simulated_markets(SimulatorConfig(signal=True), 11, 300, 4)


def passive_markouts(markets: list[MarketEvents], horizon: int | None) -> tuple:
    """Per market: the sum over its fills of the resting side's markout per contract
    (cents), and the number of fills. The markout of a YES bid filled at ``p`` is
    ``F - p``, of a NO bid filled at ``100 - p`` (the taker bought YES at ``p``) is
    ``(100 - F) - (100 - p)``, with ``F`` the fair price ``horizon`` book changes after
    the fill (the session's last when fewer follow); ``horizon=None``: the fair price just
    before the fill, as if the trade had not moved it."""
    sums, fills = [], []
    for m in markets:
        t = m.trades
        if len(t.count) == 0:
            continue
        if horizon is None:
            fair = m.fair_cents[t.event - 1]
        else:
            changes = np.flatnonzero(~m.is_snapshot)
            later = np.minimum(np.searchsorted(changes, t.event) + horizon, len(changes) - 1)
            fair = m.fair_cents[changes[later]]
        value = np.where(t.taker_yes, t.yes_price - fair, fair - t.yes_price)
        sums.append(value.sum())
        fills.append(len(value))
    return np.array(sums), np.array(fills, np.float64)


def interval(sums: np.ndarray, fills: np.ndarray) -> tuple[float, float]:
    """A 95% bootstrap interval of the mean markout, resampling whole markets (fills of a
    market share its fair-price path)."""
    result = bootstrap(
        (sums, fills), lambda s, n: s.sum() / n.sum(), paired=True, vectorized=False,
        n_resamples=2000, random_state=0,
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def test_a_resting_order_filled_in_the_control_is_worth_its_price(control):
    sums, fills = passive_markouts(control, 20)
    assert fills.sum() > 3_000
    for horizon in (1, 5, 20, 100):
        low, high = interval(*passive_markouts(control, horizon))
        assert low < 0 < high, (horizon, low, high)
    # The test can fail: valued at the fair price before the trade (as if the fill told
    # nothing), the same fills earn more than a cent each.
    low, _ = interval(*passive_markouts(control, None))
    assert low > 1.0


def test_the_taker_buys_yes_with_the_probability_the_fair_price_sets(control):
    q, bought_yes = [], []
    for m in control[:300]:
        book = m.snapshot_books[0].copy()
        snapshots = iter(m.snapshot_books[1:])
        trade_at = dict(zip(m.trades.event.tolist(), m.trades.taker_yes.tolist(), strict=True))
        for e in range(1, len(m.offset_ms)):
            if e in trade_at:
                bid = np.flatnonzero(book[:LEVELS])[-1] + 1
                ask = 100 - (np.flatnonzero(book[LEVELS:])[-1] + 1)
                q.append((m.fair_cents[e - 1] - bid) / (ask - bid))
                bought_yes.append(trade_at[e])
            if m.is_snapshot[e]:
                book = next(snapshots).copy()
            else:
                book[m.level[e]] = m.new_size[e]
    q, bought_yes = np.array(q), np.array(bought_yes)
    assert ((q >= 0) & (q <= 1)).all()
    for low, high in ((0.0, 0.5), (0.5, 0.8), (0.8, 0.99)):
        inside = (q >= low) & (q < high)
        share, expected = bought_yes[inside].mean(), q[inside].mean()
        assert abs(share - expected) < 4 * np.sqrt(expected * (1 - expected) / inside.sum())
    assert 0.65 < bought_yes.mean() < 0.8  # recorded: 72.2% of takers buy YES


def imbalance_slope(markets: list[MarketEvents], horizon: int) -> tuple[float, float]:
    """A 95% interval of the slope of the fair price's change over the next ``horizon``
    events on the top-of-book imbalance (YES bid size - NO bid size over their sum) after
    each event, resampling whole markets."""
    sums = []
    for m in markets:
        book, snapshots = m.snapshot_books[0].copy(), iter(m.snapshot_books[1:])
        x = np.full(len(m.offset_ms), np.nan)
        for e in range(len(m.offset_ms)):
            if e and m.is_snapshot[e]:
                book = next(snapshots).copy()
            elif e:
                book[m.level[e]] = m.new_size[e]
            yes, no = np.flatnonzero(book[:LEVELS]), np.flatnonzero(book[LEVELS:])
            if len(yes) and len(no):
                top_yes, top_no = book[yes[-1]], book[LEVELS + no[-1]]
                x[e] = (top_yes - top_no) / (top_yes + top_no)
        if len(x) > horizon:
            x, y = x[:-horizon], m.fair_cents[horizon:] - m.fair_cents[:-horizon]
            x, y = x[np.isfinite(x)], y[np.isfinite(x)]
            sums.append((len(x), x.sum(), y.sum(), (x * y).sum(), (x * x).sum()))
    n, sx, sy, sxy, sxx = np.array(sums).T

    def slope(n, sx, sy, sxy, sxx):
        total = n.sum()
        return (sxy.sum() - sx.sum() * sy.sum() / total) / (sxx.sum() - sx.sum() ** 2 / total)

    result = bootstrap(
        (n, sx, sy, sxy, sxx), slope, paired=True, vectorized=False, n_resamples=1000,
        random_state=0,
    )  # fmt: skip
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def test_book_imbalance_foretells_the_fair_price_only_with_the_signal(signal, control):
    low, _ = imbalance_slope(signal, 50)
    assert low > 0.5  # cents of fair price per unit of imbalance, over 50 book changes
    low, high = imbalance_slope(control, 50)
    assert low < 0 < high


def test_same_arguments_give_identical_sessions_trades_included():
    first, again = simulate_session(2, 4, KALSHI), simulate_session(2, 4, KALSHI)
    for name in ("snapshots", "deltas", "trades"):
        assert getattr(first, name).equals(getattr(again, name)), name
    assert first.info == again.info
    assert not first.trades.equals(simulate_session(2, 5, KALSHI).trades)


def test_kalshi_sessions_need_no_repair_never_cross_and_change_a_level_at_a_time():
    raw = simulate_session(1, 3, SimulatorConfig(population=Population.KALSHI, markets=60))
    events = clean_session(raw)
    assert dict(events.report.repairs) == {} and events.report.rejected == {}
    books = reconstruct_books(raw)
    assert not books.crossed.any()
    # One delta per book change: every millisecond of a market has exactly one delta.
    deltas = raw.deltas.select(["market_ticker", "timestamp_ms"]).to_pylist()
    keys = [(row["market_ticker"], row["timestamp_ms"]) for row in deltas]
    assert len(set(keys)) == len(keys)


def test_traits_round_trip_through_json_and_activity_goes_with_tightness():
    pool = ticker_pool(0, SimulatorConfig(population=Population.KALSHI, markets=200))
    for traits in pool[:20]:
        assert KalshiTraits.from_json(traits.to_json()) == traits
    active = [t for t in pool if t.active]
    quiet = [t for t in pool if not t.active]
    assert 0.15 < len(active) / len(pool) < 0.3
    assert min(t.bursts_per_hour for t in active) < max(t.bursts_per_hour for t in quiet) * 2
    assert np.median([t.bursts_per_hour for t in active]) > 2 * np.median(
        [t.bursts_per_hour for t in quiet]
    )
    assert all(t.maker_presence > 0 for t in active)
    assert np.mean([t.maker_presence > 0 for t in quiet]) < 0.35


def test_compiled_modules_name_the_sources_they_were_compiled_with():
    """numba's cache of a module's machine code is invalidated by that file alone: a module
    that calls into another carries the other's digest, so that changing the callee
    changes the caller too (and its cache is rebuilt)."""
    for module in (kalshi_quotes, kalshi_market):
        for name, digest in module.COMPILED_WITH.items():
            source = Path(module.__file__).with_name(name).read_bytes()
            assert hashlib.sha256(source).hexdigest()[:16] == digest, (
                f"{name} changed: set its digest in {Path(module.__file__).name}'s "
                "COMPILED_WITH, or numba runs the machine code of the old one"
            )
