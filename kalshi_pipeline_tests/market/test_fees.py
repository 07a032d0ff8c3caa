"""Kalshi's taker fee (``kalshi_pipeline.market.fees``), the one formula that the features
show and the environment charges: ``ceil(0.07 * C * P * (1 - P))`` dollars, in cents."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from kalshi_pipeline.market.fees import taker_fee_cents


def exact_fee_cents(contracts: int, price_cents: int) -> int:
    dollars = Fraction(7, 100) * contracts * Fraction(price_cents, 100)
    return math.ceil(dollars * Fraction(100 - price_cents, 100) * 100)


@pytest.mark.parametrize(
    ("contracts", "price_cents", "fee_cents"),
    [
        (10, 50, 18),  # 0.07 * 10 * 0.25 = $0.175 -> 18c
        (1, 50, 2),  # $0.0175 -> 2c
        (100, 50, 175),  # $1.75 exactly: no rounding up to 176
        (1, 10, 1),  # $0.0063 -> 1c
        (3, 1, 1),  # 0.07 * 3 * 0.01 * 0.99 = $0.002079 -> 1c
        (10, 97, 3),  # 0.07 * 10 * 0.97 * 0.03 = $0.02037 -> 3c
        (1, 99, 1),  # $0.000693 -> 1c: a fill is never free
        (10, 40, 17),  # $0.168 -> 17c
        (10, 60, 17),  # symmetric in P and 1 - P
        (1, 100, 0),  # P = 1: nothing to pay
        (0, 50, 0),
    ],
)
def test_the_fee_is_kalshis_formula_rounded_up_to_the_cent(contracts, price_cents, fee_cents):
    assert taker_fee_cents(contracts, price_cents) == fee_cents


def test_python_ints_give_a_python_int_the_environments_cash_stays_exact():
    fee = taker_fee_cents(10**6, 50)
    assert type(fee) is int
    assert fee == exact_fee_cents(10**6, 50)


@pytest.mark.parametrize("contracts", [1, 3, 10, 100, 1000])
def test_arrays_are_charged_element_wise_exactly(contracts):
    prices = np.arange(1, 101)
    expected = [exact_fee_cents(contracts, int(p)) for p in prices]
    assert taker_fee_cents(contracts, prices).tolist() == expected
    assert taker_fee_cents(np.full(100, contracts), prices).tolist() == expected


def test_a_narrow_integer_array_does_not_overflow():
    # 7 * 10^6 * 50 * 50 is past int32: the array is widened before the product.
    prices = np.array([50, 10], dtype=np.int32)
    contracts = np.array([10**6, 10**6], dtype=np.int32)
    fees = taker_fee_cents(contracts, prices)
    assert fees.tolist() == [exact_fee_cents(10**6, 50), exact_fee_cents(10**6, 10)]
