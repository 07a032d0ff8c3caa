"""Kalshi's fees per market (``kalshi_pipeline.env.fees``).

Expected numbers are Kalshi's published examples, worked by hand: the taker fee is
``ceil(0.07 * m * C * P(1 - P))`` dollars and the maker fee ``ceil(0.0175 * m * C * P(1 -
P))`` dollars, rounded up to the cent.
"""

from __future__ import annotations

import dataclasses
from fractions import Fraction

import pytest

from kalshi_pipeline.config_fields import CHOICES
from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.env.fees import FEE_TYPES, FeeModel, MarketFees, series_of
from kalshi_pipeline.market.fees import taker_fee_cents


def test_series_is_the_ticker_up_to_its_first_dash():
    assert series_of("KXBTC-25JAN01-B100") == "KXBTC"
    assert series_of("INXD") == "INXD"
    assert series_of("-X") == ""


def test_kalshi_published_examples():
    fees = FeeModel().for_market("KXBTC-25JAN01")
    # 0.07 * 1 * 0.5 * 0.5 = 0.0175 dollars -> 2 cents; 100 contracts: exactly 1.75 dollars.
    assert fees.taker(1, 50) == 2
    assert fees.taker(100, 50) == 175
    # 0.0175 * 100 * 0.25 = 0.4375 dollars -> 44 cents; one contract 0.004375 -> 1 cent.
    assert fees.maker(100, 50) == 44
    assert fees.maker(1, 50) == 1


def test_taker_fee_with_multiplier_one_is_the_market_fee_everywhere():
    fees = MarketFees("quadratic_with_maker_fees", Fraction(1))
    for price in range(1, 100):
        for contracts in range(1, 1001):
            assert fees.taker(contracts, price) == taker_fee_cents(contracts, price)


def test_fees_are_python_ints():
    fees = FeeModel().for_market("X")
    assert type(fees.taker(3, 40)) is int
    assert type(fees.maker(3, 40)) is int


def test_quadratic_charges_no_maker_fee_but_the_same_taker_fee():
    fees = FeeModel(fee_type="quadratic").for_market("X")
    assert fees.maker(100, 50) == 0
    assert fees.taker(100, 50) == 175


def test_multiplier_is_exact():
    # 0.1 as a float is a hair above 1/10: 0.07 * 0.1 * 1000 * 0.25 = 1.75 dollars exactly,
    # which a float multiplier would round up to 176 cents.
    fees = FeeModel(multiplier=0.1).for_market("X")
    assert fees.multiplier == Fraction(1, 10)
    assert fees.taker(1000, 50) == 175
    # maker: 0.0175 * 0.1 * 4000 * 0.25 = 1.75 dollars exactly.
    assert fees.maker(4000, 50) == 175
    # 0.07 * 0.5 * 10 * 0.3 * 0.7 = 0.0735 dollars -> 8 cents.
    assert FeeModel(multiplier=0.5).for_market("X").taker(10, 30) == 8


def test_series_override_applies_to_its_series_only():
    model = FeeModel(series=("KXBTC:quadratic:0.5", "INX:quadratic_with_maker_fees:2"))
    btc = model.for_market("KXBTC-25JAN01-B100")
    assert (btc.fee_type, btc.multiplier) == ("quadratic", Fraction(1, 2))
    assert btc.taker(100, 50) == 88  # 0.875 dollars, rounded up
    assert btc.maker(100, 50) == 0
    inx = model.for_market("INX-25")
    assert inx.taker(100, 50) == 350
    assert inx.maker(100, 50) == 88  # 0.875 dollars
    other = model.for_market("KXBTCD-25JAN01")  # a series sharing a prefix is another series
    assert (other.fee_type, other.multiplier) == ("quadratic_with_maker_fees", 1)
    assert other.maker(100, 50) == 44


def test_series_entry_without_multiplier_uses_one_not_the_default():
    model = FeeModel(multiplier=3.0, series=("KXBTC:quadratic",))
    assert model.for_market("KXBTC-1").multiplier == 1
    assert model.for_market("OTHER-1").multiplier == 3


def test_from_env_reads_the_config():
    config = EnvConfig(
        fee_type="quadratic", fee_multiplier=0.25, series_fees=("A:quadratic_with_maker_fees",)
    )
    model = FeeModel.from_env(config)
    assert model == FeeModel(
        fee_type="quadratic", multiplier=0.25, series=("A:quadratic_with_maker_fees",)
    )
    assert model.for_market("A-1").maker(100, 50) == 44
    assert model.for_market("B-1").maker(100, 50) == 0
    assert model.for_market("B-1").multiplier == Fraction(1, 4)


def test_fee_types_are_the_env_configs_choices():
    (field,) = [f for f in dataclasses.fields(EnvConfig) if f.name == "fee_type"]
    assert field.metadata[CHOICES] == FEE_TYPES


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"fee_type": "flat"}, "unknown fee type 'flat' \\(the default\\)"),
        ({"multiplier": 0.0}, "must be positive"),
        ({"multiplier": -1.0}, "must be positive"),
        ({"multiplier": float("nan")}, "finite"),
        ({"multiplier": float("inf")}, "finite"),
        ({"multiplier": True}, "finite number"),
        ({"series": ("KXBTC:flat",)}, "unknown fee type 'flat' in series fee entry 'KXBTC:flat'"),
        ({"series": ("KXBTC",)}, "malformed series fee entry 'KXBTC'"),
        ({"series": ("KXBTC:quadratic:1:2",)}, "malformed series fee entry"),
        ({"series": (":quadratic",)}, "malformed series fee entry"),
        ({"series": ("KXBTC-25:quadratic",)}, "without '-'"),
        ({"series": ("KXBTC:quadratic:x",)}, "'KXBTC:quadratic:x' is not a number"),
        ({"series": ("KXBTC:quadratic:0",)}, "must be positive"),
        ({"series": ("KXBTC:quadratic:nan",)}, "finite"),
        ({"series": ("A:quadratic", "A:quadratic:2")}, "series 'A' is named twice"),
        ({"series": "A:quadratic"}, "sequence of entries"),
        ({"series": (3,)}, "must be text"),
    ],
)
def test_bad_settings_raise_naming_the_problem(kwargs, message):
    with pytest.raises(ValueError, match=message):
        FeeModel(**kwargs)


def test_market_fees_check_their_own_fields():
    with pytest.raises(ValueError, match="unknown fee type"):
        MarketFees("flat", Fraction(1))
    with pytest.raises(ValueError, match="positive"):
        MarketFees("quadratic", Fraction(0))
