"""A seeded Kalshi market simulator writing sessions in the collector's raw schema.

Demo, tests and benchmarks need no recorded data: this module makes sessions that look
like the collector's (DESIGN.md section 7) and come out of the same code path as real ones.

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
shrink towards the extremes (``_fair_path``), so prices stay inside 1..99 without ever
being folded back at a bound, which would invert the signal there.

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
same tables bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import numba
import numpy as np
import pyarrow as pa
from tqdm.auto import tqdm

from kalshi_pipeline.sources.raw import (
    DELTA_SCHEMA,
    LEVELS,
    SNAPSHOT_SCHEMA,
    RawSession,
    SessionInfo,
)

_BASE_TIME = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


# The demo's store (and `kalshi-pipeline generate`'s defaults): sessions 1..4, seed 0,
# SimulatorConfig's markets.
DEMO_SESSIONS, DEMO_SEED = 4, 0


@dataclass(frozen=True)
class SimulatorConfig:
    """Knobs of the simulator; defaults give DESIGN.md section 7's shape of session."""

    markets: int = 40
    median_events_per_market: float = 160.0
    events_sigma: float = 1.0
    liquid_fraction: float = 0.2
    session_minutes: float = 120.0
    signal: bool = True
    drift_cents_per_step: float = 0.8
    pressure_persistence: float = 0.97
    noise_cents_per_step: float = 0.2
    imbalance_sensitivity: float = 2.0
    ticker_pool_factor: float = 1.5
    resnapshot_probability: float = 0.2


@dataclass(frozen=True)
class _MarketTraits:
    ticker: str
    liquid: bool
    start_price_cents: float
    half_spread_cents: float
    depth_levels: int
    log_size: float


