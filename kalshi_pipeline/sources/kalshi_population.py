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
from statistics import NormalDist
from typing import Any, Self

import numpy as np

from kalshi_pipeline.sources import kalshi_book as kb
from kalshi_pipeline.sources.kalshi_market import run_market
from kalshi_pipeline.sources.simulated_market import MarketEvents, MarketTrades
from kalshi_pipeline.sources.simulator_config import SimulatorConfig

# Calibrated to benchmarks/kalshi_reference/ (docs/simulator.md): the shares and scales
# of activity, tightness, depth and size. Spreads are true spreads (ask - bid), cents.
ACTIVE_SHARE = 0.22
QUIET_BURSTS_PER_HOUR, QUIET_BURSTS_SIGMA, QUIET_REGULARITY = 1.9, 0.07, 12.0  # log10 sigma
ACTIVE_BURSTS_PER_HOUR, ACTIVE_BURSTS_SIGMA = 5.5, 0.5
ACTIVE_PRESENCE, ACTIVE_SWITCH = (0.47, 0.77), 0.3  # maker presence ~ U(low, high)
ACTIVE_MAKER_SPREAD, ACTIVE_MAKER_SIGMA = 4.5, 0.25
WIDTH_SIGMA, WIDTH_CHANGE = 0.6, 0.1  # the maker's width varies around its usual spread
QUIET_MAKER_SHARE, QUIET_PRESENCE, QUIET_SWITCH = 0.2, (0.8, 1.0), 0.05
QUIET_MAKER_SPREAD, QUIET_MAKER_SIGMA = 4.0, 0.5
BACKGROUND_SPREAD = (1.3, 1.0)  # Kumaraswamy(a, b) over 8..98 cents
ACTIVE_DEPTH, QUIET_DEPTH = (5, 13), (2, 6)  # background levels a side, [low, high)
SIZE_SCALE, SIZE_SIGMA = 950.0, 1.1  # median resting size, log sigma over markets
WHALE_SHARE, WHALE_SCALE = 0.12, 10_000.0  # markets whose orders are far larger
ROUND_SHARE = 0.7  # new resting orders sized at a round number
RETAIL_SHARE, RETAIL_SIZE = 0.15, 6.0  # small orders among the background's
# Trade sizes: log-normal fitted to the recorded size buckets (median ~29 contracts).
TRADE_LOG_SIZE, TRADE_SIGMA = 3.36, 1.89
# Where the quotes sit around the fair price: the YES bid this share of the spread below.
QUOTE_POSITION = 0.78
# Our assumptions (the reference does not measure them): how often a burst opens with a
# taker, how often another follows, and the maker's habits.
ACTIVE_TRADE_RATE, QUIET_TRADE_RATE, TRADE_SPREAD = 0.4, 0.08, 5.0
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
    burst_regularity: float  # gamma shape of the gaps between bursts (1: Poisson)
    maker_presence: float  # share of the time the maker quotes a side, in the long run
    maker_switch: float  # how readily the maker arrives or leaves at a burst
    maker_spread_cents: float  # the maker's spread (true: ask - bid)
    background_spread_cents: float  # the background ladder's spread
    depth_levels: int  # background levels per side
    level_gap_cents: float  # mean gap between background levels
    size_scale: float  # median resting size of a new order
    maker_size: int
    trade_rate: float  # probability that a burst opens with a taker (on a tight book)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)


def kalshi_pool(seed: int, config: SimulatorConfig) -> list[KalshiTraits]:
    """The seed's universe of kalshi-population markets, each with its lasting traits.

    The traits that the calibrated figures are about are drawn *stratified*: the kinds
    (active, quiet with a maker, quiet without) over the pool, then each trait over the
    markets of a kind, one draw from each of ``n`` equal slices of its distribution,
    shuffled. A pool of a hundred markets then covers each distribution as evenly as a
    large one would, so a small store's figures do not hang on a few lucky draws.
    """
    size = max(config.markets, int(np.ceil(config.markets * config.ticker_pool_factor)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x6B]))
    kind_u = _stratified(rng, size)
    kinds = np.where(
        kind_u < ACTIVE_SHARE,
        ACTIVE,
        np.where(
            kind_u < ACTIVE_SHARE + (1 - ACTIVE_SHARE) * QUIET_MAKER_SHARE, QUIET_MAKER, QUIET
        ),
    )
    strata = np.zeros((size, len(STRATIFIED)))
    for kind in (ACTIVE, QUIET_MAKER, QUIET):
        members = np.flatnonzero(kinds == kind)
        for column in range(len(STRATIFIED)):
            strata[members, column] = _stratified(rng, len(members))
    return [
        _traits(rng, f"{SERIES[i % len(SERIES)]}-26DEC-K{i:04d}", int(kinds[i]),
                dict(zip(STRATIFIED, strata[i], strict=True)))
        for i in range(size)
    ]  # fmt: skip


