"""The execution model: how an order meets the recorded book (docs/environment.md).

Plain Python integers throughout (cents and contracts): an order touches at most the
top K levels of one side, and numpy's per-call overhead would dominate at that size.

Rules
-----
* One signed position per market: positive = YES contracts, negative = NO contracts.
  Cash is integer cents and never goes negative.
* Kalshi's book holds bids only. BUY_YES lifts YES asks, which *are* the NO bids: a NO
  bid at ``p`` is a YES ask at ``100 - p``. It walks them from the best ask up to
  ``best ask + limit_slippage_cents`` and cancels the unfilled rest. Contracts bought
  against held NO contracts net them (Kalshi pays out the YES+NO pair: 100 cents each),
  so buying YES while short NO is exactly selling NO at the NO bid. BUY_NO mirrors it on
  the YES bids.
* SELL_YES sells YES contracts actually held (up to the order size) into the YES bids,
  walking down to ``best bid - limit_slippage_cents``; with no YES held it does nothing.
  SELL_NO mirrors it. Selling never credits cash for contracts not held.
* A buy is sized down to what cash can pay, fees included, and to ``max_position``.
* Each price level filled is one fill, charged Kalshi's taker fee
  ``ceil(0.07 * C * P * (1 - P))`` dollars rounded up to the cent (P in dollars;
  :func:`kalshi_pipeline.market.fees.taker_fee_cents`); an unfilled order costs nothing.
* Liquidity taken is gone for the rest of the step: a walk consumes each level once
  (the next step shows the recorded book again: the model has no market impact).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Self

from kalshi_pipeline.market.fees import taker_fee_cents

HOLD, BUY_YES, SELL_YES, BUY_NO, SELL_NO = range(5)
ACTION_NAMES = ("HOLD", "BUY_YES", "SELL_YES", "BUY_NO", "SELL_NO")
PAIR_PAYOUT_CENTS = 100
FeeFunction = Callable[[int, int], int]  # (contracts, price in cents) -> fee in cents


@dataclass(frozen=True, slots=True, kw_only=True)
class Fill:
    """What one order did. ``contracts`` is signed like the position change."""

    contracts: int = 0
    requested: int = 0
    cash_change_cents: int = 0
    fees_cents: int = 0
    notional_cents: int = 0  # sum of contract prices paid or received (fees excluded)
    opened_notional_cents: int = 0  # the part of it paid for newly opened contracts

    @property
    def filled(self) -> int:
        return abs(self.contracts)

    @property
    def average_price_cents(self) -> float:
        return self.notional_cents / self.filled if self.filled else 0.0

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(**data)


NO_FILL = Fill()


def execute(
    action: int,
    position: int,
    cash_cents: int,
    yes_bids: list[tuple[int, int]],
    no_bids: list[tuple[int, int]],
    *,
    order_size: int,
    max_position: int,
    limit_slippage_cents: int,
    taker_fee: FeeFunction = taker_fee_cents,
) -> Fill:
    """Execute one action against one step's book.

    ``yes_bids``/``no_bids`` are the displayed bid levels ``(price_cents, size)``, best
    (highest) first; ``taker_fee(contracts, price_cents)`` is the market's taker fee
    (:mod:`kalshi_pipeline.env.fees`). Returns the fill; the caller applies it to its
    portfolio.
    """
    slippage = limit_slippage_cents
    if action == BUY_YES:
        wanted = min(order_size, max_position - position)
        return _buy(wanted, max(-position, 0), cash_cents, no_bids, slippage, +1, taker_fee)
    if action == BUY_NO:
        wanted = min(order_size, max_position + position)
        return _buy(wanted, max(position, 0), cash_cents, yes_bids, slippage, -1, taker_fee)
    if action == SELL_YES and position > 0:
        return _sell(min(order_size, position), yes_bids, slippage, -1, taker_fee)
    if action == SELL_NO and position < 0:
        return _sell(min(order_size, -position), no_bids, slippage, +1, taker_fee)
    return NO_FILL


def _buy(
    wanted: int,
    nettable: int,
    cash: int,
    opposite_bids: list[tuple[int, int]],
    slippage: int,
    direction: int,
    taker_fee_cents: FeeFunction,
) -> Fill:
    """Buy ``wanted`` contracts from the asks formed by ``opposite_bids``.

    The first ``nettable`` contracts close held contracts of the other side (each pays
    out a pair: +100 cents); the rest open new ones and need cash.
    """
    if wanted <= 0 or not opposite_bids:
        return Fill(requested=max(wanted, 0))
    limit = PAIR_PAYOUT_CENTS - opposite_bids[0][0] + slippage
    filled = cash_change = fees = notional = opened_notional = 0
    for bid_price, size in opposite_bids:
        price = PAIR_PAYOUT_CENTS - bid_price
        if price > limit or filled == wanted:
            break
        available = min(size, wanted - filled)
        netting = min(available, max(nettable - filled, 0))
        budget = cash + cash_change

        def cash_after(take: int, price: int = price, netting: int = netting) -> int:
            netted = min(take, netting)
            pays = netted * (PAIR_PAYOUT_CENTS - price) - (take - netted) * price
            return pays - taker_fee_cents(take, price)

        take = available
        if budget + cash_after(take) < 0:
            # Size down to what cash can pay, fees included (netting always pays).
            take = min(
                available, netting + (budget + netting * (PAIR_PAYOUT_CENTS - price)) // price
            )
            while take > 0 and budget + cash_after(take) < 0:
                take -= 1
        if take <= 0:
            break
        change = cash_after(take)
        fee = taker_fee_cents(take, price)
        cash_change += change
        fees += fee
        notional += take * price
        opened_notional += max(take - netting, 0) * price
        filled += take
        if take < available:
            break  # cash ran out at this level
    return Fill(
        contracts=direction * filled, requested=wanted, cash_change_cents=cash_change,
        fees_cents=fees, notional_cents=notional, opened_notional_cents=opened_notional,
    )  # fmt: skip


def _sell(
    wanted: int,
    bids: list[tuple[int, int]],
    slippage: int,
    direction: int,
    taker_fee_cents: FeeFunction,
) -> Fill:
    """Sell ``wanted`` held contracts into ``bids``, walking down to the limit."""
    if not bids:
        return Fill(requested=wanted)
    limit = bids[0][0] - slippage
    filled = cash_change = fees = notional = 0
    for price, size in bids:
        if price < limit or filled == wanted:
            break
        take = min(size, wanted - filled)
        fee = taker_fee_cents(take, price)
        cash_change += take * price - fee
        fees += fee
        notional += take * price
        filled += take
    return Fill(
        contracts=direction * filled, requested=wanted, cash_change_cents=cash_change,
        fees_cents=fees, notional_cents=notional,
    )  # fmt: skip
