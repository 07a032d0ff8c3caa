"""What paper trading records: one row per decision, per outcome, per fill, per market.

The same records come from the paper trader (:mod:`.trader`) and from the backtest of a
session's batch views (:mod:`.backtest`), so the two compare field by field
(:func:`compare`). Money is integer cents; an observation is its 52 float32 values as
bytes, compared bit for bit. Orders are only ever simulated: a decision's action is the
order the env executes (docs/paper-trading.md).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import astuple, dataclass, field, fields


@dataclass(frozen=True)
class Decision:
    """The action the model chose at ``step`` of ``market`` (``step_ms`` its receive
    time), on ``observation``; ``model`` names the model that chose it."""

    market: str
    step: int
    step_ms: int
    model: str
    action: int
    observation: bytes


@dataclass(frozen=True)
class Outcome:
    """What the action of ``step`` did once the env played it: the reward (in the env's
    units), and the portfolio after it, valued at the next step's book."""

    market: str
    step: int
    reward: float
    cash_cents: int
    position: int
    value_cents: int
    filled: int
    fees_cents: int
    terminated: bool


@dataclass(frozen=True)
class FillRecord:
    """One fill of the action of ``step`` (a maker fill, or a taker order's fill)."""

    market: str
    step: int
    order_id: int
    time_ms: int
    side: int
    price_cents: int
    contracts: int
    maker: bool
    fee_cents: int


@dataclass(frozen=True)
class MarketRecord:
    """A market's episode: the model that plays it, and whether it ended (``reason``)."""

    market: str
    model: str
    model_path: str
    ended: bool = False
    reason: str = ""


@dataclass
class Records:
    """The records of some steps (a commit's, or a whole session's)."""

    decisions: list[Decision] = field(default_factory=list)
    outcomes: list[Outcome] = field(default_factory=list)
    fills: list[FillRecord] = field(default_factory=list)
    markets: list[MarketRecord] = field(default_factory=list)

    def extend(self, other: Records) -> None:
        for f in fields(self):
            getattr(self, f.name).extend(getattr(other, f.name))

    def __len__(self) -> int:
        return sum(len(getattr(self, f.name)) for f in fields(self))

    def counts(self) -> dict[str, int]:
        return {f.name: len(getattr(self, f.name)) for f in fields(self)}


def compare(paper: Records, backtest: Records) -> list[str]:
    """The differences between two sessions' records, market by market (empty when they
    agree bit for bit): the first differing row of each kind, and counts that differ."""
    problems = []
    for kind in ("decisions", "outcomes", "fills"):
        ours = _by_market(getattr(paper, kind))
        theirs = _by_market(getattr(backtest, kind))
        for market in sorted(set(ours) | set(theirs)):
            a, b = ours.get(market, []), theirs.get(market, [])
            if len(a) != len(b):
                problems.append(f"{market}: {len(a)} {kind} in paper, {len(b)} in the backtest")
                continue
            for x, y in zip(a, b, strict=True):
                if astuple(x) != astuple(y):
                    problems.append(f"{market}: {kind} differ at step {x.step}: {x} != {y}")
                    break
    return problems


def _by_market(rows: Iterable) -> dict[str, list]:
    out: dict[str, list] = {}
    for row in rows:
        out.setdefault(row.market, []).append(row)
    for values in out.values():
        values.sort(key=lambda row: astuple(row)[1:3])
    return out
