"""A seeded Kalshi market simulator writing sessions in the collector's raw schema.

Demo, tests and benchmarks need no recorded data: this module makes sessions that look
like the collector's (``docs/simulator.md``) and come out of the same code path as real
ones. ``SimulatorConfig.population`` picks the markets:

* ``kalshi`` (the default): calibrated to recorded Kalshi books and public trades
  (:mod:`~kalshi_pipeline.sources.kalshi_population`): long sparse sessions, quiet wide
  markets and a minority of active tight ones where a market maker quotes over a wide
  background ladder, and a trade tape whose every trade is a size decrease of its level in
  its millisecond. Takers follow the zero-profit rule (``kalshi_market``), so a resting
  order filled in the control is worth its price.
* ``two-class``: the earlier simulator, bit for bit
  (:mod:`~kalshi_pipeline.sources.simulated_market`): a liquid minority (spreads of 1-3
  cents) and illiquid markets (20-60 cents), two-hour sessions, no trade tape; the figures
  measured on it (the honesty table, the demo's store, the benchmarks) name it.

Both carry the learnable signal, our assumption: a hidden order-flow pressure that tilts
top-of-book sizes and drives the fair price; with ``signal=False`` (the control) it still
tilts the book but the fair price is a martingale, so nothing observable predicts it.
Books hold bids only (Kalshi's convention); stored ask maps are derived as ``100 - price``
from the opposite bids, as the current collector writes them; prices stay in 1..99 and
books never cross.

Everything is a function of ``(seed, session_id, config)``: the same arguments give the
same tables bit for bit. This module picks the markets (:func:`ticker_pool`, and which of
them a session records) and gives each its own random generator;
:mod:`~kalshi_pipeline.sources.simulated_session` assembles the session and
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
