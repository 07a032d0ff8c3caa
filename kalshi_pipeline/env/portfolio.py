"""What one episode has done so far: the account (cash, signed position, its cost) and
the last order, kept by the env and read by the observation.

Integer cents and contracts throughout. Positive positions are YES contracts, negative
NO. The position is valued at the bid of the side held, never at the mid
(docs/environment.md, "Reward and portfolio value"). The env makes a new ``Portfolio`` at
every ``reset()`` and applies each fill of :func:`kalshi_pipeline.env.execution.execute`
to it; this is mutable per-step state, not a record, so it has no JSON form.
"""

from __future__ import annotations

from kalshi_pipeline.env.execution import Fill

NO_ORDER = (0.0, 0.0, 0.0, 0.0)  # action, fill ratio, fill price, fee (observation scale)


class Portfolio:
    """The account and the last order of one episode, from its first step on."""

    __slots__ = (
        "cash", "position", "cost_basis", "fees_paid", "value", "peak", "opened_at",
        "last_order", "last_fill_step",
    )  # fmt: skip

    def __init__(self, starting_cash_cents: int) -> None:
        self.cash = starting_cash_cents
        self.position = 0
        self.cost_basis = 0  # cents paid for the contracts held now (fees excluded)
        self.fees_paid = 0
        # The value at the last step rewarded, and its highest so far (for the drawdown).
        self.value = self.peak = starting_cash_cents
        self.opened_at = 0  # the step the position held now was opened
        self.last_order = NO_ORDER
        self.last_fill_step = -1  # no fill yet

    def apply(self, fill: Fill, t: int) -> None:
        """Book a fill of step ``t``: cash, fees, position and the cost of what is held."""
        before = self.position
        after = before + fill.contracts
        self.cash += fill.cash_change_cents
        self.fees_paid += fill.fees_cents
        if after == 0:
            self.cost_basis = 0
        elif before == 0 or (before > 0) != (after > 0):
            # Opened or flipped: what is held now was opened in this fill.
            self.cost_basis = fill.opened_notional_cents
            self.opened_at = t
        elif abs(after) > abs(before):
            self.cost_basis += fill.opened_notional_cents
        else:  # partly closed: the rest keeps its average price
            self.cost_basis = self.cost_basis * abs(after) // abs(before)
        self.position = after
        self.last_fill_step = t

    def value_at(self, yes_bid: int, no_bid: int) -> int:
        """Cash plus the position at the held side's best bid (``yes_bid``/``no_bid``)."""
        position = self.position
        if position > 0:
            return self.cash + position * yes_bid
        if position < 0:
            return self.cash - position * no_bid
        return self.cash

    def revalue(self, value: int) -> int:
        """Record the value of this step; returns the change since the previous one."""
        change = value - self.value
        self.value = value
        self.peak = max(self.peak, value)
        return change