def ticker_pool(seed: int, config: SimulatorConfig) -> list[_MarketTraits]:
    """The seed's universe of markets, each with its lasting character."""
    size = max(config.markets, int(np.ceil(config.markets * config.ticker_pool_factor)))
    rng = np.random.default_rng(np.random.SeedSequence([seed, 0x7]))
    series = ["KXBTC", "KXETH", "KXFED", "KXCPI", "KXNBA", "KXNFL", "KXRAIN", "KXGDP"]
    pool = []
    for index in range(size):
        liquid = bool(rng.random() < config.liquid_fraction)
        pool.append(
            _MarketTraits(
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
    config = config or SimulatorConfig()
    pool = ticker_pool(seed, config)
    rng = np.random.default_rng(np.random.SeedSequence([seed, session_id]))
    chosen = np.sort(rng.choice(len(pool), size=config.markets, replace=False))
    duration_ms = int(config.session_minutes * 60_000)
    markets = []
    for index in chosen:
        market_rng = np.random.default_rng(np.random.SeedSequence([seed, session_id, int(index)]))
        markets.append(_simulate_market(market_rng, pool[index], config, duration_ms))
        if on_market is not None:
            on_market()
    started_at = _BASE_TIME + timedelta(days=int(session_id))
    return _assemble(session_id, started_at, duration_ms, [pool[i].ticker for i in chosen], markets)


def simulate_sessions(
    sessions: int, seed: int, config: SimulatorConfig | None = None, *, progress: bool = False
) -> Iterator[RawSession]:
    """Sessions 1..``sessions`` one at a time (only one is held in memory)."""
    config = config or SimulatorConfig()
    with tqdm(
        total=sessions * config.markets, unit="market", desc="simulating", disable=not progress
    ) as bar:
        for session_id in range(1, sessions + 1):
            yield simulate_session(session_id, seed, config, on_market=bar.update)


# -- one market ------------------------------------------------------------------------
@dataclass
class _MarketEvents:
    """One market's events in its own order: snapshots carry a full book row."""

    offset_ms: np.ndarray  # int64[E]
    is_snapshot: np.ndarray  # bool[E]
    level: np.ndarray  # int16[E] 0..197 (side * 99 + price - 1); -1 for snapshots
    new_size: np.ndarray  # int64[E]
    old_size: np.ndarray  # int64[E]
    snapshot_books: np.ndarray  # int64[S, 198] for the snapshot events, in order


def _simulate_market(
    rng: np.random.Generator, traits: _MarketTraits, config: SimulatorConfig, duration_ms: int
) -> _MarketEvents:
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
    fair = _fair_path(traits.start_price_cents, moves)

    h = traits.half_spread_cents
    best_yes = np.clip(np.floor(fair - h), 1, 98).astype(np.int64)
    best_no = np.clip(np.floor(100 - fair - h), 1, 98).astype(np.int64)
    best_no = np.minimum(best_no, 99 - best_yes)

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
    books = np.where(visible, resting, 0)

    step_offsets = _event_times(rng, steps, duration_ms)
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
    return _MarketEvents(
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


# -- the session -----------------------------------------------------------------------
def _assemble(
    session_id: int,
    started_at: datetime,
    duration_ms: int,
    tickers: list[str],
    markets: list[_MarketEvents],
) -> RawSession:
    counts = np.array([len(m.offset_ms) for m in markets])
    market_of_event = np.repeat(np.arange(len(markets)), counts)
    local_order = np.concatenate([np.arange(c) for c in counts])
    offset = np.concatenate([m.offset_ms for m in markets])
    # Session-wide order: by time, then market, then each market's own order.
    order = np.lexsort((local_order, market_of_event, offset))
    sequence = np.empty(len(order), dtype=np.int64)
    sequence[order] = np.arange(1, len(order) + 1)
    start_ms = int(started_at.timestamp() * 1000)

    is_snapshot = np.concatenate([m.is_snapshot for m in markets])
    level = np.concatenate([m.level for m in markets]).astype(np.int64)
    new_size = np.concatenate([m.new_size for m in markets])
    old_size = np.concatenate([m.old_size for m in markets])
    books = np.concatenate([m.snapshot_books for m in markets])
    ticker_array = np.array(tickers, dtype=object)

    snap_idx = np.flatnonzero(is_snapshot)
    snap_order = snap_idx[np.argsort(sequence[snap_idx])]
    book_of_event = np.cumsum(is_snapshot) - 1
    snapshots = pa.table(
        {
            "id": np.arange(1, len(snap_order) + 1, dtype=np.int64),
            "session_id": np.full(len(snap_order), session_id, dtype=np.int64),
            "market_ticker": ticker_array[market_of_event[snap_order]].tolist(),
            "timestamp_ms": start_ms + offset[snap_order],
            "sequence_number": sequence[snap_order],
            **_price_maps(books[book_of_event[snap_order]]),
            "map_error": pa.nulls(len(snap_order), pa.string()),
        },
        schema=SNAPSHOT_SCHEMA,
    )

    delta_idx = np.flatnonzero(~is_snapshot)
    delta_order = delta_idx[np.argsort(sequence[delta_idx])]
    d_level = level[delta_order]
    d_new, d_old = new_size[delta_order], old_size[delta_order]
    action = np.where(d_old == 0, "add", np.where(d_new == 0, "remove", "update"))
    deltas = pa.table(
        {
            "id": np.arange(1, len(delta_order) + 1, dtype=np.int64),
            "session_id": np.full(len(delta_order), session_id, dtype=np.int64),
            "market_ticker": pa.array(ticker_array[market_of_event[delta_order]].tolist()),
            "timestamp_ms": start_ms + offset[delta_order],
            "sequence_number": sequence[delta_order],
            "side": np.where(d_level < LEVELS, "yes", "no"),
            "action": action,
            "price": (d_level % LEVELS + 1).astype(np.int32),
            "old_size": d_old,
            "new_size": d_new,
        },
        schema=DELTA_SCHEMA,
    )
    ended_at = started_at + timedelta(milliseconds=duration_ms)
    info = SessionInfo(
        session_id=session_id,
        status="closed",
        started_at=started_at,
        ended_at=ended_at,
        market_tickers=tuple(tickers),
        environment="local",
        websocket_url="sim://kalshi-pipeline",
        messages_received=snapshots.num_rows + deltas.num_rows,
        snapshots_count=snapshots.num_rows,
        deltas_count=deltas.num_rows,
        last_message_at=ended_at,
        connection_metadata={"simulated": True},
    )
    return RawSession(info, snapshots, deltas)


def _price_maps(books: np.ndarray) -> dict[str, pa.Array]:
    """The four map columns for snapshot books int64[S, 198]; asks derived as 100 - p."""
    yes, no = books[:, :LEVELS], books[:, LEVELS:]
    return {
        "yes_bids": _map_array(yes),
        "no_bids": _map_array(no),
        # A YES ask at 100 - p is a NO bid at p: column j of the reversed NO book is the
        # NO bid at 99 - j, i.e. the YES ask at j + 1 (and the same for NO asks).
        "yes_asks": _map_array(no[:, ::-1]),
        "no_asks": _map_array(yes[:, ::-1]),
    }


def _map_array(sizes: np.ndarray) -> pa.MapArray:
    """A map<price, size> per row of ``sizes`` (column j = price j + 1), zeros left out."""
    rows, cols = np.nonzero(sizes)
    offsets = np.concatenate([[0], np.cumsum(np.bincount(rows, minlength=len(sizes)))])
    return pa.MapArray.from_arrays(
        pa.array(offsets, pa.int32()),
        pa.array(cols + 1, pa.int32()),
        pa.array(sizes[rows, cols], pa.int64()),
    )
