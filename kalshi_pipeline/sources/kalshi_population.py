"""The kalshi population: markets drawn to look like recorded Kalshi books and trades.

Each ticker of a seed's pool gets lasting traits (:class:`KalshiTraits`), drawn from the
distributions below; :func:`simulate_kalshi_market` turns a ticker's traits and its own
random generator into one session's events with
:func:`~kalshi_pipeline.sources.kalshi_market.run_market`. ``docs/simulator.md`` says
which recorded figures the constants are calibrated to (the per-observation and
per-market spreads, update rates, resting sizes and public trades of
``benchmarks/kalshi_reference/``) and which are our assumptions.

The model: a market is *quiet* or *active*. A quiet market (about four in five) changes
its book a few times an hour; an active one tens of times an hour or more. Activity and
tightness go together, as recorded: active markets mostly have a market maker quoting a
narrow spread over a wide background ladder; quiet ones mostly have the background only.
When the maker steps away from a side, the spread opens to the background's: spreads are
narrow most of the time in active markets and wide now and then.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any, Self

import numpy as np

from kalshi_pipeline.sources import kalshi_market as km
from kalshi_pipeline.sources.simulated_market import MarketEvents, MarketTrades
from kalshi_pipeline.sources.simulator_config import SimulatorConfig

# Calibrated to benchmarks/kalshi_reference/ (docs/simulator.md): the shares and scales
# of activity, tightness, depth and size.
ACTIVE_SHARE = 0.22
QUIET_BURSTS_PER_HOUR, QUIET_BURSTS_SIGMA = 2.2, 0.12  # log10 sigma
ACTIVE_BURSTS_PER_HOUR, ACTIVE_BURSTS_SIGMA = 9.0, 0.5
QUIET_MAKER_SHARE = 0.4  # quiet markets with a maker at all
SIZE_SCALE, SIZE_SIGMA = 700.0, 1.2  # median resting size, log sigma over markets
ROUND_SHARE = 0.7  # new resting orders sized at a round number
# Trade sizes: log-normal fitted to the recorded size buckets (median ~29 contracts).
TRADE_LOG_SIZE, TRADE_SIGMA = 3.36, 1.89
# Where the quotes sit around the fair price: the YES bid this share of the spread below.
QUOTE_POSITION = 0.72
# Our assumptions (the reference does not measure them): how often a burst opens with a
# taker, how often another follows, and the maker's habits.
ACTIVE_TRADE_RATE, QUIET_TRADE_RATE = 0.25, 0.03
TRADE_MORE, REQUOTE_BETWEEN, CANCEL_FIRST = 0.5, 0.3, 0.5
BURST_GAP_MS, TRADE_GAP_MS, REFRESH_MORE = 90.0, 1200.0, 0.3
SERIES = (
    "KXPRESNOMR", "KXSCOURT", "KXFEDDECISION", "KXTRUMPPARDONS", "KXGDP", "KXCPI",
    "KXNBAGAME", "KXBTCD", "KXOSCARPIC", "KXHIGHNY",
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class KalshiTraits:
    """A ticker's lasting character in the kalshi population (cents, contracts, hours)."""

    ticker: str
    active: bool
    start_price_cents: float
    bursts_per_hour: float  # how often something happens in the market
    maker_presence: float  # share of the time the maker quotes a side, in the long run
    maker_spread_cents: float  # the maker's spread (true: ask - bid)
    background_spread_cents: float  # the background ladder's spread
    depth_levels: int  # background levels per side
    level_gap_cents: float  # mean gap between background levels
    size_scale: float  # median resting size of a new order
    maker_size: int
    trade_rate: float  # probability that a burst opens with a taker

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)


def kalshi_pool(seed: int, config: SimulatorConfig) -> list[KalshiTraits]:
    """The seed's universe of kalshi-population markets, each with its lasting traits."""
    size = max(config.markets, int(np.ceil(config.markets * config.ticker_pool_factor)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6B]))
    return [_traits(rng, f"{SERIES[i % len(SERIES)]}-26DEC-K{i:04d}") for i in range(size)]


def _traits(rng: np.random.Generator, ticker: str) -> KalshiTraits:
    active = bool(rng.random() < ACTIVE_SHARE)
    if active:
        bursts = ACTIVE_BURSTS_PER_HOUR * 10 ** (ACTIVE_BURSTS_SIGMA * rng.normal())
        presence, maker_spread = rng.beta(6.0, 1.5), 1.0 + np.exp(np.log(1.5) + 0.8 * rng.normal())
        depth, trade_rate = int(rng.integers(5, 13)), ACTIVE_TRADE_RATE
    else:
        bursts = QUIET_BURSTS_PER_HOUR * 10 ** (QUIET_BURSTS_SIGMA * rng.normal())
        presence = rng.beta(2.0, 2.0) if rng.random() < QUIET_MAKER_SHARE else 0.0
        maker_spread = 1.0 + np.exp(np.log(6.0) + 0.9 * rng.normal())
        depth, trade_rate = int(rng.integers(2, 6)), QUIET_TRADE_RATE
    scale = SIZE_SCALE * np.exp(SIZE_SIGMA * rng.normal())
    maker_size = km.ROUND_SIZES[np.argmin(np.abs(np.log(km.ROUND_SIZES / scale)))]
    return KalshiTraits(
        ticker=ticker,
        active=active,
        start_price_cents=float(rng.uniform(3, 97)),
        bursts_per_hour=float(bursts),
        maker_presence=float(presence),
        maker_spread_cents=float(min(maker_spread, 60.0)),
        background_spread_cents=float(np.clip(np.exp(np.log(45.0) + 0.6 * rng.normal()), 8, 98)),
        depth_levels=depth,
        level_gap_cents=float(rng.uniform(0.5, 4.0)),
        size_scale=float(scale),
        maker_size=int(maker_size),
        trade_rate=float(trade_rate),
    )


