"""A seeded Kalshi market simulator writing sessions in the collector's raw schema.

Demo, tests and benchmarks need no recorded data: this module makes sessions that look
like the collector's (``docs/simulator.md``) and come out of the same code path as real
ones.

What a simulated session looks like
-----------------------------------
* A pool of ``1.5 x markets`` tickers per seed; each session records ``markets`` of them,
  so the same market appears in several sessions (which the market-grouped split needs).
  A ticker keeps its character across sessions: about 20% are *liquid* (half-spread
  0.2-0.9 cents, so spreads of 1-3 cents, eight displayed levels, sizes around 200) and
  the rest *illiquid* (spreads of 20-60 cents, three levels, sizes around 20).
* Markets open and close inside the session (half of them cover all of it), so
  ``market_coverage`` varies. Each market's activity is log-normal: the default
  ``median_events_per_market=160`` is about 64 book changes, and as a view has one step
  per book change (per millisecond with events), views run from about 10 to several
  hundred steps with a median near 60.
* Updates come in bursts and quiet periods (a two-state regime on inter-arrival times);
  all the deltas one book change causes share a millisecond, and the session-wide
  sequence number orders them.
* Books hold bids only (Kalshi's convention). Stored ask maps are derived as
  ``100 - price`` from the opposite bids, as the current collector writes them.
  Prices stay in 1..99 and books never cross.

The learnable signal
--------------------
Every market carries a hidden *order-flow pressure* ``x`` (an AR(1) process, persistence
``pressure_persistence`` per book change, unit variance). Each book change refreshes the
best level of one side with its size tilted by ``exp(+imbalance_sensitivity * x)`` on the
YES bids or ``exp(-imbalance_sensitivity * x)`` on the NO bids (a new best price arrives
with such a size too), so the top-of-book imbalance reveals ``x``; and the fair price
drifts by ``drift_cents_per_step * x`` per book change. Book imbalance therefore predicts
the next mid moves, as in real order books. Moves are sized at a 50-cent price and
shrink towards the extremes (``simulated_market._fair_path``), so prices stay inside
1..99 without ever being folded back at a bound, which would invert the signal there.

The size is set against real costs. A taker round trip of 10 contracts on the side a
top-of-book imbalance beyond 0.8 points to, sold 100 events later, pays the spread and
Kalshi's fee both ways; with the defaults it nets about +6 cents per contract on liquid
markets (1-3 cent spreads) and about -28 on illiquid ones (20-60 cent spreads), and in the
control about -6 and -37 (measured in ``kalshi_pipeline_tests/sources/test_simulator.py``).
A good agent
must learn where to trade, not only how, and must hold a position for a while: the move
builds over tens of book changes (a few times as many events), while crossing the spread
costs at once.

With ``signal=False`` (the control) the pressure still tilts the book exactly as above,
but the price is a martingale: independent moves whose variance over 20 book changes
matches the signal run's. Neither the book nor past moves tell anything about the future,
so no agent should beat always-HOLD after fees.

Everything is a function of ``(seed, session_id, config)``: the same arguments give the
same tables bit for bit. This module picks the markets (:func:`ticker_pool`, and which of
them a session records) and gives each its own random generator;
:mod:`~kalshi_pipeline.sources.simulated_market` simulates one market,
:mod:`~kalshi_pipeline.sources.simulated_session` assembles the session, and
:mod:`~kalshi_pipeline.sources.simulator_config` holds the knobs.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta

import numpy as np
from tqdm.auto import tqdm

from kalshi_pipeline.sources.kalshi_population import (
    KalshiTraits,
    kalshi_pool,
    simulate_kalshi_market,
)
from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline.sources.simulated_market import MarketTraits, simulate_market
from kalshi_pipeline.sources.simulated_session import assemble_session
from kalshi_pipeline.sources.simulator_config import Population, SimulatorConfig

# SimulatorConfig (with its Population) is public here too: docs/contracts.md names it
# beside simulate_session.
__all__ = ["Population", "SimulatorConfig", "simulate_session", "simulate_sessions", "ticker_pool"]

_BASE_TIME = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


def ticker_pool(seed: int, config: SimulatorConfig) -> list[MarketTraits] | list[KalshiTraits]:
    """The seed's universe of markets, each with its lasting character (the population's
    traits)."""
    config = config.resolved()
    if config.population is Population.KALSHI:
        return kalshi_pool(seed, config)
    size = max(config.markets, int(np.ceil(config.markets * config.ticker_pool_factor)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7]))
    series = ["KXBTC", "KXETH", "KXFED", "KXCPI", "KXNBA", "KXNFL", "KXRAIN", "KXGDP"]
    pool = []
    for index in range(size):
        liquid = bool(rng.random() < config.liquid_fraction)
        pool.append(
            MarketTraits(
                ticker=f"{series[index % len(series)]}-26JAN-S{index:04d}",
                liquid=liquid,
                start_price_cents=float(rng.uniform(8, 92)),
                half_spread_cents=float(rng.uniform(0.2, 0.9) if liquid else rng.uniform(10, 30)),
                depth_levels=8 if liquid else 3,
                log_size=float(np.log(200.0) if liquid else np.log(20.0)),
            )
        )
    return pool


def simulate_session(
    session_id: int,
    seed: int,
    config: SimulatorConfig | None = None,
    *,
    on_market: Callable[[], None] | None = None,
) -> RawSession:
    """One closed session of ``config.markets`` markets in the raw schema.

    ``on_market`` is called after each market is simulated (for progress bars).
    """
    config = (config or SimulatorConfig()).resolved()
    pool = ticker_pool(seed, config)
    rng = np.random.default_rng(np.random.SeedSequence([seed, session_id]))
    chosen = np.sort(rng.choice(len(pool), size=config.markets, replace=False))
    duration_ms = int(config.session_minutes * 60_000)
    simulate = simulate_kalshi_market if config.population is Population.KALSHI else simulate_market
    markets = []
    for index in chosen:
        market_rng = np.random.default_rng(np.random.SeedSequence([seed, session_id, int(index)]))
        markets.append(simulate(market_rng, pool[index], config, duration_ms))
        if on_market is not None:
            on_market()
    started_at = _BASE_TIME + timedelta(days=int(session_id))
    tickers = [pool[i].ticker for i in chosen]
    return assemble_session(session_id, started_at, duration_ms, tickers, markets)


def simulate_sessions(
    sessions: int, seed: int, config: SimulatorConfig | None = None, *, progress: bool = False
) -> Iterator[RawSession]:
    """Sessions 1..``sessions`` one at a time (only one is held in memory)."""
    config = (config or SimulatorConfig()).resolved()
    with tqdm(
        total=sessions * config.markets, unit="market", desc="simulating", disable=not progress
    ) as bar:
        for session_id in range(1, sessions + 1):
            yield simulate_session(session_id, seed, config, on_market=bar.update)
