"""The train/validation/holdout split: by market, by hash; the holdout stable as data grows.

A market (ticker) is in the holdout when a hash of the salt and its ticker falls below
``holdout_fraction``. That decision depends on nothing else: a market keeps its side when
new sessions arrive, and every view of a market (one per session) lands on the same side,
so no market trains in one session and is evaluated in another. Of the other markets, one
validates when a second hash (:data:`VALIDATION_SALT` added to the salt) falls below
``validation_fraction``, and each kind of market validates at least a few of its markets
(:func:`validation_markets`). The realised fractions are the fractions on average over
markets, not exactly.

:func:`split_views` applies those rules to the selection table of every view (one row per
view, its statistics and ``passes_filters``) and gives the :class:`Split`: view keys by
side, plus the walk-forward views of the latest sessions. The whole split lives here; its
rules come in as any object with the fields of :class:`SplitRules` (the workflow's
``SplitConfig``, whose default tight-spread limit is computed from the environment's
order size, a layer above). The one line that tells a person what the split means for
selection (how many validation wins beat always-HOLD beyond noise) is the workflow's
``describe_split``: it needs ``wins_needed`` from the training layer, above this one.

A split the run cannot use is refused before anything trains: with ``needs`` (the sides
the run reads, :func:`needed_sides`), :func:`split_views` raises :class:`SplitTooSmall`
when one of them is empty, naming the side, what the store holds and what to add. On a
small store this is the usual case, not a corner: three sessions of six markets hold no
holdout market one time in four (each market is held out with probability
``holdout_fraction``), and training all three phases only to find no holdout to
evaluate or promote on would waste the run. Training is always needed; validation when
``validation_fraction`` is above 0 (0 means "train without validation"); the holdout
when the run evaluates or promotes. The walk-forward side is never required: it is empty
by design when only one session is left to train on, and the report says so.
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Protocol, Self

if TYPE_CHECKING:
    import pyarrow as pa

    from kalshi_pipeline.market.views import MarketSessionView

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
    (``training.evaluation.statistics.wins_needed``). This part can move a market between
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


class SplitRules(Protocol):
    """The fields :func:`split_views` reads (the workflow's ``SplitConfig`` has them)."""

    holdout_fraction: float
    validation_fraction: float
    salt: str
    walk_forward_sessions: int
    min_validation_per_kind: int
    tight_spread_cents: float


@dataclass(frozen=True, kw_only=True)
class Split:
    """The views that pass the filters, by key: training, validation and holdout
    (market-grouped: a market's views are all on one side), and the walk-forward views.

    The walk-forward views are every view of the latest sessions (by session id, the
    collector's order of recording): training and validation take their markets' views
    of the earlier sessions only, so the model is also judged on sessions recorded after
    every session it was trained on. The holdout is its markets' views of all sessions.

    ``views_versions`` pins, by session, the version of the views file the split was made
    from (:func:`kalshi_pipeline.market.views.views_footer`), when its views were read from
    files: every later read of the run checks it, so a session ingested again mid-run is
    refused, never mixed. Empty when the views were held in memory (they cannot change).
    """

    train: tuple[str, ...]
    holdout: tuple[str, ...]
    difficulty: Mapping[str, float]  # of every view in the split
    train_markets: int
    holdout_markets: int
    validation: tuple[str, ...] = ()
    validation_markets: int = 0
    validation_tight_markets: int = 0  # of them, those of tight spread (market_kinds)
    walk_forward: tuple[str, ...] = ()
    views_versions: Mapping[int, str] = field(default_factory=dict)

    def __setstate__(self, state: dict) -> None:
        # A split pickled before splits pinned views (an earlier run's output) pins none.
        self.__dict__.update({"views_versions": {}, **state})

    def difficulties(self, views: Sequence[MarketSessionView]) -> list[float]:
        """The difficulty of each of ``views``, in order (the curriculum's input)."""
        return [self.difficulty[v.key] for v in views]

    def to_json(self) -> dict:
        return {
            "train": list(self.train),
            "holdout": list(self.holdout),
            "difficulty": dict(self.difficulty),
            "train_markets": self.train_markets,
            "holdout_markets": self.holdout_markets,
            "validation": list(self.validation),
            "validation_markets": self.validation_markets,
            "validation_tight_markets": self.validation_tight_markets,
            "walk_forward": list(self.walk_forward),
            "views_versions": {str(k): v for k, v in self.views_versions.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        keys = ("train", "holdout", "validation", "walk_forward")
        counts = ("train_markets", "holdout_markets", "validation_markets")
        return cls(
            **{name: tuple(data[name]) for name in keys},
            **{name: int(data[name]) for name in counts},
            validation_tight_markets=int(data["validation_tight_markets"]),
            difficulty={str(k): float(v) for k, v in data["difficulty"].items()},
            views_versions={int(k): str(v) for k, v in data.get("views_versions", {}).items()},
        )


class SplitTooSmall(ValueError):
    """A side of the split the run needs is empty; raised before anything trains."""


def needed_sides(rules: SplitRules, *, evaluate: bool = True) -> frozenset[SplitName]:
    """The sides a run reads: training; validation unless ``validation_fraction`` is 0;
    the holdout if the run evaluates or promotes (the module docstring)."""
    sides = {SplitName.TRAIN}
    if rules.validation_fraction > 0:
        sides.add(SplitName.VALIDATION)
    if evaluate:
        sides.add(SplitName.HOLDOUT)
    return frozenset(sides)


def split_views(
    selection: pa.Table, rules: SplitRules, *, needs: Collection[SplitName] = ()
) -> Split:
    """Split the views that pass the filters by market: a market's views are all on one
    side, and its holdout side never changes as sessions arrive (the module docstring).
    A side of ``needs`` left empty raises :class:`SplitTooSmall`."""
    split = _split(selection, rules)
    for side in (SplitName.TRAIN, SplitName.VALIDATION, SplitName.HOLDOUT):
        if side in needs and not getattr(split, str(side)):
            raise SplitTooSmall(too_small(side, split, selection, rules))
    return split


def _split(selection: pa.Table, rules: SplitRules) -> Split:
    rows = [r for r in selection.to_pylist() if r["passes_filters"]]
    train_markets, holdout_markets = split_markets(
        (r["market_ticker"] for r in rows), rules.holdout_fraction, rules.salt
    )
    ordered = sorted(rows, key=lambda r: (r["session_id"], r["market_ticker"]))
    later = _walk_forward_sessions(rows, rules.walk_forward_sessions)
    kinds = market_kinds(
        (r for r in rows if r["session_id"] not in later), rules.tight_spread_cents
    )
    # Markets seen only in walk-forward sessions have no view to train or validate on.
    earlier = [t for t in train_markets if t in kinds]
    validating = validation_markets(
        earlier, rules.validation_fraction, rules.salt, kinds, rules.min_validation_per_kind,
    )  # fmt: skip
    held, checked = set(holdout_markets), set(validating)

    def sides(row: dict) -> set[SplitName]:
        ticker, forward = row["market_ticker"], row["session_id"] in later
        if ticker in held:
            return {SplitName.HOLDOUT, SplitName.WALK_FORWARD} if forward else {SplitName.HOLDOUT}
        if forward:
            return {SplitName.WALK_FORWARD}
        return {SplitName.VALIDATION if ticker in checked else SplitName.TRAIN}

    keys = {
        str(name): tuple(r["view_key"] for r in ordered if name in sides(r)) for name in SplitName
    }
    return Split(
        **keys,
        difficulty={r["view_key"]: r["difficulty"] for r in ordered},
        train_markets=len(earlier) - len(validating),
        holdout_markets=len(holdout_markets),
        validation_markets=len(validating),
        validation_tight_markets=sum(kinds[t] == MarketKind.TIGHT for t in validating),
    )


def _walk_forward_sessions(rows: Iterable[dict], count: int) -> set[int]:
    """The latest ``count`` sessions of ``rows``; none when no earlier session would be
    left to train on."""
    sessions = sorted({r["session_id"] for r in rows})
    return set(sessions[-count:]) if 0 < count < len(sessions) else set()


def market_kinds(rows: Iterable[dict], tight_spread_cents: float) -> dict[str, MarketKind]:
    """Each market of ``rows`` (views' statistics) by kind: ``TIGHT`` when the mean of its
    views' average spreads is under ``tight_spread_cents``, else ``WIDE`` (a NaN mean too;
    the filters keep such views out of the split)."""
    spreads: dict[str, list[float]] = {}
    for row in rows:
        spreads.setdefault(row["market_ticker"], []).append(row["avg_spread"])
    return {
        ticker: MarketKind.TIGHT
        if sum(values) / len(values) < tight_spread_cents
        else MarketKind.WIDE
        for ticker, values in spreads.items()
    }


_NOTHING_TRAINED = "nothing was trained"


def too_small(side: SplitName, split: Split, selection: pa.Table, rules: SplitRules) -> str:
    """One line: which side is empty, what the store holds, and what to add."""
    rows = [r for r in selection.to_pylist() if r["passes_filters"]]
    markets = len({r["market_ticker"] for r in rows})
    sessions = len({r["session_id"] for r in rows})
    held = (
        f"{markets} market{'s' * (markets != 1)} whose views pass the filters ({len(rows)} "
        f"of {selection.num_rows} views, in {sessions} session{'s' * (sessions != 1)})"
    )
    if not rows:
        return (
            f"none of the {selection.num_rows} views passes the filters: {_NOTHING_TRAINED} "
            "(add more or longer sessions, or loosen the filters)"
        )
    if side == SplitName.HOLDOUT and rules.holdout_fraction == 0:
        return (
            "the holdout fraction is 0, and evaluating and promoting a model need holdout "
            f"markets: {_NOTHING_TRAINED} (set holdout_fraction, --holdout-fraction, above 0)"
        )
    if side == SplitName.HOLDOUT:
        return (
            f"the split has no holdout market: none of the {held} falls in the holdout "
            f"(about {rules.holdout_fraction:.0%} of markets, chosen by a hash of the "
            f"ticker); {_NOTHING_TRAINED} (add sessions with more markets, or raise "
            "holdout_fraction, --holdout-fraction)"
        )
    if side == SplitName.VALIDATION:
        left = markets - split.holdout_markets
        return (
            f"the split has no validation market: of the {held}, {split.holdout_markets} "
            f"held out, and none of the other {left} validating (about "
            f"{rules.validation_fraction:.0%} of them); {_NOTHING_TRAINED} (add sessions "
            "with more markets, raise validation_fraction, --validation-fraction, or set it "
            "to 0 to train without validation)"
        )
    forward_only = markets - split.train_markets - split.validation_markets
    forward_only -= split.holdout_markets
    return (
        f"the split leaves no market to train on: of the {held}, {split.holdout_markets} "
        f"held out, {split.validation_markets} validating and {forward_only} only in the "
        f"walk-forward sessions; {_NOTHING_TRAINED} (add sessions or markets, "
        "or lower holdout_fraction, validation_fraction or walk_forward_sessions)"
    )