def market_parameters(
    traits: KalshiTraits, config: SimulatorConfig, duration_ms: int, resnapshot_ms: int
) -> np.ndarray:
    """The parameter vector :func:`~kalshi_pipeline.sources.kalshi_market.run_market`
    reads."""
    p = np.zeros(km.N_PARAMETERS)
    p[km.P_PRESENCE], p[km.P_SWITCH] = traits.maker_presence, 0.3
    p[km.P_MAKER_SPREAD], p[km.P_BG_SPREAD] = (
        traits.maker_spread_cents,
        traits.background_spread_cents,
    )
    p[km.P_DEPTH], p[km.P_GAP] = traits.depth_levels, traits.level_gap_cents
    p[km.P_LOG_SIZE], p[km.P_MAKER_SIZE] = np.log(traits.size_scale), traits.maker_size
    p[km.P_TRADE], p[km.P_TRADE_MORE] = traits.trade_rate, TRADE_MORE
    p[km.P_REQUOTE_BETWEEN], p[km.P_CANCEL_FIRST] = REQUOTE_BETWEEN, CANCEL_FIRST
    p[km.P_POSITION], p[km.P_SIGNAL] = QUOTE_POSITION, 1.0 if config.signal else 0.0
    p[km.P_DRIFT], p[km.P_NOISE] = config.drift_cents_per_step, config.noise_cents_per_step
    p[km.P_PERSIST], p[km.P_SENSITIVITY] = config.pressure_persistence, config.imbalance_sensitivity
    p[km.P_CONTROL_SCALE] = control_move_scale(config)
    p[km.P_GAP_MS], p[km.P_TRADE_GAP_MS], p[km.P_REFRESH_MORE] = (
        BURST_GAP_MS,
        TRADE_GAP_MS,
        REFRESH_MORE,
    )
    p[km.P_DURATION_MS], p[km.P_RESNAPSHOT_MS] = duration_ms, resnapshot_ms
    p[km.P_START], p[km.P_ROUND] = traits.start_price_cents, ROUND_SHARE
    p[km.P_TRADE_LOG_SIZE], p[km.P_TRADE_SIGMA] = TRADE_LOG_SIZE, TRADE_SIGMA
    return p


def control_move_scale(config: SimulatorConfig, horizon: int = 20) -> float:
    """The control's news size: a martingale as volatile over ``horizon`` bursts as the
    signal run's drift and noise."""
    rho = config.pressure_persistence
    lags = np.arange(1, horizon)
    summed_pressure_var = horizon + 2 * np.sum((horizon - lags) * rho**lags)
    variance = config.drift_cents_per_step**2 * summed_pressure_var / horizon
    return float(np.sqrt(variance + config.noise_cents_per_step**2))


def simulate_kalshi_market(
    rng: np.random.Generator, traits: KalshiTraits, config: SimulatorConfig, duration_ms: int
) -> MarketEvents:
    """The market's events and trades over a session of ``duration_ms``, drawn from
    ``rng`` (in this order: the book's seed, the bursts' times, a reconnect)."""
    seed = int(rng.integers(0, 2**32))
    bursts = rng.poisson(traits.bursts_per_hour * duration_ms / 3_600_000)
    burst_ms = np.sort(rng.uniform(1, duration_ms, bursts)).astype(np.int64)
    resnapshot_ms = -1
    if rng.random() < config.resnapshot_probability:
        resnapshot_ms = int(rng.uniform(0.25, 1.0) * duration_ms)
    p = market_parameters(traits, config, duration_ms, resnapshot_ms)
    capacity = 8 * bursts + 64
    while True:
        events, fair, trades, books, enough = km.run_market(p, burst_ms, seed, capacity)
        if enough:
            break
        capacity *= 4
    snapshot = events[:, km.E_LEVEL] < 0
    return MarketEvents(
        offset_ms=events[:, km.E_OFFSET].copy(),
        is_snapshot=snapshot,
        level=events[:, km.E_LEVEL].astype(np.int16),
        new_size=np.where(snapshot, 0, events[:, km.E_NEW]),
        old_size=np.where(snapshot, 0, events[:, km.E_OLD]),
        snapshot_books=books,
        trades=MarketTrades(
            event=trades[:, km.T_EVENT].copy(),
            yes_price=trades[:, km.T_YES_PRICE].copy(),
            count=trades[:, km.T_COUNT].copy(),
            taker_yes=trades[:, km.T_TAKER_YES].astype(bool),
        ),
        fair_cents=fair.copy(),
    )
