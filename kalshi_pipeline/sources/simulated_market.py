"""One simulated market: its lasting character and its events in one session.

:func:`simulate_market` turns a market's :class:`MarketTraits` and its own random
generator into :class:`MarketEvents`: a fair-price path driven by a hidden order-flow
pressure, the bid books that follow it, and the book changes (deltas and snapshots) that
record them. ``docs/simulator.md`` and :mod:`kalshi_pipeline.sources.simulator` describe
the model; the order of the random draws here fixes every simulated store's bytes, so it
must not change.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Self

import numba
import numpy as np

from kalshi_pipeline.sources.raw import LEVELS
from kalshi_pipeline.sources.simulator_config import SimulatorConfig


class SimulatedMarketKind(StrEnum):
    """The simulator's two kinds of market. The market layer's ``MarketKind`` (tight/wide)
    measures spreads; these are what the simulator made, and sources may not import it."""

    LIQUID = "liquid"  # spreads of 1-3 cents, eight levels, sizes around 200
    ILLIQUID = "illiquid"  # spreads of 20-60 cents, three levels, sizes around 20


@dataclass(frozen=True, kw_only=True)
class MarketTraits:
    """A ticker's character, the same in every session that records it."""

    ticker: str
    liquid: bool
    start_price_cents: float
    half_spread_cents: float
    depth_levels: int
    log_size: float

    @property
    def kind(self) -> SimulatedMarketKind:
        return SimulatedMarketKind.LIQUID if self.liquid else SimulatedMarketKind.ILLIQUID

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Self:
        return cls(**data)


@dataclass(frozen=True, kw_only=True)
class MarketTrades:
    """One market's public trades, in time order; each is the book change ``event`` of
    its :class:`MarketEvents` (the delta that takes ``count`` from the traded level)."""

    event: np.ndarray  # int64[K] index into the market's events
    yes_price: np.ndarray  # int64[K] cents
    count: np.ndarray  # int64[K] contracts
    taker_yes: np.ndarray  # bool[K] the taker bought YES (lifted the NO bid at 100 - price)


@dataclass(frozen=True, kw_only=True)
class MarketEvents:
    """One market's events in its own order: snapshots carry a full book row.

    Columns of numbers handed straight to the session's assembly; never written as such,
    so they have no JSON form. The two-class population has no trades and does not expose
    its fair price (``None``); the kalshi population has both, the fair price (cents, the
    expected settlement) after each event being there for tests of the control.
    """

    offset_ms: np.ndarray  # int64[E]
    is_snapshot: np.ndarray  # bool[E]
    level: np.ndarray  # int16[E] 0..197 (side * 99 + price - 1); -1 for snapshots
    new_size: np.ndarray  # int64[E]
    old_size: np.ndarray  # int64[E]
    snapshot_books: np.ndarray  # int64[S, 198] for the snapshot events, in order
    trades: MarketTrades | None = None
    fair_cents: np.ndarray | None = None  # float64[E]


def simulate_market(
    rng: np.random.Generator, traits: MarketTraits, config: SimulatorConfig, duration_ms: int
) -> MarketEvents:
    """The market's events over a session of ``duration_ms``, all drawn from ``rng``."""
    # The calls below draw from rng in this order: price path, books, times, reconnect.
    pressure, fair = _price_path(rng, config, traits.start_price_cents)
    best_yes, best_no = _best_bids(fair, traits.half_spread_cents)
    books = _visible_books(rng, traits, config, pressure, best_yes, best_no)
    step_offsets = _event_times(rng, len(pressure), duration_ms)
    return _book_changes(rng, config, books, step_offsets)


def _price_path(
    rng: np.random.Generator, config: SimulatorConfig, start_cents: float
) -> tuple[np.ndarray, np.ndarray]:
    """The hidden pressure and the fair price (cents) at each book change."""
    target_events = config.median_events_per_market * np.exp(config.events_sigma * rng.normal())
    # One book change causes about 2.5 deltas on average (measured); aim for the target.
    steps = int(np.clip(round(target_events / 2.5), 4, 200_000))
    pressure = _ar1(rng, steps, config.pressure_persistence)
    shocks = rng.normal(size=steps)
    if config.signal:
        moves = config.drift_cents_per_step * pressure + config.noise_cents_per_step * shocks
    else:
        moves = _control_move_scale(config) * shocks
    moves[0] = 0.0
    return pressure, _fair_path(start_cents, moves)


