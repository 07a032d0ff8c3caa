"""A view and a script of order requests, replayed through hftbacktest 2.4.4: its fills.

hftbacktest is the reference the env's maker mode is checked against. One asset is the
market's YES book, priced in dollars with a one-cent tick:

* a YES bid at ``p`` is a bid at ``p / 100``; a NO bid at ``q`` an ask at
  ``(100 - q) / 100``, same size (a YES ask at ``100 - q`` is that NO bid);
* a trade whose taker bought YES is buyer-initiated at its YES price (it lifted the ask);
  one whose taker bought NO is seller-initiated at its YES price (it hit the YES bid);
* an order on the BID slot (+1) at YES price ``p`` is a buy at ``p``; one on the ASK slot
  (-1) at NO price ``q`` is a sell at ``100 - q``; both post-only (GTX).

The market events of step ``s`` all fall in its millisecond, in this order: its trades
(in the view's order), then one depth row per level whose size differs from step
``s - 1``'s book (decreases and removals before increases; step 0: its whole book).
They are spaced one nanosecond apart so the last lands on the millisecond itself:
an order arriving at that millisecond comes after them (hftbacktest processes market
rows before order arrivals at equal times), one arriving a millisecond earlier before.
Requests of step ``s`` are sent at its millisecond, after its rows. Every order's
filled quantity is polled after each row, so each fill is its own record; the response
latency is 0, so an order is known at the exchange (and cancellable) once it arrives.

Pitfalls of 2.4.4 the replay reports rather than hides (:class:`ReferencePitfall`): an
order whose last partial fill equals exactly what it had left stays in the book marked
filled, and the next event to reach it fails. A cancel of an order still in flight is
refused by hftbacktest (listed in :attr:`Replay.refused_cancels`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from hftbacktest import (
    BUY_EVENT,
    DEPTH_EVENT,
    EXCH_EVENT,
    GTX,
    LIMIT,
    LOCAL_EVENT,
    SELL_EVENT,
    TRADE_EVENT,
    BacktestAsset,
    HashMapMarketDepthBacktest,
)
from hftbacktest.binding import event_dtype
from hftbacktest.order import EXPIRED, NEW, NONE, PARTIALLY_FILLED

from kalshi_pipeline.market.views import MarketSessionView

NS_PER_MS = 1_000_000
BID, ASK = 1, -1
_FLAGS = EXCH_EVENT | LOCAL_EVENT
_REQUEST_IN_PROCESS = 11  # hftbacktest's code for a request on an order still in flight


@dataclass(frozen=True)
class Request:
    """A request sent at ``step``'s millisecond: ``kind`` "new" places ``order_id`` on
    ``slot`` at ``price`` (cents on its own book) for ``qty``; "cancel" cancels it."""

    step: int
    slot: int
    price: int
    qty: int
    kind: str
    order_id: int


@dataclass(frozen=True)
class Fill:
    """One fill of one order: ``price_cents`` on the order's own book (YES price for a
    BID, NO price for an ASK), at the millisecond of the event that filled it."""

    order_id: int
    time_ms: int
    side: int
    price_cents: int
    contracts: int
    maker: bool


@dataclass(frozen=True)
class Replay:
    """What hftbacktest did with a script: its fills in the order they happened, the
    orders cancelled unfilled on arrival (post-only) and the cancels it refused because
    their order was still in flight."""

    fills: tuple[Fill, ...]
    post_only_cancelled: tuple[int, ...]
    refused_cancels: tuple[int, ...]


class ReferencePitfall(RuntimeError):
    """hftbacktest 2.4.4 failed on a known bug of its partial fills (see the module)."""


def book_of(view: MarketSessionView, step: int) -> dict[tuple[int, int], int]:
    """Step ``step``'s book in hftbacktest's terms: ``{(side, price tick): size}``, side
    +1 for bids (YES bids) and -1 for asks (NO bids at ``100 - q``)."""
    book = {}
    for p, s in zip(view.yes_bid_prices[step], view.yes_bid_sizes[step], strict=True):
        if s > 0:
            book[(BID, int(p))] = int(s)
    for q, s in zip(view.no_bid_prices[step], view.no_bid_sizes[step], strict=True):
        if s > 0:
            book[(ASK, 100 - int(q))] = int(s)
    return book


def _depth_rows(before: dict, after: dict) -> list[tuple[int, int, int]]:
    """(side, tick, new size) for each level whose size changed, decreases first."""
    changed = sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k))
    down = [
        (side, tick, after.get((side, tick), 0))
        for side, tick in changed
        if after.get((side, tick), 0) < before.get((side, tick), 0)
    ]
    up = [
        (side, tick, after[(side, tick)])
        for side, tick in changed
        if after.get((side, tick), 0) > before.get((side, tick), 0)
    ]
    return down + up


def step_rows(view: MarketSessionView) -> list[list[tuple[int, float, float]]]:
    """Each step's market rows as (event flags, price, quantity), in processing order."""
    rows, before = [], {}
    for step in range(len(view)):
        at = view.trade_steps == step
        trades = [
            (TRADE_EVENT | (BUY_EVENT if taker_yes else SELL_EVENT), price / 100, float(count))
            for price, count, taker_yes in zip(
                view.trade_yes_prices[at],
                view.trade_counts[at],
                view.trade_taker_yes[at],
                strict=True,
            )
        ]
        after = book_of(view, step)
        depth = [
            (DEPTH_EVENT | (BUY_EVENT if side == BID else SELL_EVENT), tick / 100, float(size))
            for side, tick, size in _depth_rows(before, after)
        ]
        rows.append(trades + depth)
        before = after
    return rows


