"""Maker execution: limit orders that rest at the touch and fill from the recorded tape.

An episode in ``maker`` mode keeps at most one order per *slot*:

* the **BID** slot (``BID = +1``) rests on the YES bids at a YES price: BUY_YES (which may
  open YES contracts, or net held NO ones) and SELL_NO (only against NO held);
* the **ASK** slot (``ASK = -1``) rests on the NO bids at a NO price, that is the YES ask
  at ``100 - price``: BUY_NO, and SELL_YES (only against YES held).

Prices are cents *on the order's own book*; a fill of a BID order at ``p`` is a buy of
YES at ``p``, of an ASK order at ``q`` a buy of NO at ``q`` (selling YES at ``100 - q``).

The exchange, as hftbacktest's partial-fill exchange models it (docs/environment.md,
"Maker execution"; kalshi_pipeline_tests/env/test_hftbacktest_differential.py holds the
comparison):

* **Requests take time.** An order reaches the book :class:`LatencyModel` milliseconds
  after its decision; the cancel of the order it replaces likewise (its own draw), and the
  replacement never reaches the book before any cancel sent earlier for its slot, so a
  slot never has two orders on the book. Between step ``t`` and ``t + 1`` the requests
  that arrive before step ``t + 1``'s millisecond meet book ``t``; then come step
  ``t + 1``'s trades, in order, then its book; then the requests arriving at exactly that
  millisecond (market rows first at equal times, a later step's sharing it too). A trade
  happens at its step's millisecond (the view keeps no time of its own for it).
* **Post-only.** An order that would cross the book when it arrives is cancelled unfilled.
* **Its queue.** It joins behind the visible size at its price; the :class:`QueueModel`
  moves the queue ahead on trades at that price and on changes of that level's size. A
  level beyond the view's top levels is not seen: its queue estimate stays as it was.
* **Fills.** Contracts of a trade at its price beyond the queue ahead fill it (partly). A
  trade through its price (at a worse price on its book) swept everything ahead of it:
  the queue ahead becomes 0 and the trade's contracts fill it, up to all it has left
  (``trade_through_fills="traded"``; hftbacktest's rule, ``"all"``, fills all that is left
  however small the trade). The other book crossing it (a YES bid ``p`` when
  ``p + best NO bid >= 100``) fills all that is left, as in hftbacktest: that fill comes as
  the market moves against the order. Fills are maker fills at the order's price, paying
  the maker fee; our orders never change the recorded book. Every trade of the tape
  counts, off-book ones too (their level was empty, so an order resting there was first).
* **Expiry.** An order is removed after the events of step ``placed + order_expiry_steps``
  (at the exchange, without latency); at the end of the episode all are.
* **Money.** When an order reaches the book it is sized down to what the account allows
  then: a buy to ``max_position`` less the contracts of its side held (the slot's earlier
  order is off the book by then, and the other slot's fills only lower that position) and
  to the cash not reserved by the other order, ignoring what its fills would net; a sell
  to the contracts held (only its own fills lower them), and, where one contract's fee is
  more than the ``100 - price`` it receives (a fee multiplier above 57), to the free cash
  over the difference. A resting buy reserves its leaves times (price + the maker fee of
  one contract: a partial fill's fee, rounded up per fill, never exceeds that share), a
  resting sell its leaves times the fee alone, so cash never goes negative.
"""

from __future__ import annotations

import heapq
import math
from dataclasses import dataclass

from kalshi_pipeline.env.execution import (
    BUY_NO,
    BUY_YES,
    HOLD,
    PAIR_PAYOUT_CENTS,
    SELL_NO,
    SELL_YES,
    Fill,
)
from kalshi_pipeline.env.fees import MarketFees
from kalshi_pipeline.env.latency import LatencyModel
from kalshi_pipeline.env.portfolio import Portfolio
from kalshi_pipeline.env.queue import QueueModel, QueuePosition, queue_model

BID, ASK = 1, -1
_SLOT = {BUY_YES: BID, SELL_NO: BID, BUY_NO: ASK, SELL_YES: ASK}
_CLOSING = (SELL_NO, SELL_YES)  # they only sell what is held
_NEW, _CANCEL = 0, 1
_NO_ORDER = (0.0, -1.0, 0.0)  # a slot's observation without an order
_NO_ORDERS = _NO_ORDER * 2


