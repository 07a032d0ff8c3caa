"""Kalshi's taker fee: the one place its formula lives.

The fee is ``ceil(0.07 * C * P * (1 - P))`` dollars for C contracts at P dollars, rounded
up to the cent. It sits in ``market`` because both layers need it: the features show
the fee of one contract at the ask, and the environment (which may import ``market``, not
the other way round) charges it on every fill.
"""

from __future__ import annotations

import numpy as np


def taker_fee_cents(contracts, price_cents):
    """Kalshi's taker fee for ``contracts`` at ``price_cents``, in whole cents.

    Exact integer arithmetic: 0.07 * C * P(1 - P) dollars = 7 * C * p * (100 - p) / 10^4
    cents for a price of p cents, and ``-(-n // d)`` rounds up without floats (1 contract at
    50c pays 2c; 100 contracts at 50c exactly 175c, not 176).

    Two Python ints give a Python int, with no numpy on the way: the environment calls
    this once or more per fill and keeps its cash in plain ints. Anything else (arrays,
    numpy scalars, lists) is taken as int64, element-wise, so a narrower integer type can
    not overflow.
    """
    if type(contracts) is not int or type(price_cents) is not int:
        contracts = np.asarray(contracts, dtype=np.int64)
        price_cents = np.asarray(price_cents, dtype=np.int64)
    return -(-7 * contracts * price_cents * (100 - price_cents) // 10_000)
