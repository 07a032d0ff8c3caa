"""Champion and challenger: whether a new model replaces the one in production.

A new phase-3 model (the challenger) replaces the model in production (the champion) only
if it plays better on the *current* holdout markets, with confidence:

* both play every holdout view once, deterministically, with the challenger's seed, each
  in its own env config, its lineage's
  (:func:`kalshi_pipeline.training.evaluation.evaluate_policies`): a model trained to rest
  limit orders is judged resting them, a taker taking, so the comparison is between what
  each would do in production; the champion's rewards are scaled as the challenger's
  (``reward_scale``, which changes no action), so the two are in one unit;
* per market (a market seen in several sessions counts once: its mean episode reward),
  the challenger's reward minus the champion's;
* the 95% bootstrap interval of the mean of those differences (:func:`difference_interval`:
  the report's seeded BCa) must have its lower end above 0, over at least ``MIN_MARKETS``
  markets.

With no champion yet, the first one must beat always-HOLD the same way. Otherwise the
champion stays and the candidate is recorded as refused, with the interval and the number
of markets. An evaluation that cannot run (no holdout view, a challenger whose model file
is gone or of another feature layout) raises :class:`PromotionError` after recording the
candidate as failed: production never changes on a comparison that did not happen. A
champion that can no longer be loaded (its file deleted, damaged, or of another feature
layout) cannot be compared with, and would otherwise fail every later promotion: it is
recorded as ``lost`` (with why, and the candidate that found it) and the challenger is
judged against always-HOLD, as if there were no champion. Every candidate
goes into the model history (:mod:`kalshi_pipeline.training.registry`), and the decision
holds the history's lock from reading the champion to writing the result, so a second
promotion waits, then compares with whatever won. docs/training.md, Promotion.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import Self

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm

from kalshi_pipeline.env.trading_env import EnvConfig
from kalshi_pipeline.market.split import SplitName
from kalshi_pipeline.market.views import MarketSessionView
from kalshi_pipeline.training.evaluation import (
    CONFIDENCE,
    PolicyFactory,
    bootstrap_interval,
    evaluate_policies,
    hold_policy,
    model_policy,
    per_market_table,
)
from kalshi_pipeline.training.lineage import read_lineage
from kalshi_pipeline.training.model_loading import load_checked_model
from kalshi_pipeline.training.registry import (
    PromotionError,
    Registry,
    RegistryRecord,
    RegistryStatus,
    active_records,
    champion_of,
    next_id,
    now,
)

ALWAYS_HOLD = "always-HOLD"  # what the first champion is compared with
# One market's difference has no spread to bootstrap: an interval needs at least two.
MIN_MARKETS = 2


class Outcome(StrEnum):
    """What one promotion did; the words are the candidate's registry status, or
    ``UNCHANGED`` when the challenger already is the champion."""

    PROMOTED = RegistryStatus.ACTIVE.value
    REFUSED = RegistryStatus.REFUSED.value
    UNCHANGED = "unchanged"


@dataclass(frozen=True, kw_only=True)
class Comparison:
    """Challenger minus champion on the holdout, per market, and the interval of the mean."""

    against: str  # the champion's model path, or ALWAYS_HOLD
    markets: int
    mean_difference: float
    interval: tuple[float, float]  # CONFIDENCE bootstrap interval (difference_interval)

    @property
    def wins(self) -> bool:
        return self.markets >= MIN_MARKETS and self.interval[0] > 0

    def reason(self) -> str:
        low, high = self.interval
        said = (
            f"challenger minus {self.against} over {self.markets} holdout markets: mean "
            f"{self.mean_difference:+.4f}, {CONFIDENCE:.0%} interval [{low:+.4f}, {high:+.4f}]"
        )
        if self.markets < MIN_MARKETS:
            return f"{said}; too few markets to judge (at least {MIN_MARKETS})"
        if self.wins:
            return f"{said}; lower end above 0: promoted"
        return f"{said}; lower end not above 0: refused"

    def to_json(self) -> dict:
        return {
            "against": self.against,
            "markets": self.markets,
            "mean_difference": self.mean_difference,
            "interval": list(self.interval),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        low, high = data["interval"]
        return cls(
            against=data["against"],
            markets=data["markets"],
            mean_difference=data["mean_difference"],
            interval=(low, high),
        )


@dataclass(frozen=True, kw_only=True)
class Decision:
    """What one promotion did: the candidate's record and the champion after it."""

    status: Outcome
    record: RegistryRecord  # the candidate's (when UNCHANGED, the champion's)
    champion: RegistryRecord | None
    comparison: Comparison | None  # None when UNCHANGED
    history: tuple[RegistryRecord, ...] = ()  # every record after the decision
    lost: RegistryRecord | None = None  # a champion that no longer loaded, now marked lost

    @property
    def promoted(self) -> bool:
        return self.status == Outcome.PROMOTED

    def to_json(self) -> dict:
        return {
            "status": self.status.value,
            "record": self.record.to_json(),
            "champion": self.champion.to_json() if self.champion else None,
            "comparison": self.comparison.to_json() if self.comparison else None,
            "history": [r.to_json() for r in self.history],
            "lost": self.lost.to_json() if self.lost else None,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        champion, comparison = data.get("champion"), data.get("comparison")
        return cls(
            status=Outcome(data["status"]),
            record=RegistryRecord.from_json(data["record"]),
            champion=RegistryRecord.from_json(champion) if champion else None,
            comparison=Comparison.from_json(comparison) if comparison else None,
            history=tuple(RegistryRecord.from_json(r) for r in data.get("history", [])),
            lost=RegistryRecord.from_json(data["lost"]) if data.get("lost") else None,
        )


# -- the statistics ------------------------------------------------------------------------
def difference_interval(differences: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """The 95% bootstrap interval of the mean of ``differences``: the report's own
    (:func:`kalshi_pipeline.training.evaluation.bootstrap_interval`: scipy's BCa, seeded,
    zero-width on constant data), so the report and the promotion never disagree."""
    return bootstrap_interval(np.asarray(differences, dtype=np.float64), seed)


def compare(
    challenger: PolicyFactory,
    champion: PolicyFactory,
    holdout: Sequence[MarketSessionView],
    env: EnvConfig | None,
    seed: int,
    against: str = ALWAYS_HOLD,
    *,
    champion_env: EnvConfig | None = None,
) -> Comparison:
    """Play both on every holdout view and compare them market by market: the challenger
    in ``env``, the champion in ``champion_env`` (``None``: ``env`` too) with ``env``'s
    reward scale, so that both rewards are in one unit (the scale changes no action)."""
    if not holdout:
        raise PromotionError("no holdout view to compare the models on")
    env = env or EnvConfig()
    own = replace(champion_env or env, reward_scale=env.reward_scale)
    views = {SplitName.HOLDOUT: holdout}
    episodes = evaluate_policies({"challenger": challenger}, views, env, seed)
    episodes += evaluate_policies({"champion": champion}, views, own, seed)
    by_policy: dict[str, dict[str, float]] = {"challenger": {}, "champion": {}}
    for row in per_market_table(episodes):
        by_policy[row.policy][row.market_ticker] = row.mean_reward
    markets = sorted(by_policy["challenger"])
    differences = [by_policy["challenger"][m] - by_policy["champion"][m] for m in markets]
    return Comparison(
        against=against,
        markets=len(markets),
        mean_difference=float(np.mean(differences)),
        interval=difference_interval(differences, seed),
    )


# -- models ---------------------------------------------------------------------------------
def candidate_record(model_path: Path, profile: str | None = None, run: str = "") -> RegistryRecord:
    """A new history record for the model at ``model_path``: what produced it, and when."""
    at = now()
    try:
        lineage = read_lineage(model_path)
    except (OSError, ValueError, KeyError, TypeError):
        # A model without a readable lineage is still recorded; loading it then fails.
        return RegistryRecord(model_path=str(model_path), profile=profile, run=run, at=at, views=0)
    return RegistryRecord(
        model_path=str(model_path),
        profile=profile,
        run=run,
        at=at,
        sessions=lineage.sessions,
        views=len(lineage.views),
        seed=lineage.seed,
        algorithm=lineage.algorithm,
        timesteps=lineage.timesteps,
    )


def champion_problems(records: Sequence[RegistryRecord], *, files: bool = True) -> list[str]:
    """Why the production model is not a tested one (empty: it is, or there is none).

    A champion must be the only active record, have won its comparison (an interval
    whose lower end is above 0 over at least ``MIN_MARKETS`` markets) and, with
    ``files``, still exist (``models`` says that one as :func:`champion_warning`).
    """
    active = active_records(records)
    if not active:
        return []
    problems = []
    if len(active) > 1:
        problems.append(f"{len(active)} active models (ids {[r.id for r in active]})")
    champion = active[-1]
    # Shown as the file has it: a list, [nan, nan] when there is none.
    interval = list(champion.interval) if champion.interval else [float("nan")] * 2
    if not (interval[0] > 0 and (champion.markets or 0) >= MIN_MARKETS):
        problems.append(
            f"champion {champion.id} ({champion.model_path}) has no winning "
            f"comparison on record (interval {interval}, {champion.markets} markets)"
        )
    if files and not Path(champion.model_path).is_file():
        problems.append(f"champion model {champion.model_path} is missing")
    return problems


# -- the decision ---------------------------------------------------------------------------
def promote(
    registry: Registry,
    model_path: Path,
    holdout: Sequence[MarketSessionView],
    *,
    profile: str | None = None,
    run: str = "",
) -> Decision:
    """Compare the model at ``model_path`` with the champion (or always-HOLD) on
    ``holdout``; promote it if it wins, else record it as refused.

    Both play with the challenger's seed, each in its own env config (its lineage's: the
    execution mode it was trained for); always-HOLD in the challenger's. Raises
    :class:`PromotionError` if the comparison cannot run, after recording the candidate
    as failed.
    """
    model_path = Path(model_path)
    with registry.locked():
        records = registry.read()
        champion = champion_of(records)
        if champion is not None and champion.model_path == str(model_path):
            return Decision(
                status=Outcome.UNCHANGED, record=champion, champion=champion,
                comparison=None, history=tuple(records),
            )  # fmt: skip
        record = replace(candidate_record(model_path, profile, run), id=next_id(records))
        found = _loaded_champion(records, champion, record)
        records, champion = found.records, found.record
        against = champion.model_path if champion else ALWAYS_HOLD
        try:
            comparison = _challenge(model_path, found, holdout, against)
        except Exception as exc:  # whatever stopped it, the candidate is on record as failed
            failed = replace(
                record, status=RegistryStatus.FAILED, against=against,
                reason=f"not compared: {exc}",
            )  # fmt: skip
            registry.write([*records, failed])
            if isinstance(exc, PromotionError):
                raise
            raise PromotionError(f"model {model_path}: the comparison failed: {exc}") from exc
        record = _judged(record, comparison)
        records = [*_retired(records, champion, record), record]
        registry.write(records)
    return Decision(
        status=Outcome(record.status), record=record, champion=champion_of(records),
        comparison=comparison, history=tuple(records), lost=found.lost,
    )  # fmt: skip


@dataclass(frozen=True)
class _Champion:
    """The champion as a promotion finds it: its record and loaded model, or the record
    it was marked ``lost`` with when it no longer loads."""

    records: list[RegistryRecord]  # the history, the lost champion marked
    record: RegistryRecord | None = None  # None: no champion (or it was lost)
    model: BaseAlgorithm | None = None
    env: EnvConfig | None = None  # the champion's own, from its lineage
    lost: RegistryRecord | None = None


def _loaded_champion(
    records: list[RegistryRecord], champion: RegistryRecord | None, candidate: RegistryRecord
) -> _Champion:
    """The champion and its loaded model; one that no longer loads is marked ``lost`` in
    the records (found by ``candidate``) and is absent from then on."""
    if champion is None:
        return _Champion(records)
    try:
        model = load_checked_model(Path(champion.model_path))
        return _Champion(records, champion, model, _own_env(Path(champion.model_path)))
    except PromotionError as exc:
        lost = replace(
            champion, status=RegistryStatus.LOST, retired_at=candidate.at,
            retired_by=candidate.id, reason=f"{champion.reason or 'champion'}; lost: {exc}",
        )  # fmt: skip
        return _Champion([lost if r is champion else r for r in records], lost=lost)


def _own_env(model_path: Path) -> EnvConfig:
    """The env config a model was trained with (its lineage's), or PromotionError."""
    try:
        return read_lineage(model_path).env_config()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PromotionError(f"model {model_path}: its env config is unreadable: {exc}") from exc


def _challenge(
    model_path: Path, found: _Champion, holdout: Sequence[MarketSessionView], against: str
) -> Comparison:
    """The challenger at ``model_path`` against the champion ``found`` (always-HOLD, in
    the challenger's env config, if it has no model)."""
    challenger = load_checked_model(model_path)
    lineage = read_lineage(model_path)
    env = _own_env(model_path)
    held = found.model
    if not holdout:
        raise PromotionError(
            f"no holdout view to compare model {model_path} with {against} on "
            "(more sessions, or a larger holdout fraction)"
        )
    if held is not None:
        champion_policy: PolicyFactory = lambda seed: model_policy(held)  # noqa: E731
    else:
        champion_policy = lambda seed: hold_policy()  # noqa: E731
    return compare(
        lambda seed: model_policy(challenger), champion_policy, holdout, env,
        lineage.seed, against, champion_env=found.env,
    )  # fmt: skip


def _judged(record: RegistryRecord, comparison: Comparison) -> RegistryRecord:
    """The candidate's record with its comparison: active if it won, else refused."""
    return replace(
        record,
        status=RegistryStatus.ACTIVE if comparison.wins else RegistryStatus.REFUSED,
        against=comparison.against,
        markets=comparison.markets,
        mean_difference=comparison.mean_difference,
        interval=comparison.interval,
        reason=comparison.reason(),
    )


def _retired(
    records: Sequence[RegistryRecord], champion: RegistryRecord | None, judged: RegistryRecord
) -> list[RegistryRecord]:
    """``records`` with ``champion`` retired if the ``judged`` challenger won."""
    if judged.status != RegistryStatus.ACTIVE or champion is None:
        return list(records)
    return [
        replace(r, status=RegistryStatus.RETIRED, retired_at=judged.at, retired_by=judged.id)
        if r is champion
        else r
        for r in records
    ]