def _best_bids(fair: np.ndarray, half_spread: float) -> tuple[np.ndarray, np.ndarray]:
    """The best YES and NO bid prices around the fair price; they never cross."""
    best_yes = np.clip(np.floor(fair - half_spread), 1, 98).astype(np.int64)
    best_no = np.clip(np.floor(100 - fair - half_spread), 1, 98).astype(np.int64)
    return best_yes, np.minimum(best_no, 99 - best_yes)


def _visible_books(rng, traits, config, pressure, best_yes, best_no) -> np.ndarray:
    """Displayed size at every price of both bid books for every step, int64[T, 198]:
    the resting sizes within ``depth_levels`` of each best bid, zero elsewhere."""
    resting = _resting_sizes(rng, traits, config, pressure, best_yes, best_no)
    prices = np.arange(1, LEVELS + 1)
    window = traits.depth_levels
    visible = np.concatenate(
        [
            (prices <= best_yes[:, None]) & (prices > best_yes[:, None] - window),
            (prices <= best_no[:, None]) & (prices > best_no[:, None] - window),
        ],
        axis=1,
    )
    return np.where(visible, resting, 0)


def _book_changes(
    rng: np.random.Generator, config: SimulatorConfig, books: np.ndarray, step_offsets: np.ndarray
) -> MarketEvents:
    """The events that turn each step's book into the next: a snapshot first, one delta
    per changed level, and now and then a reconnect's fresh snapshot."""
    steps = len(books)
    changed_step, changed_level = np.nonzero(books[1:] != books[:-1])
    changed_step += 1
    # Within one book change, levels are cleared before others are set, so that the book
    # never crosses between the deltas of one millisecond.
    sets = books[changed_step, changed_level] > 0
    within = np.lexsort((changed_level, sets, changed_step))
    changed_step, changed_level = changed_step[within], changed_level[within]
    is_snapshot = np.zeros(len(changed_step) + 1, dtype=bool)
    is_snapshot[0] = True
    step_of_event = np.concatenate([[0], changed_step])
    level = np.concatenate([[-1], changed_level]).astype(np.int16)
    snapshot_steps = [0]
    if steps > 8 and rng.random() < config.resnapshot_probability:
        # A reconnect: the collector stores a fresh snapshot after the step's deltas.
        k = int(rng.integers(steps // 4, steps))
        at = int(np.searchsorted(step_of_event, k, side="right"))
        step_of_event = np.insert(step_of_event, at, k)
        is_snapshot = np.insert(is_snapshot, at, True)
        level = np.insert(level, at, -1)
        snapshot_steps.append(k)
    safe_level = np.maximum(level, 0)
    new_size = np.where(is_snapshot, 0, books[step_of_event, safe_level])
    old_size = np.where(is_snapshot, 0, books[np.maximum(step_of_event - 1, 0), safe_level])
    return MarketEvents(
        offset_ms=step_offsets[step_of_event],
        is_snapshot=is_snapshot,
        level=level,
        new_size=new_size.astype(np.int64),
        old_size=old_size.astype(np.int64),
        snapshot_books=books[snapshot_steps].astype(np.int64),
    )


def _control_move_scale(config: SimulatorConfig, horizon: int = 20) -> float:
    """Per-step move size of the control: a martingale as volatile as the signal run.

    The control's price moves are independent (nothing observable, not even past moves,
    predicts them); their size matches the signal run's variance over ``horizon`` steps.
    """
    rho = config.pressure_persistence
    lags = np.arange(1, horizon)
    summed_pressure_var = horizon + 2 * np.sum((horizon - lags) * rho**lags)
    variance = config.drift_cents_per_step**2 * summed_pressure_var / horizon
    return float(np.sqrt(variance + config.noise_cents_per_step**2))


def _resting_sizes(rng, traits, config, pressure, best_yes, best_no) -> np.ndarray:
    """Resting size at every price of both bid books for every step, int64[T, 198].

    Sizes are sticky: each book change refreshes the best level of one side, tilted by
    the pressure (YES bids grow with it, NO bids shrink), and one deeper level of either
    side, which one time in twenty is emptied, leaving a hole in the ladder. A best
    price that moves arrives with a fresh tilted size.
    """
    steps = len(pressure)
    initial = np.maximum(1, np.round(np.exp(rng.normal(traits.log_size, 0.8, 2 * LEVELS))))
    updates = np.full((steps, 2 * LEVELS), -1, dtype=np.int64)
    updates[0] = initial
    best = np.stack([best_yes, best_no])
    later = np.arange(1, steps)

    def tilted_sizes(side: np.ndarray) -> np.ndarray:
        tilt = np.exp(np.where(side == 0, 1.0, -1.0) * config.imbalance_sensitivity * pressure)
        return np.maximum(1, np.round(np.exp(rng.normal(traits.log_size, 0.8, steps)) * tilt))

    top_side = rng.integers(0, 2, size=steps)
    top_size = tilted_sizes(top_side)
    top_price = best[top_side, np.arange(steps)]
    updates[later, top_side[later] * LEVELS + top_price[later] - 1] = top_size[later]
    # A new best price arrives as a fresh order, sized by the pressure of the moment.
    for side in (0, 1):
        fresh = tilted_sizes(np.full(steps, side))
        moved = later[best[side, 1:] != best[side, :-1]]
        updates[moved, side * LEVELS + best[side, moved] - 1] = fresh[moved]

    if traits.depth_levels > 1:
        deep_side = rng.integers(0, 2, size=steps)
        depth = rng.integers(1, traits.depth_levels, size=steps)
        deep_price = best[deep_side, np.arange(steps)] - depth
        deep_size = np.maximum(1, np.round(np.exp(rng.normal(traits.log_size, 0.8, steps))))
        deep_size = np.where(rng.random(steps) < 0.05, 0, deep_size)
        rows = later[deep_price[later] >= 1]
        updates[rows, deep_side[rows] * LEVELS + deep_price[rows] - 1] = deep_size[rows]

    last_set = np.where(updates >= 0, np.arange(steps)[:, None], 0)
    np.maximum.accumulate(last_set, axis=0, out=last_set)
    sizes = np.take_along_axis(updates, last_set, axis=0)
    # The best level always rests something (holes are only ever deeper).
    rows = np.arange(steps)
    for side in (0, 1):
        column = side * LEVELS + best[side] - 1
        sizes[rows, column] = np.maximum(sizes[rows, column], 1)
    return sizes


def _event_times(rng: np.random.Generator, steps: int, duration_ms: int) -> np.ndarray:
    """Offsets (ms from session start) of each book change: bursts and quiet periods."""
    if rng.random() < 0.5:
        open_ms, close_ms = 0, duration_ms
    else:
        open_ms = int(rng.uniform(0, 0.7) * duration_ms)
        close_ms = open_ms + int(rng.uniform(0.1, 1.0) * (duration_ms - open_ms))
    # Regimes alternate in geometric runs: bursts have gaps 50x shorter than quiet spells.
    regime = np.cumsum(rng.random(steps) < 0.08) % 2
    gaps = rng.exponential(np.where(regime == 1, 0.05, 2.5))
    gaps[0] = 0.0
    span = max(close_ms - open_ms - 1, 1)
    times = np.cumsum(gaps)
    times = times / max(times[-1], 1e-12) * span
    return open_ms + np.floor(times).astype(np.int64)


def _ar1(rng: np.random.Generator, steps: int, persistence: float) -> np.ndarray:
    """A unit-variance AR(1) path, computed in blocks of closed form (no per-step loop)."""
    draws = rng.standard_normal(steps + 1)
    innovations = draws[1:] * np.sqrt(1 - persistence**2)
    out = np.empty(steps)
    previous = draws[0]  # start in the stationary distribution
    for start in range(0, steps, 128):
        eps = innovations[start : start + 128]
        powers = persistence ** np.arange(len(eps))
        out[start : start + len(eps)] = persistence * powers * previous + powers * np.cumsum(
            eps / powers
        )
        previous = out[start + len(eps) - 1]
    return out


@numba.njit(cache=True)
def _fair_path(start_cents: float, moves_cents: np.ndarray) -> np.ndarray:
    """The fair price (cents) after each move; moves are cents at a 50-cent price.

    A move ``m`` at price ``p`` shifts it by ``m * p * (100 - p) / 2500``: full size at 50
    cents, less towards the extremes, as in real prediction markets, so the price stays
    inside (1.5, 98.5) without being folded back at a bound (folding would turn an upward
    drift into a fall near 99 cents and invert the signal there). Zero-mean moves leave the
    price a martingale (up to the clip at the bounds, which is almost never reached).
    """
    fair = np.empty(len(moves_cents))
    price = start_cents
    for step in range(len(moves_cents)):
        price += moves_cents[step] * price * (100.0 - price) / 2500.0
        price = min(max(price, 1.5), 98.5)
        fair[step] = price
    return fair