@dataclass(frozen=True, slots=True, kw_only=True)
class MakerFill:
    """One fill of a resting order: ``contracts`` (> 0) at ``price_cents`` on the order's
    own book (a YES price for a BID order, a NO price for an ASK one)."""

    order_id: int
    time_ms: int
    step: int
    side: int
    price_cents: int
    contracts: int
    maker: bool
    fee_cents: int


class RestingOrder:
    """One order of an episode, from its decision to its end."""

    __slots__ = (
        "order_id", "side", "price", "wanted", "closing", "leaves", "queue", "placed",
        "live", "over", "size", "size_step",
    )  # fmt: skip

    def __init__(self, order_id, side, price, wanted, closing, placed) -> None:
        self.order_id, self.side, self.price = order_id, side, price
        self.wanted, self.closing, self.placed = wanted, closing, placed
        self.leaves = 0
        self.queue: QueuePosition | None = None
        self.live = False  # resting on the book
        self.over = False  # cancelled, rejected, expired or filled
        # The visible size at its price at step ``size_step`` (None: beyond the view).
        self.size: int | None = None
        self.size_step = -1


@dataclass(frozen=True, kw_only=True)
class MakerRules:
    """The settings the exchange reads (from :class:`~.trading_env.EnvConfig`)."""

    order_size: int
    max_position: int
    expiry_steps: int
    queue: QueueModel
    latency: LatencyModel
    through_fills_all: bool = False  # a trade through fills all that is left


def maker_rules(config) -> MakerRules:
    """The exchange's rules from an :class:`~.env_config.EnvConfig`."""
    return MakerRules(
        order_size=config.order_size,
        max_position=config.max_position,
        expiry_steps=config.order_expiry_steps,
        queue=queue_model(config.queue_model, config.queue_power),
        latency=LatencyModel.from_env(config),
        through_fills_all=config.trade_through_fills == "all",
    )