def market_events(view: MarketSessionView) -> np.ndarray:
    """The view as hftbacktest's event array (times in nanoseconds)."""
    times = view.timestamps_ms.astype(np.int64) * NS_PER_MS
    assert (np.diff(times) > 0).all(), "the replay needs strictly increasing step times"
    records = []
    for step, rows in enumerate(step_rows(view)):
        for i, (flags, price, qty) in enumerate(rows):
            ts = int(times[step]) - (len(rows) - 1 - i)
            records.append((flags | _FLAGS, ts, ts, price, qty, 0, 0, 0.0))
    return np.array(records, dtype=event_dtype)


def _backtest(events: np.ndarray, queue_model: str, queue_power: float, latency_ms: int):
    asset = (
        BacktestAsset()
        .data([events])
        .linear_asset(1.0)
        .constant_order_latency(latency_ms * NS_PER_MS, 0)
        .tick_size(0.01)
        .lot_size(1.0)
        .trading_value_fee_model(0.0, 0.0)
    )
    if queue_model == "risk_averse":
        asset = asset.risk_adverse_queue_model()
    elif queue_model == "log_prob":
        asset = asset.log_prob_queue_model()
    elif queue_model == "power_prob":
        asset = asset.power_prob_queue_model(queue_power)
    else:
        raise ValueError(f"unknown queue model {queue_model!r}")
    return HashMapMarketDepthBacktest([asset.partial_fill_exchange()])


class _Run:
    """One replay in progress: the backtest, the orders sent and what was seen of them."""

    def __init__(self, view, queue_model, queue_power, latency_ms) -> None:
        self.events = market_events(view)
        self.bt = _backtest(self.events, queue_model, queue_power, latency_ms)
        self.sides: dict[int, int] = {}
        self.filled: dict[int, int] = {}
        self.fills: list[Fill] = []
        self.refused: list[int] = []
        self.started = False

    def advance_to(self, ts_ns: int) -> None:
        if not self.started:
            self._check(self.bt.elapse(0))  # jumps to the first row's time
            self.started = True
        self._check(self.bt.elapse(max(0, ts_ns - self.bt.current_timestamp)))
        self.poll()

    def _check(self, code: int) -> None:
        if code not in (0, 1):  # 1: the end of the data
            raise ReferencePitfall(f"hftbacktest failed with code {code}")

    def poll(self) -> None:
        orders = self.bt.orders(0)
        for order_id, side in self.sides.items():
            order = orders.get(order_id)
            done = int(round(order.qty - order.leaves_qty))
            if done > self.filled[order_id]:
                tick = int(order.exec_price_tick)
                self.fills.append(
                    Fill(
                        order_id=order_id,
                        time_ms=-(-int(order.exch_timestamp) // NS_PER_MS),
                        side=side,
                        price_cents=tick if side == BID else 100 - tick,
                        contracts=done - self.filled[order_id],
                        maker=bool(order.arr[0]["maker"]),
                    )
                )
                self.filled[order_id] = done

    def send(self, request: Request) -> None:
        if request.kind == "new":
            submit = self.bt.submit_buy_order if request.slot == BID else self.bt.submit_sell_order
            tick = request.price if request.slot == BID else 100 - request.price
            self._check(submit(0, request.order_id, tick / 100, request.qty, GTX, LIMIT, False))
            self.sides[request.order_id] = request.slot
            self.filled[request.order_id] = 0
            return
        assert request.kind == "cancel", request
        order = self.bt.orders(0).get(request.order_id)
        if order.req != NONE:  # in flight: hftbacktest refuses the cancel
            assert self.bt.cancel(0, request.order_id, False) == _REQUEST_IN_PROCESS
            self.refused.append(request.order_id)
        elif order.status in (NEW, PARTIALLY_FILLED):  # never cancel a filled one
            self._check(self.bt.cancel(0, request.order_id, False))

    def post_only_cancelled(self) -> tuple[int, ...]:
        orders = self.bt.orders(0)
        return tuple(
            order_id
            for order_id in self.sides
            if orders.get(order_id).status == EXPIRED and self.filled[order_id] == 0
        )


def replay(
    view: MarketSessionView,
    requests: list[Request],
    *,
    queue_model: str = "risk_averse",
    queue_power: float = 2.0,
    latency_ms: int = 0,
) -> Replay:
    """Replay ``view`` with ``requests`` (each sent at its step's millisecond, after the
    step's rows) through hftbacktest's partial-fill exchange: every fill, in order."""
    run = _Run(view, queue_model, queue_power, latency_ms)
    row_times = run.events["exch_ts"]
    by_step: dict[int, list[Request]] = {}
    for request in requests:
        by_step.setdefault(request.step, []).append(request)
    for step, ts_ms in enumerate(view.timestamps_ms):
        step_ns = int(ts_ms) * NS_PER_MS
        for ts in np.unique(row_times[(row_times > step_ns - NS_PER_MS) & (row_times <= step_ns)]):
            run.advance_to(int(ts))
        run.advance_to(step_ns)
        for request in by_step.get(step, []):
            run.send(request)
    run.advance_to(int(view.timestamps_ms[-1]) * NS_PER_MS + (latency_ms + 1) * NS_PER_MS)
    return Replay(
        fills=tuple(run.fills),
        post_only_cancelled=run.post_only_cancelled(),
        refused_cancels=tuple(run.refused),
    )
