"""The train/validation/holdout split: by market, by hash; the holdout stable as data grows.

A market (ticker) is in the holdout when a hash of the salt and its ticker falls below
``holdout_fraction``. That decision depends on nothing else: a market keeps its side when
new sessions arrive, and every view of a market (one per session) lands on the same side,
so no market trains in one session and is evaluated in another. Of the other markets, one
validates when a second hash (:data:`VALIDATION_SALT` added to the salt) falls below
``validation_fraction``, and each kind of market validates at least a few of its markets
(:func:`validation_markets`). The realised fractions are the fractions on average over
markets, not exactly.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Iterable, Mapping
from enum import StrEnum

DEFAULT_SALT = "kalshi-pipeline-split-v1"


class SplitName(StrEnum):
    """The sides of the split; a view is on one or two of them (a holdout market's view
    of a walk-forward session is on both)."""

    TRAIN = "train"
    VALIDATION = "validation"
    HOLDOUT = "holdout"
    WALK_FORWARD = "walk_forward"


class MarketKind(StrEnum):
    """A market by the mean of its views' average spreads: ``TIGHT`` under the split's
    ``tight_spread_cents`` (liquid enough that crossing the spread costs less than the
    round trip's fees), else ``WIDE``."""

    TIGHT = "tight"
    WIDE = "wide"


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
    tickers: Iterable[str],
    validation_fraction: float,
    salt: str = DEFAULT_SALT,
    kinds: Mapping[str, str] | None = None,
    min_per_kind: int = 0,
) -> list[str]:
    """The markets of ``tickers`` (the non-holdout ones) that validate, sorted.

    A hash independent of the holdout's decides: by it alone, a market keeps its side as
    data grows and whatever the holdout fraction.

    With ``kinds`` (ticker -> its kind; a ticker not in it is of a kind of its own with
    the others missing), every kind also validates at least ``min_per_kind`` of its
    markets, those of lowest hash, but the minimum never takes more than half of a kind
    (the hash's markets validate in any case): the hash alone can leave a kind with one
    or two validation markets (on a small store, two of eleven tight-spread markets), and
    selection cannot see beyond noise a model that does well on one kind only
    (``wins_needed`` in ``training/evaluation.py``). This part can move a market between
    training and validation as markets of its kind arrive, as it changes kind, or with
    the holdout fraction (never into or out of the holdout); on a store with enough
    markets of every kind the fraction alone decides. A fraction of 0 validates nothing.
    """
    unique = set(tickers)
    score = {t: holdout_score(t, salt + VALIDATION_SALT) for t in unique}
    chosen = {t for t in unique if score[t] < validation_fraction}
    if kinds is not None and min_per_kind > 0 and validation_fraction > 0:
        by_kind: dict[str, list[str]] = defaultdict(list)
        for ticker in unique:
            by_kind[kinds.get(ticker, "")].append(ticker)
        for members in by_kind.values():
            members.sort(key=lambda t: (score[t], t))
            chosen.update(members[: min(min_per_kind, len(members) // 2)])
    return sorted(chosen)
