"""Where a resting order stands in its price level's queue: hftbacktest's queue models.

A resting order only sees the level's visible size and the trades at its price, so the
queue ahead of it (``front``) is an estimate. Every model follows the same four rules,
with hftbacktest's float arithmetic step for step (lot size 1):

* join: a new order goes to the back: ``front`` = the visible size at its price;
* trade: a trade of ``contracts`` at the order's price on its book takes from the front:
  ``front -= contracts`` (the probability models also add them to ``traded``, the trade
  volume at the price since the level's size last changed);
* filled: ``exec = round(-front)``, rounded half away from zero as Rust's ``f64::round``
  (not Python's half to even). If ``exec > 0`` the order fills ``exec`` contracts and
  ``front`` becomes 0, so the next trades at the price fill in full; otherwise nothing
  fills. A trade of exactly the queue ahead leaves ``front`` at 0 and fills nothing;
* depth: the level's visible size went from ``before`` to ``after``. The models differ:

  - ``risk_averse``: only trades advance the order; a shrinking level only caps it:
    ``front = min(front, after)``;
  - ``log_prob`` and ``power_prob`` (hftbacktest's ProbQueueModel with LogProbQueueFunc,
    ``f(x) = ln(1 + x)``, or PowerProbQueueFunc, ``f(x) = x ** n``): the size that left
    the level beyond the trades already counted, ``chg = before - after - traded``, is
    split between the queue ahead and behind. ``traded`` is reset to 0. If ``chg < 0``
    (the level grew) ``front = min(front, after)`` and nothing else. Otherwise, with
    ``back = before - front`` and ``prob = f(back) / (f(back) + f(front))`` (the share
    cancelled behind the order; an infinite ``prob`` counts as 1)::

        est = front - (1 - prob) * chg + min(back - prob * chg, 0)
        front = min(est, after)

Rust's float rules are kept where Python's differ: ``ln`` of 0 is ``-inf`` and of a negative
number NaN, a negative number to a fractional power is NaN, and ``x / 0`` is ``±inf`` or
NaN, where Python would raise. A NaN ``prob`` (``0 / 0``: nothing ahead and nothing behind,
or a ``front`` below -1 under ``log_prob``) makes ``est`` NaN, and Rust's ``f64::min``
returns the other operand when one is NaN, so the order goes to ``front = after``, the back
of the queue: NaN never reaches ``front``. ``filled`` treats a NaN ``front`` as Rust's
``NaN as i64`` does, as 0.
"""

from __future__ import annotations

import math
from typing import Protocol

QUEUE_MODELS = ("risk_averse", "log_prob", "power_prob")


def rust_round(x: float) -> float:
    """``x`` rounded half away from zero, as Rust's ``f64::round`` (NaN and ±inf kept)."""
    if not math.isfinite(x):
        return x
    if x < 0.0:
        return -rust_round(-x)
    whole = math.floor(x)
    return float(whole + 1) if x - whole >= 0.5 else float(whole)


def rust_min(a: float, b: float) -> float:
    """Rust's ``f64::min``: the smaller of the two, or the other one if one is NaN."""
    if a != a:
        return b
    if b != b:
        return a
    return b if b < a else a


def _ln(x: float) -> float:
    """Rust's ``f64::ln``: ``-inf`` at 0 and NaN below, where Python raises."""
    if x > 0.0:
        return math.log(x)
    return -math.inf if x == 0.0 else math.nan


def _powf(x: float, n: float) -> float:
    """Rust's ``f64::powf`` for a positive finite ``n``: NaN for a negative base and a
    fractional power (Python would give a complex number), ±inf on overflow."""
    if x < 0.0 and not n.is_integer():
        return math.nan
    try:
        return math.pow(x, n)
    except OverflowError:
        odd = n.is_integer() and int(n) % 2 == 1
        return -math.inf if x < 0.0 and odd else math.inf


def _divide(a: float, b: float) -> float:
    """IEEE division, as Rust's: ``x / 0`` is ±inf, ``0 / 0`` (or NaN / 0) NaN."""
    if b != 0.0:
        return a / b
    if a == 0.0 or a != a:
        return math.nan
    return math.copysign(math.inf, a) * math.copysign(1.0, b)


