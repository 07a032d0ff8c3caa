"""The train/validation/holdout split: by market, by hash, stable as data grows.

A market (ticker) is in the holdout when a hash of the salt and its ticker falls below
``holdout_fraction``; of the other markets, one validates when a second hash
(:data:`VALIDATION_SALT` added to the salt) falls below ``validation_fraction``. The
decision depends on nothing else: a market keeps its side when new sessions arrive, and
every view of a market (one per session) lands on the same side, so no market trains in
one session and is evaluated in another. The realised fractions are the fractions on
average over markets, not exactly.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable

DEFAULT_SALT = "kalshi-pipeline-split-v1"


def holdout_score(ticker: str, salt: str = DEFAULT_SALT) -> float:
    """A uniform number in [0, 1) fixed by the salt and the ticker."""
    digest = hashlib.sha256(f"{salt}\0{ticker}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def is_holdout(ticker: str, holdout_fraction: float, salt: str = DEFAULT_SALT) -> bool:
    return holdout_score(ticker, salt) < holdout_fraction


def split_markets(
    tickers: Iterable[str], holdout_fraction: float, salt: str = DEFAULT_SALT
) -> tuple[list[str], list[str]]:
    """(train, holdout) tickers, each sorted."""
    unique = sorted(set(tickers))
    holdout = [t for t in unique if is_holdout(t, holdout_fraction, salt)]
    chosen = set(holdout)
    return [t for t in unique if t not in chosen], holdout


VALIDATION_SALT = "\0validation"


def validation_markets(
    tickers: Iterable[str], validation_fraction: float, salt: str = DEFAULT_SALT
) -> list[str]:
    """The markets of ``tickers`` (the non-holdout ones) that validate, sorted.

    A hash independent of the holdout's decides, so the validation markets do not move
    when the holdout fraction changes, and a market keeps its side as data grows.
    """
    return sorted(
        t for t in set(tickers) if holdout_score(t, salt + VALIDATION_SALT) < validation_fraction
    )