# The kinds of market, and the traits drawn stratified within a kind (in this order).
ACTIVE, QUIET_MAKER, QUIET = 0, 1, 2
STRATIFIED = ("activity", "presence", "maker_spread", "background", "size", "price")


def _stratified(rng: np.random.Generator, n: int) -> np.ndarray:
    """``n`` uniforms on (0, 1), one in each slice ``[i/n, (i+1)/n)``, in random order."""
    return (rng.permutation(n) + rng.random(n)) / n


def _normal(u: float) -> float:
    return NormalDist().inv_cdf(min(max(u, 1e-9), 1 - 1e-9))


def _traits(rng: np.random.Generator, ticker: str, kind: int, u: dict[str, float]) -> KalshiTraits:
    """One ticker's traits; ``u`` holds its stratified uniforms (:data:`STRATIFIED`)."""
    z_activity, z_spread = _normal(u["activity"]), _normal(u["maker_spread"])
    if kind == ACTIVE:
        bursts = ACTIVE_BURSTS_PER_HOUR * 10 ** (ACTIVE_BURSTS_SIGMA * z_activity)
        regularity, switch = 1.0, ACTIVE_SWITCH
        low, high = ACTIVE_PRESENCE
        spread = ACTIVE_MAKER_SPREAD * np.exp(ACTIVE_MAKER_SIGMA * z_spread)
        depth, trade_rate = int(rng.integers(*ACTIVE_DEPTH)), ACTIVE_TRADE_RATE
    else:
        bursts = QUIET_BURSTS_PER_HOUR * 10 ** (QUIET_BURSTS_SIGMA * z_activity)
        regularity, switch = QUIET_REGULARITY, QUIET_SWITCH
        low, high = QUIET_PRESENCE if kind == QUIET_MAKER else (0.0, 0.0)
        spread = QUIET_MAKER_SPREAD * np.exp(QUIET_MAKER_SIGMA * z_spread)
        depth, trade_rate = int(rng.integers(*QUIET_DEPTH)), QUIET_TRADE_RATE
    scale = _size_scale(u["size"])
    maker_size = kb.ROUND_SIZES[np.argmin(np.abs(np.log(kb.ROUND_SIZES / scale)))]
    # A Kumaraswamy(a, b) quantile: a Beta-like shape with a closed-form inverse.
    a, b = BACKGROUND_SPREAD
    background = 8.0 + 90.0 * (1 - (1 - u["background"]) ** (1 / b)) ** (1 / a)
    return KalshiTraits(
        ticker=ticker,
        active=kind == ACTIVE,
        start_price_cents=float(3 + 94 * u["price"]),
        bursts_per_hour=float(bursts),
        burst_regularity=float(regularity),
        maker_presence=float(low + (high - low) * u["presence"]),
        maker_switch=float(switch),
        maker_spread_cents=float(np.clip(spread, 1.0, 60.0)),
        background_spread_cents=float(np.clip(background, 8.0, 98.0)),
        depth_levels=depth,
        level_gap_cents=float(rng.uniform(0.5, 4.0)),
        size_scale=float(scale),
        maker_size=int(maker_size),
        trade_rate=float(trade_rate),
    )


def _size_scale(u: float) -> float:
    """Median resting size of a market's orders: log-normal, the top ``WHALE_SHARE`` of
    markets (by ``u``) around ``WHALE_SCALE``."""
    if u > 1 - WHALE_SHARE:
        return WHALE_SCALE * np.exp(SIZE_SIGMA * _normal((u - 1 + WHALE_SHARE) / WHALE_SHARE))
    return SIZE_SCALE * np.exp(SIZE_SIGMA * _normal(u / (1 - WHALE_SHARE)))


