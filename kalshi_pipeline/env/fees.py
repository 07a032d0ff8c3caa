"""Kalshi's fees per market: the taker fee, the maker fee, and per-series overrides.

Kalshi charges a fee on each fill of ``C`` contracts at ``P`` dollars, rounded up to the
cent:

* taker: ``ceil(0.07 * m * C * P * (1 - P))`` dollars, on every series;
* maker: ``ceil(0.0175 * m * C * P * (1 - P))`` dollars on a series of fee type
  ``quadratic_with_maker_fees``, nothing on one of type ``quadratic``.

``m`` is the series' fee multiplier (1 for most series). A market's series is its ticker up
to the first ``-`` (``KXBTC-25JAN01-B100`` is in ``KXBTC``).

All of it is exact integer arithmetic, with no float on the way: the multiplier becomes the
fraction its decimal text reads (``0.1`` is exactly 1/10, not the float nearest it), so for
a price of ``p`` cents the taker fee is ``ceil(7 * num * C * p * (100 - p) / (10_000 *
den))`` cents and the maker fee ``ceil(175 * num * C * p * (100 - p) / (1_000_000 * den))``
cents, where ``num / den`` is the multiplier. With a multiplier of 1 the taker fee is
:func:`kalshi_pipeline.market.fees.taker_fee_cents`.

:class:`FeeModel` holds the settings (a default fee type and multiplier, and overrides for
named series, each ``SERIES:FEE_TYPE`` or ``SERIES:FEE_TYPE:MULTIPLIER``);
:meth:`FeeModel.for_market` resolves them into one market's :class:`MarketFees`, whose
``taker`` and ``maker`` the environment calls on every fill.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

FEE_TYPES = ("quadratic", "quadratic_with_maker_fees")


def series_of(ticker: str) -> str:
    """The series of a market: its ticker up to the first ``-`` (all of it without one)."""
    return ticker.partition("-")[0]


def _fee_type(fee_type: object, where: str) -> str:
    if fee_type not in FEE_TYPES:
        raise ValueError(f"unknown fee type {fee_type!r} {where} (one of {', '.join(FEE_TYPES)})")
    return fee_type


def _multiplier(value: object, where: str) -> Fraction:
    """A positive, finite multiplier as the exact fraction its decimal text reads."""
    if isinstance(value, Fraction):
        exact = value
    elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
        exact = Fraction(str(value))
    else:
        raise ValueError(f"the fee multiplier {where} must be a finite number, not {value!r}")
    if exact <= 0:
        raise ValueError(f"the fee multiplier {where} must be positive, not {value!r}")
    return exact


@dataclass(frozen=True, slots=True)
class MarketFees:
    """One market's fees, resolved: its fee type and exact multiplier.

    ``taker`` and ``maker`` take Python ints and return whole cents, rounded up. The
    numerator and denominator of each fee's rate (0.07 * m and 0.0175 * m, in cents per
    ``C * p * (100 - p)``) are computed once here, so a fee is one product and one floor
    division. A ``quadratic`` market's maker rate is zero: its maker fee is always 0.
    """

    fee_type: str
    multiplier: Fraction
    _taker_num: int = field(init=False, repr=False, compare=False)
    _taker_den: int = field(init=False, repr=False, compare=False)
    _maker_num: int = field(init=False, repr=False, compare=False)
    _maker_den: int = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        _fee_type(self.fee_type, "of a market")
        multiplier = _multiplier(self.multiplier, "of a market")
        object.__setattr__(self, "multiplier", multiplier)
        taker = Fraction(7, 10_000) * multiplier
        maker = Fraction(175, 1_000_000) * multiplier
        if self.fee_type == "quadratic":
            maker = Fraction(0)
        object.__setattr__(self, "_taker_num", taker.numerator)
        object.__setattr__(self, "_taker_den", taker.denominator)
        object.__setattr__(self, "_maker_num", maker.numerator)
        object.__setattr__(self, "_maker_den", maker.denominator)

    def taker(self, contracts: int, price_cents: int) -> int:
        """The taker fee of ``contracts`` at ``price_cents``, in cents (rounded up)."""
        return _rounded_up(self._taker_num, contracts, price_cents, self._taker_den)

    def maker(self, contracts: int, price_cents: int) -> int:
        """The maker fee of ``contracts`` at ``price_cents``, in cents (0 on ``quadratic``)."""
        return _rounded_up(self._maker_num, contracts, price_cents, self._maker_den)


def _rounded_up(numerator: int, contracts: int, price_cents: int, denominator: int) -> int:
    """``numerator * C * p * (100 - p) / denominator`` cents, rounded up, in integers."""
    return -(-numerator * contracts * price_cents * (100 - price_cents) // denominator)


def _parse_series(entry: object) -> tuple[str, MarketFees]:
    """``SERIES:FEE_TYPE`` or ``SERIES:FEE_TYPE:MULTIPLIER`` as ``(series, fees)``."""
    if not isinstance(entry, str):
        raise ValueError(
            f"a series fee entry must be text SERIES:FEE_TYPE[:MULTIPLIER], not {entry!r}"
        )
    parts = [part.strip() for part in entry.split(":")]
    if len(parts) not in (2, 3) or not parts[0] or "-" in parts[0]:
        raise ValueError(
            f"malformed series fee entry {entry!r}: expected SERIES:FEE_TYPE[:MULTIPLIER] "
            "with a series name without '-'"
        )
    where = f"in series fee entry {entry!r}"
    multiplier = Fraction(1)
    if len(parts) == 3:
        try:
            number = float(parts[2])
        except ValueError:
            raise ValueError(f"the fee multiplier {where} is not a number") from None
        multiplier = _multiplier(number, where)
    return parts[0], MarketFees(_fee_type(parts[1], where), multiplier)


@dataclass(frozen=True, kw_only=True)
class FeeModel:
    """Fee settings: a default fee type and multiplier, and per-series overrides.

    ``series`` holds entries ``SERIES:FEE_TYPE`` (multiplier 1) or
    ``SERIES:FEE_TYPE:MULTIPLIER``; a series not named there pays the default. Everything is
    checked when the model is built: an unknown fee type, a multiplier that is not a
    positive finite number, a malformed entry or a series named twice raise ValueError.
    """

    fee_type: str = "quadratic_with_maker_fees"
    multiplier: float = 1.0
    series: tuple[str, ...] = ()
    _default: MarketFees = field(init=False, repr=False, compare=False)
    _by_series: dict[str, MarketFees] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.series, str):
            raise ValueError(f"series must be a sequence of entries, not the text {self.series!r}")
        default = MarketFees(
            _fee_type(self.fee_type, "(the default)"),
            _multiplier(self.multiplier, "(the default)"),
        )
        by_series: dict[str, MarketFees] = {}
        for entry in self.series:
            name, fees = _parse_series(entry)
            if name in by_series:
                raise ValueError(f"series {name!r} is named twice in the series fees")
            by_series[name] = fees
        object.__setattr__(self, "series", tuple(self.series))
        object.__setattr__(self, "_default", default)
        object.__setattr__(self, "_by_series", by_series)

    @classmethod
    def from_env(cls, config) -> FeeModel:
        """The fee model of an ``EnvConfig`` (its ``fee_type``, ``fee_multiplier``,
        ``series_fees``)."""
        return cls(
            fee_type=config.fee_type,
            multiplier=config.fee_multiplier,
            series=tuple(config.series_fees),
        )

    def for_market(self, ticker: str) -> MarketFees:
        """The fees of the market ``ticker``: its series' override, else the default."""
        return self._by_series.get(series_of(ticker), self._default)