class QueuePosition:
    """One order's place in its queue: ``front``, the queue ahead (a float estimate), and
    ``traded``, the trade volume at its price since the level's size last changed (read by
    the probability models only)."""

    __slots__ = ("front", "traded")

    def __init__(self, front: float, traded: float = 0.0) -> None:
        self.front = front
        self.traded = traded

    def __repr__(self) -> str:
        return f"QueuePosition(front={self.front!r}, traded={self.traded!r})"


class QueueModel(Protocol):
    """The rules a resting order's queue follows (see the module docstring)."""

    name: str

    def join(self, level_size: int) -> QueuePosition: ...

    def trade(self, q: QueuePosition, contracts: int) -> None: ...

    def depth(self, q: QueuePosition, before: int, after: int) -> None: ...

    def filled(self, q: QueuePosition) -> int: ...

    def ahead(self, q: QueuePosition) -> float: ...


class _Queue:
    """The rules all models share: join at the back, trades take from the front, fills."""

    __slots__ = ()
    name = ""

    def join(self, level_size: int) -> QueuePosition:
        """A new order: the whole visible size at its price is ahead of it."""
        return QueuePosition(float(level_size))

    def trade(self, q: QueuePosition, contracts: int) -> None:
        """A trade of ``contracts`` at the order's price on its book."""
        q.front -= contracts

    def filled(self, q: QueuePosition) -> int:
        """Contracts the trades so far filled (``round(-front)`` when positive; the queue
        ahead is then empty)."""
        executed = rust_round(-q.front)
        if executed > 0.0:  # False for NaN, which Rust's `as i64` makes 0
            q.front = 0.0
            return int(executed)
        return 0

    def ahead(self, q: QueuePosition) -> float:
        """The queue ahead, never below 0."""
        return q.front if q.front > 0.0 else 0.0


class RiskAverseQueue(_Queue):
    """Only trades advance the order; a shrinking level only caps the queue ahead."""

    __slots__ = ()
    name = "risk_averse"

    def depth(self, q: QueuePosition, before: int, after: int) -> None:
        q.front = rust_min(q.front, float(after))


class _ProbQueue(_Queue):
    """hftbacktest's ProbQueueModel: a level's decrease not explained by trades is split
    between the queue ahead and behind by ``prob = f(back) / (f(back) + f(front))``."""

    __slots__ = ()

    def _f(self, x: float) -> float:
        raise NotImplementedError

    def trade(self, q: QueuePosition, contracts: int) -> None:
        q.front -= contracts
        q.traded += contracts

    def depth(self, q: QueuePosition, before: int, after: int) -> None:
        chg = float(before) - float(after)
        chg -= q.traded
        q.traded = 0.0
        if chg < 0.0:
            q.front = rust_min(q.front, float(after))
            return
        front = q.front
        back = float(before) - front
        f_back = self._f(back)
        prob = _divide(f_back, f_back + self._f(front))
        if math.isinf(prob):
            prob = 1.0
        est = front - (1.0 - prob) * chg + rust_min(back - prob * chg, 0.0)
        q.front = rust_min(est, float(after))


class LogProbQueue(_ProbQueue):
    """The probability model with ``f(x) = ln(1 + x)``."""

    __slots__ = ()
    name = "log_prob"

    def _f(self, x: float) -> float:
        return _ln(1.0 + x)


class PowerProbQueue(_ProbQueue):
    """The probability model with ``f(x) = x ** power``."""

    __slots__ = ("power",)
    name = "power_prob"

    def __init__(self, power: float = 2.0) -> None:
        if (
            not isinstance(power, int | float)
            or isinstance(power, bool)
            or not math.isfinite(power)
            or power <= 0
        ):
            raise ValueError(f"the queue power must be a positive finite number, not {power!r}")
        self.power = float(power)

    def _f(self, x: float) -> float:
        return _powf(x, self.power)


def queue_model(name: str, power: float = 2.0) -> QueueModel:
    """The queue model called ``name`` (``power`` is read by ``power_prob`` only)."""
    if name == "risk_averse":
        return RiskAverseQueue()
    if name == "log_prob":
        return LogProbQueue()
    if name == "power_prob":
        return PowerProbQueue(power)
    raise ValueError(f"unknown queue model {name!r} (one of {', '.join(QUEUE_MODELS)})")