def market_parameters(
    traits: KalshiTraits, config: SimulatorConfig, duration_ms: int, resnapshot_ms: int
) -> np.ndarray:
    """The parameter vector :func:`~kalshi_pipeline.sources.kalshi_market.run_market`
    reads."""
    p = np.zeros(kb.N_PARAMETERS)
    p[kb.P_PRESENCE], p[kb.P_SWITCH] = traits.maker_presence, traits.maker_switch
    p[kb.P_MAKER_SPREAD], p[kb.P_BG_SPREAD] = (
        traits.maker_spread_cents,
        traits.background_spread_cents,
    )
    p[kb.P_DEPTH], p[kb.P_GAP] = traits.depth_levels, traits.level_gap_cents
    p[kb.P_LOG_SIZE], p[kb.P_MAKER_SIZE] = np.log(traits.size_scale), traits.maker_size
    p[kb.P_TRADE], p[kb.P_TRADE_MORE] = traits.trade_rate, TRADE_MORE
    p[kb.P_REQUOTE_BETWEEN], p[kb.P_CANCEL_FIRST] = REQUOTE_BETWEEN, CANCEL_FIRST
    p[kb.P_POSITION], p[kb.P_SIGNAL] = QUOTE_POSITION, 1.0 if config.signal else 0.0
    p[kb.P_DRIFT], p[kb.P_NOISE] = config.drift_cents_per_step, config.noise_cents_per_step
    p[kb.P_PERSIST], p[kb.P_SENSITIVITY] = config.pressure_persistence, config.imbalance_sensitivity
    p[kb.P_CONTROL_SCALE] = control_move_scale(config)
    p[kb.P_GAP_MS], p[kb.P_TRADE_GAP_MS], p[kb.P_REFRESH_MORE] = (
        BURST_GAP_MS,
        TRADE_GAP_MS,
        REFRESH_MORE,
    )
    p[kb.P_DURATION_MS], p[kb.P_RESNAPSHOT_MS] = duration_ms, resnapshot_ms
    p[kb.P_START], p[kb.P_ROUND] = traits.start_price_cents, ROUND_SHARE
    p[kb.P_TRADE_LOG_SIZE], p[kb.P_TRADE_SIGMA] = TRADE_LOG_SIZE, TRADE_SIGMA
    p[kb.P_TRADE_SPREAD] = TRADE_SPREAD
    p[kb.P_WIDTH_SIGMA], p[kb.P_WIDTH_CHANGE] = WIDTH_SIGMA, WIDTH_CHANGE
    p[kb.P_RETAIL], p[kb.P_RETAIL_LOG_SIZE] = RETAIL_SHARE, np.log(RETAIL_SIZE)
    return p


def control_move_scale(config: SimulatorConfig, horizon: int = 20) -> float:
    """The control's news size: a martingale as volatile over ``horizon`` bursts as the
    signal run's drift and noise."""
    rho = config.pressure_persistence
    lags = np.arange(1, horizon)
    summed_pressure_var = horizon + 2 * np.sum((horizon - lags) * rho**lags)
    variance = config.drift_cents_per_step**2 * summed_pressure_var / horizon
    return float(np.sqrt(variance + config.noise_cents_per_step**2))


def _burst_times(rng: np.random.Generator, traits: KalshiTraits, duration_ms: int) -> np.ndarray:
    """When bursts start (ms): gamma-distributed gaps of shape ``burst_regularity`` (1, a
    Poisson process; more, a rough schedule), the first a random phase into the session."""
    mean_ms = 3_600_000 / traits.bursts_per_hour
    k = traits.burst_regularity
    count = int(duration_ms / mean_ms * 1.5) + 16
    gaps = rng.gamma(k, mean_ms / k, count)
    gaps[0] *= rng.random()
    times = np.cumsum(gaps)
    return times[times < duration_ms].astype(np.int64) + 1


def simulate_kalshi_market(
    rng: np.random.Generator, traits: KalshiTraits, config: SimulatorConfig, duration_ms: int
) -> MarketEvents:
    """The market's events and trades over a session of ``duration_ms``, drawn from
    ``rng`` (in this order: the book's seed, the bursts' times, a reconnect)."""
    seed = int(rng.integers(0, 2**32))
    burst_ms = _burst_times(rng, traits, duration_ms)
    bursts = len(burst_ms)
    resnapshot_ms = -1
    if rng.random() < config.resnapshot_probability:
        resnapshot_ms = int(rng.uniform(0.25, 1.0) * duration_ms)
    p = market_parameters(traits, config, duration_ms, resnapshot_ms)
    capacity = 8 * bursts + 64
    while True:
        events, fair, trades, books, enough = run_market(p, burst_ms, seed, capacity)
        if enough:
            break
        capacity *= 4
    snapshot = events[:, kb.E_LEVEL] < 0
    return MarketEvents(
        offset_ms=events[:, kb.E_OFFSET].copy(),
        is_snapshot=snapshot,
        level=events[:, kb.E_LEVEL].astype(np.int16),
        new_size=np.where(snapshot, 0, events[:, kb.E_NEW]),
        old_size=np.where(snapshot, 0, events[:, kb.E_OLD]),
        snapshot_books=books,
        trades=MarketTrades(
            event=trades[:, kb.T_EVENT].copy(),
            yes_price=trades[:, kb.T_YES_PRICE].copy(),
            count=trades[:, kb.T_COUNT].copy(),
            taker_yes=trades[:, kb.T_TAKER_YES].astype(bool),
        ),
        fair_cents=fair.copy(),
    )
