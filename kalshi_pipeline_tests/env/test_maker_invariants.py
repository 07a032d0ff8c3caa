"""Invariants of the maker mode, over random sessions and random actions.

Sessions: simulated ones (the kalshi population, the markets with trades) and hand-made
random ones (:mod:`.maker_sessions`); queue models ``risk_averse`` and ``log_prob``;
latency 0 and 100 ms; random actions (HOLD half the time, the four orders otherwise) with
little cash, a small ``max_position`` and a short expiry, so the account's limits bite.
Each episode is checked against rules read from the view here, not from the env's code:

* **Fills need the tape.** An order fills only at a step after it arrived and not after
  its cancel arrived or it expired, at its own price and side, and only where that step
  has a trade at its price on its book, a trade through it, or the other book crossing
  it.
* **Fills never exceed the volume beyond the queue.** Under ``risk_averse`` an order's
  contracts filled so far never exceed the volume traded at its price beyond the queue
  ahead, replayed here (it joins behind the size shown at its price, trades at the price
  use it up, a smaller level caps it), unless a trade through or the crossing book filled
  it all. Under ``log_prob``, where a level's decrease may also move the queue (by at most
  that decrease) and a fill may round up by half a contract, they never exceed the volume
  traded at its price plus its level's decreases since it arrived.
* **Maker fees.** Every fill pays the maker fee of its contracts and price (0 under fee
  type ``quadratic``), never the taker fee.
* **An unfilled order costs nothing.** An episode whose orders never fill ends, and goes
  through every step, with exactly the starting cash.
* **The account follows the fills.** Cash and position replayed here from the fills (a
  BID fill of ``n`` at YES price ``p`` nets held NO first, each netted contract paying
  ``100 - p``, and opens YES at ``p`` each; ASK mirrors it on the NO side; minus the fee)
  equal ``info`` at every step; cash is never negative and ``|position|`` never exceeds
  ``max_position``.

These are bounds: a fill the env should have made and did not breaks none of them (the
comparison with hftbacktest, test_hftbacktest_differential.py, catches that). Each test
names the changes to the env it catches (each was tried).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import pytest

from kalshi_pipeline.env import (
    BUY_NO,
    BUY_YES,
    HOLD,
    SELL_NO,
    SELL_YES,
    EnvConfig,
    MarketAgnosticKalshiEnv,
)
from kalshi_pipeline.env.fees import FeeModel
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline_tests.env.maker_sessions import random_steps, steps_of, view_of_steps

BID, ASK = 1, -1
SLOT = {BUY_YES: BID, SELL_NO: BID, BUY_NO: ASK, SELL_YES: ASK}
ACTIONS = [HOLD] * 4 + [BUY_YES, SELL_YES, BUY_NO, SELL_NO]
SETTINGS = [(q, latency) for q in ("risk_averse", "log_prob") for latency in (0, 100)]


def tight(queue_model: str, latency_ms: int, **more) -> EnvConfig:
    """Maker mode with little cash, a small position limit and a short expiry."""
    return EnvConfig(
        execution="maker",
        queue_model=queue_model,
        latency_ms=latency_ms,
        order_size=5,
        max_position=12,
        starting_cash_cents=1_500,
        order_expiry_steps=8,
        **more,
    )


@dataclass
class Order:
    """An order as the script placed it (the env numbers them 1, 2, ... in this order)."""

    order_id: int
    step: int
    side: int
    price: int
    end_ms: float = math.inf  # its replacement's cancel arrives then


@dataclass
class Episode:
    view: object
    config: EnvConfig
    orders: dict[int, Order] = field(default_factory=dict)
    infos: list[dict] = field(default_factory=list)

    @property
    def fills(self) -> list:
        return [f for info in self.infos for f in info["fills"]]


def play(view, config: EnvConfig, rng: np.random.Generator) -> Episode:
    """One episode of random actions, noting each order the env places: a touch to join
    on its book, and for a sell something of the other side held."""
    env = MarketAgnosticKalshiEnv(view, config)
    env.reset(seed=0)
    episode, position, last = Episode(view, config), 0, {BID: None, ASK: None}
    touch = {BID: view.best_yes_bid.tolist(), ASK: view.best_no_bid.tolist()}
    times = view.timestamps_ms.tolist()
    for t in range(len(view)):
        action = int(rng.choice(ACTIONS))
        if action != HOLD:
            side = SLOT[action]
            selling = action in (SELL_YES, SELL_NO)
            if touch[side][t] > 0 and not (selling and position * side >= 0):
                order = Order(len(episode.orders) + 1, t, side, touch[side][t])
                if last[side] is not None:
                    last[side].end_ms = times[t] + config.latency_ms
                episode.orders[order.order_id] = last[side] = order
        *_, terminated, _, info = env.step(action)
        episode.infos.append(info)
        position = info["position"]
        if terminated:
            break
    return episode


# -- what the view says an order may fill ----------------------------------------------------
def trades_at(view, step: int, side: int) -> list[tuple[int, int]]:
    """(price on ``side``'s book, contracts) of the trades of ``step`` that took from it."""
    at = view.trade_steps == step
    out = []
    for price, count, taker_yes in zip(
        view.trade_yes_prices[at].tolist(),
        view.trade_counts[at].tolist(),
        view.trade_taker_yes[at].tolist(),
        strict=True,
    ):
        if taker_yes and side == ASK:
            out.append((100 - price, count))
        elif not taker_yes and side == BID:
            out.append((price, count))
    return out


def shown_size(view, step: int, side: int, price: int) -> int | None:
    """The size shown at ``price`` on ``side``'s book: 0 where the book shows no level
    there, None where five better levels hide it."""
    prices = (view.yes_bid_prices if side == BID else view.no_bid_prices)[step].tolist()
    sizes = (view.yes_bid_sizes if side == BID else view.no_bid_sizes)[step].tolist()
    shown = {p: n for p, n in zip(prices, sizes, strict=True) if n > 0}
    if price in shown:
        return shown[price]
    return None if len(shown) == len(prices) and min(shown) > price else 0


def crossed(view, step: int, order: Order) -> bool:
    other = int((view.best_no_bid if order.side == BID else view.best_yes_bid)[step])
    return other > 0 and order.price + other >= 100


def allowed_fills(episode: Episode, order: Order) -> dict[int, float]:
    """The most contracts ``order`` may have filled by each step it can fill at (steps
    after the book it joined, up to its cancel's arrival or its expiry): all of it once the
    other book crossed it (or a trade went through it, under hftbacktest's rule), else the
    volume beyond its queue plus the contracts of trades through it.

    ``risk_averse``: the queue ahead starts at the size shown at its price, trades there
    use it up, a smaller level caps it. The probability models may also move it on a
    level's decrease (a cancel ahead), by at most that decrease, and may round a fill up
    by half a contract: their bound is the volume traded at its price plus the decreases
    of its level, since it arrived."""
    view, config = episode.view, episode.config
    times = view.timestamps_ms.tolist()
    arrives = times[order.step] + config.latency_ms
    joined = max(s for s in range(len(times)) if times[s] <= arrives)  # the book it meets
    if crossed(view, joined, order):
        return {}  # post-only: cancelled on arrival
    last = min(order.step + config.order_expiry_steps, len(times) - 1)
    shown = shown_size(view, joined, order.side, order.price)
    ahead = shown if config.queue_model == "risk_averse" else 0
    beyond, everything, allowed = 0, False, {}
    for s in range(joined + 1, last + 1):
        if times[s] > order.end_ms:
            break
        for price, count in trades_at(view, s, order.side):
            if price < order.price:  # traded through it: at most its contracts, or all
                everything |= config.trade_through_fills == "all"
                beyond, ahead = beyond + count, 0 if ahead is not None else None
            if price == order.price and ahead is not None:
                beyond += max(count - ahead, 0)
                ahead = max(ahead - count, 0)
        everything |= crossed(view, s, order)
        size = shown_size(view, s, order.side, order.price)
        if ahead is not None and size is not None:
            ahead = min(ahead, size)
            if config.queue_model != "risk_averse" and shown is not None:
                beyond += max(shown - size, 0)
        shown = size
        allowed[s] = math.inf if everything or ahead is None else beyond
    return allowed


def fills_by_order(episode: Episode):
    """Each fill with its order, its allowed fills by step, the order's contracts filled
    so far (this fill included) and its fills so far."""
    done: dict[int, list[int]] = {}
    allowed: dict[int, dict[int, float]] = {}
    for fill in episode.fills:
        order = episode.orders[fill.order_id]
        if fill.order_id not in allowed:
            allowed[fill.order_id] = allowed_fills(episode, order)
        done.setdefault(fill.order_id, []).append(fill.contracts)
        yield fill, order, allowed[fill.order_id], done[fill.order_id]


# -- the account -------------------------------------------------------------------------------
def kalshi_maker_fee(contracts: int, price: int) -> int:
    """ceil(0.0175 * C * P * (1 - P)) dollars, P in dollars, rounded up to the cent."""
    p = Fraction(price, 100)
    return math.ceil(Fraction(175, 10_000) * contracts * p * (1 - p) * 100)


def check_fees(episode: Episode) -> int:
    """Every fill pays the maker fee; returns how many would have paid a different taker
    fee (so the check told the two apart)."""
    fees = FeeModel.from_env(episode.config).for_market(episode.view.market_ticker)
    told_apart = 0
    for fill in episode.fills:
        maker = fees.maker(fill.contracts, fill.price_cents)
        assert fill.fee_cents == maker, fill
        if episode.config.fee_type == "quadratic":
            assert maker == 0
        else:
            assert maker == kalshi_maker_fee(fill.contracts, fill.price_cents)
        told_apart += fees.taker(fill.contracts, fill.price_cents) != maker
    return told_apart


def check_account(episode: Episode) -> None:
    config = episode.config
    cash, position = config.starting_cash_cents, 0
    for info in episode.infos:
        for fill in info["fills"]:
            held_other = max(-position * fill.side, 0)  # contracts of the other side held
            netted = min(fill.contracts, held_other)
            cash += netted * (100 - fill.price_cents)
            cash -= (fill.contracts - netted) * fill.price_cents + fill.fee_cents
            position += fill.side * fill.contracts
        assert (info["cash_cents"], info["position"]) == (cash, position), info["step"]
        assert cash >= 0 and abs(position) <= config.max_position


# -- the sessions and episodes -----------------------------------------------------------------
def simulated_views() -> list:
    """The markets with at least 5 trades of six small simulated sessions."""
    views = []
    for seed in range(6):
        raw = simulate_session(1, seed, SimulatorConfig(markets=8, session_minutes=240))
        views += [v for v in build_market_views(raw) if len(v.trade_steps) >= 5]
    return views


def hand_made_views(count: int) -> list:
    views = []
    for seed in range(count):
        rng = np.random.default_rng(1_000 + seed)
        steps = random_steps(rng, 40)
        views.append(view_of_steps(steps, gap_ms=rng.integers(20, 300, len(steps) - 1).tolist()))
    return views


@pytest.fixture(scope="module")
def episodes() -> list[Episode]:
    """Three random episodes per view and setting."""
    simulated = simulated_views()
    assert len(simulated) >= 5
    views = simulated + hand_made_views(12)
    return [
        play(view, tight(queue_model, latency_ms), np.random.default_rng([i, run]))
        for queue_model, latency_ms in SETTINGS
        for i, view in enumerate(views)
        for run in range(3)
    ]


def test_the_episodes_reach_every_case(episodes):
    fills = [f for e in episodes for f in e.fills]
    assert len(fills) >= 400 and sum(f.contracts < 5 for f in fills) >= 50  # partial ones
    assert sum(not e.fills for e in episodes) >= 5  # and episodes without a fill
    assert {e.config.queue_model for e in episodes if e.fills} == {"risk_averse", "log_prob"}


# -- the invariants ------------------------------------------------------------------------------
def test_an_order_fills_only_where_the_tape_reaches_it(episodes):
    # Caught: ignoring the latency (fills before arrival), no expiry or a replaced order
    # still filling (fills after its end), a fill at another price or side.
    for episode in episodes:
        for fill, order, allowed, _ in fills_by_order(episode):
            assert (fill.side, fill.price_cents, fill.maker) == (order.side, order.price, True)
            assert fill.step in allowed, (fill, order)  # arrived, not cancelled nor expired
            hit = trades_at(episode.view, fill.step, order.side)
            assert any(p <= order.price for p, _ in hit) or crossed(episode.view, fill.step, order)


def test_fills_never_exceed_the_volume_traded_beyond_the_queue(episodes):
    # Caught: a trade at the order's price filling it all (as a trade through would), an
    # order joining at the front of its level's queue.
    for episode in episodes:
        rounding = episode.config.queue_model != "risk_averse"  # half a contract a fill
        for fill, _, allowed, done in fills_by_order(episode):
            most = allowed[fill.step] + (len(done) // 2 if rounding else 0)
            assert sum(done) <= min(most, episode.config.order_size), fill


def test_every_fill_pays_the_maker_fee(episodes):
    # Caught: charging the taker fee on a maker fill.
    assert sum(check_fees(e) for e in episodes) >= 100  # fills where the two fees differ


def test_quadratic_fee_type_makers_pay_nothing(episodes):
    # Caught: charging a fee (the taker's) under the fee type without a maker fee.
    views = {id(e.view): e.view for e in episodes}.values()
    config = tight("risk_averse", 0, fee_type="quadratic")
    played = [play(view, config, np.random.default_rng(7)) for view in views]
    assert sum(check_fees(e) for e in played) == sum(len(e.fills) for e in played) >= 20


def test_an_order_that_never_fills_costs_nothing(episodes):
    # Caught: taking cash when an order rests (its reservation is no payment).
    unfilled = [e for e in episodes if not e.fills]
    session = steps_of(
        *[({40: 10, 39: 5 + k % 3}, {55: 7, 54: 4 + k % 2}, ()) for k in range(1, 12)]
    )
    view = view_of_steps(session)
    for queue_model, latency_ms in SETTINGS:
        actions = iter([BUY_YES, BUY_NO, HOLD] * 4)
        env = MarketAgnosticKalshiEnv(view, tight(queue_model, latency_ms))
        env.reset(seed=0)
        infos = [env.step(next(actions))[-1] for _ in range(len(view))]
        unfilled.append(Episode(view, env.config, infos=infos))
    for episode in unfilled:
        start = episode.config.starting_cash_cents
        assert not episode.fills
        assert {(i["cash_cents"], i["position"]) for i in episode.infos} == {(start, 0)}


def test_cash_and_position_follow_the_fills(episodes):
    # Caught: netting held contracts at the fill's price instead of 100 minus it.
    for episode in episodes:
        check_account(episode)