class RestingOrders:
    """The orders of one episode in maker mode, over one view's books and trades."""

    def __init__(self, data: tuple, rules: MakerRules, fees: MarketFees, portfolio: Portfolio, rng):
        """``data``: :func:`replay_data` of the view the episode plays."""
        self.rules, self.fees, self.portfolio, self.rng = rules, fees, portfolio, rng
        self.times, self.prices, self.sizes, self.best, self.trades = data
        self.slot: dict[int, RestingOrder | None] = {BID: None, ASK: None}
        self.live: list[RestingOrder] = []
        self.pending: list[tuple[int, int, int, RestingOrder]] = []  # (time, seq, kind, order)
        # The latest arrival of a cancel sent for each slot: no new order of the slot may
        # reach the book before it (random latencies can make a later cancel land sooner).
        self.cleared = {BID: 0, ASK: 0}
        self.requests = 0
        self.orders = 0
        self.fills: list[MakerFill] = []

    def step(self, action: int, t: int, last: bool) -> tuple[int, int, tuple[MakerFill, ...]]:
        """The env's step: send ``action``'s order at step ``t`` (HOLD sends none), then
        play the exchange up to step ``t + 1`` (nothing after the ``last`` step). Returns
        (signed contracts filled, fees in cents, the fills)."""
        if action != HOLD:
            self.decide(action, t)
        fills = () if last else tuple(self.advance(t + 1))
        if not fills:
            return 0, 0, fills
        return sum(f.side * f.contracts for f in fills), sum(f.fee_cents for f in fills), fills

    # -- decisions ---------------------------------------------------------------------
    def decide(self, action: int, t: int) -> None:
        """The agent's ``action`` (not HOLD) at step ``t``: a new order at the touch of its
        slot, replacing the slot's order. Nothing happens without a touch to join, or for
        a sell with nothing held to sell."""
        side, closing = _SLOT[action], action in _CLOSING
        # Contracts of the other side held, which this slot's fills net (sell).
        nettable = -self.portfolio.position * side
        price = self.best[side][t]
        if price <= 0 or (closing and nettable <= 0):
            return
        wanted = min(self.rules.order_size, nettable) if closing else self.rules.order_size
        self.orders += 1
        order = RestingOrder(self.orders, side, price, wanted, closing, t)
        now = self.times[t]
        arrives = now + self.rules.latency.entry(self.rng)
        previous = self.slot[side]
        if previous is not None and not previous.over:
            cancel_at = now + self.rules.latency.cancel(self.rng)
            self._send(cancel_at, _CANCEL, previous)
            self.cleared[side] = max(self.cleared[side], cancel_at)
        self.slot[side] = order
        self._send(max(arrives, self.cleared[side]), _NEW, order)

    def _send(self, time: int, kind: int, order: RestingOrder) -> None:
        self.requests += 1
        heapq.heappush(self.pending, (time, self.requests, kind, order))

    # -- the exchange between two steps ------------------------------------------------
    def advance(self, s: int) -> list[MakerFill]:
        """Play the events from step ``s - 1`` to step ``s``; returns the fills."""
        self.fills = []
        now, pending = self.times[s], self.pending
        if pending and pending[0][0] < now:
            self._arrive(now, s - 1)
        if s in self.trades:
            for book_side, price, contracts in self.trades[s]:
                self._trade(book_side, price, contracts, s)
        if self.live:
            self._depth(s)
        times = self.times
        if pending and pending[0][0] <= now and (s + 1 == len(times) or times[s + 1] != now):
            # After every market row of this millisecond: a later step of the same one
            # (a repaired time) comes first too.
            self._arrive(now + 1, s)  # times are whole milliseconds
        if self.live or pending:
            self._expire(s)
        return self.fills

    def _arrive(self, until: int, b: int) -> None:
        """Apply the requests that arrive before ``until``, against book ``b``."""
        pending = self.pending
        while pending and pending[0][0] < until:
            _, _, kind, order = heapq.heappop(pending)
            if kind == _CANCEL:
                self._end(order)
            elif not order.over:
                self._join(order, b)

    def _join(self, order: RestingOrder, b: int) -> None:
        side, price = order.side, order.price
        other = self.best[-side][b]
        if other > 0 and price + other >= PAIR_PAYOUT_CENTS:
            self._end(order)  # post-only: it would cross
            return
        order.leaves = self._size(order)
        if order.leaves <= 0:
            self._end(order)
            return
        size = self._size_at(side, b, price)
        order.size, order.size_step = size, b
        if size is None:  # beyond the view now: its level's size when it was decided
            size = self._size_at(side, order.placed, price) or 0
        order.queue = self.rules.queue.join(size)
        order.live = True
        self.live.append(order)

    def _size(self, order: RestingOrder) -> int:
        """How much of ``order`` the account allows now (module docstring, "Money")."""
        position = self.portfolio.position * order.side
        free = self.portfolio.cash - self.reserved()
        fee = self.fees.maker(1, order.price)
        if order.closing:
            held = min(order.wanted, max(-position, 0))
            # What a sold contract costs beyond the 100 - price it receives (only a fee
            # multiplier above 57 makes it positive).
            short = fee - (PAIR_PAYOUT_CENTS - order.price)
            return held if short <= 0 else max(min(held, free // short), 0)
        room = self.rules.max_position - position
        return max(min(order.wanted, room, free // (order.price + fee)), 0)

    def reserved(self) -> int:
        """Cash held back by the resting orders."""
        fees = self.fees
        return sum(
            o.leaves * (fees.maker(1, o.price) + (0 if o.closing else o.price)) for o in self.live
        )

    def _trade(self, book_side: int, price: int, contracts: int, s: int) -> None:
        """A trade that took ``contracts`` from ``book_side``'s bids at ``price``."""
        for order in [o for o in self.live if o.side == book_side]:
            if price < order.price:  # traded through it: nothing is ahead at its price
                order.queue.front = 0.0
                through = order.leaves if self.rules.through_fills_all else contracts
                self._fill(order, min(through, order.leaves), s)
            elif price == order.price:
                queue = self.rules.queue
                queue.trade(order.queue, contracts)
                if beyond := queue.filled(order.queue):
                    self._fill(order, min(beyond, order.leaves), s)

    def _depth(self, s: int) -> None:
        """Step ``s``'s book: the size at each order's price, then the crossing."""
        queue = self.rules.queue
        for order in list(self.live):
            side, price = order.side, order.price
            other = self.best[-side][s]
            if other > 0 and price + other >= PAIR_PAYOUT_CENTS:
                self._fill(order, order.leaves, s)
                continue
            sizes, prices = self.sizes[side], self.prices[side]
            if order.size_step == s - 1 and sizes[s] == sizes[s - 1] and prices[s] == prices[s - 1]:
                order.size_step = s  # its book did not change
                continue
            after = self._size_at(side, s, price)
            before = order.size if order.size_step == s - 1 else self._size_at(side, s - 1, price)
            order.size, order.size_step = after, s
            if after is None or before == after:
                continue  # unseen, or unchanged
            queue.depth(order.queue, after if before is None else before, after)

    def _expire(self, s: int) -> None:
        last = s - self.rules.expiry_steps
        for order in [o for o in self.live if o.placed <= last]:
            self._end(order)
        for _, _, kind, order in self.pending:
            if kind == _NEW and order.placed <= last:
                order.over = True

    def _fill(self, order: RestingOrder, contracts: int, s: int) -> None:
        """Book a maker fill of ``contracts`` of ``order`` at its price."""
        price, side, portfolio = order.price, order.side, self.portfolio
        netted = min(contracts, max(-portfolio.position * side, 0))
        fee = self.fees.maker(contracts, price)
        cash = netted * (PAIR_PAYOUT_CENTS - price) - (contracts - netted) * price - fee
        portfolio.apply(
            Fill(
                contracts=side * contracts, requested=order.wanted, cash_change_cents=cash,
                fees_cents=fee, notional_cents=contracts * price,
                opened_notional_cents=(contracts - netted) * price,
            ),
            s,
        )  # fmt: skip
        order.leaves -= contracts
        self.fills.append(
            MakerFill(
                order_id=order.order_id, time_ms=self.times[s], step=s, side=side,
                price_cents=price, contracts=contracts, maker=True, fee_cents=fee,
            )
        )  # fmt: skip
        if order.leaves == 0:
            self._end(order)

    def _end(self, order: RestingOrder) -> None:
        order.over = True
        if order.live:
            order.live = False
            self.live.remove(order)

    # -- what the agent sees -------------------------------------------------------------
    def _size_at(self, side: int, t: int, price: int) -> int | None:
        """The visible size at ``price`` on ``side``'s book at step ``t``: 0 where the
        book shows the price is empty, ``None`` beyond its top levels."""
        prices, sizes = self.prices[side][t], self.sizes[side][t]
        for level_price, size in zip(prices, sizes, strict=True):
            if size <= 0:
                return 0  # the book ends above the price
            if level_price == price:
                return size
            if level_price < price:
                return 0
        return None

    def observation(self, t: int) -> tuple[float, ...]:
        """Each slot's order as the observation shows it at step ``t``: ``(touch - price) /
        100`` on its book (positive when the touch moved above it; an empty book is a
        touch of 0, so negative), the queue ahead over its level's visible size (capped
        at 1; 1 while in flight; 1 or 0, anything ahead or not, when the level is hidden
        beyond the top levels or shows nothing), and ``log1p(t - placed) / 5``. A slot
        shows its latest order: one it replaces may still rest until its cancel lands."""
        slot = self.slot
        if (slot[BID] is None or slot[BID].over) and (slot[ASK] is None or slot[ASK].over):
            return _NO_ORDERS
        values: list[float] = []
        for side in (BID, ASK):
            order = slot[side]
            if order is None or order.over:
                values += _NO_ORDER
                continue
            distance = (self.best[side][t] - order.price) / 100
            if order.live:
                size = order.size if order.size_step == t else self._size_at(side, t, order.price)
                ahead = self.rules.queue.ahead(order.queue)
                queue = min(ahead / size, 1.0) if size else float(ahead > 0)
            else:
                queue = 1.0  # in flight: the whole level will be ahead of it
            values += (distance, queue, math.log1p(t - order.placed) / 5)
        return tuple(values)
