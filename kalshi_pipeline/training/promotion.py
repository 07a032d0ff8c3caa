"""Champion and challenger: which model is in production, and the history of every candidate.

A new phase-3 model (the challenger) replaces the model in production (the champion) only
if it plays better on the *current* holdout markets, with confidence:

* both play every holdout view once, deterministically, with the challenger's env config
  and seed (:func:`kalshi_pipeline.training.evaluation.evaluate_policies`);
* per market (a market seen in several sessions counts once: its mean episode reward),
  the challenger's reward minus the champion's;
* the 95% bootstrap interval of the mean of those differences (:func:`difference_interval`:
  the report's seeded BCa) must have its lower end above 0, over at least ``MIN_MARKETS``
  markets.

With no champion yet, the first one must beat always-HOLD the same way. Otherwise the
champion stays and the candidate is recorded as refused, with the interval and the number
of markets. An evaluation that cannot run (no holdout view, a model file that is gone or
of another feature layout) raises :class:`PromotionError` after recording the candidate
as failed: production never changes on a comparison that did not happen.

The history lives in one JSON file (``artifacts/models/registry.json`` in the pipeline
home), like the collector's ``rl_models`` table: one record per candidate with its model
path, a lineage summary (sessions, number of views, profile, seed), when, its status
(``active``, ``retired``, ``refused``, ``failed``), the reason and the interval. Runs may
overlap (the schedule and the retrain sensor), so a decision holds an exclusive ``fcntl``
lock on ``registry.json.lock`` from reading the champion to writing the result (a second
promotion waits, then compares with whatever won), and the file is replaced atomically
(readers never see half a file).
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:
    from kalshi_pipeline.env.trading_env import EnvConfig
    from kalshi_pipeline.market.views import MarketSessionView
    from kalshi_pipeline.training.evaluation import Policy

# Reading and showing the history (``kalshi-pipeline models``) needs none of the models'
# machinery: torch, SB3 and the env are imported by the functions that play models.

REGISTRY_FILE = "registry.json"
ACTIVE, RETIRED, REFUSED, FAILED = "active", "retired", "refused", "failed"
HOLD = "always-HOLD"  # what the first champion is compared with
CONFIDENCE = 0.95  # of the interval (that of the report's bootstrap_interval)
# One market's difference has no spread to bootstrap: an interval needs at least two.
MIN_MARKETS = 2

PolicyFactory = Callable[[int], "Policy"]


class PromotionError(RuntimeError):
    """The comparison could not run: no holdout view, or a model that cannot be played."""


@dataclass(frozen=True)
class Comparison:
    """Challenger minus champion on the holdout, per market, and the interval of the mean."""

    against: str  # the champion's model path, or HOLD
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


@dataclass(frozen=True)
class Decision:
    """What one promotion did: the candidate's record and the champion after it."""

    status: str  # ACTIVE (promoted), REFUSED, or "unchanged" (already the champion)
    record: dict
    champion: dict | None
    comparison: Comparison | None
    history: list[dict] = field(default_factory=list)

    @property
    def promoted(self) -> bool:
        return self.status == ACTIVE


# -- the statistics ------------------------------------------------------------------------
def difference_interval(differences: Sequence[float], seed: int = 0) -> tuple[float, float]:
    """The 95% bootstrap interval of the mean of ``differences``: the report's own
    (:func:`kalshi_pipeline.training.evaluation.bootstrap_interval`: scipy's BCa, seeded,
    zero-width on constant data), so the report and the promotion never disagree."""
    from kalshi_pipeline.training.evaluation import bootstrap_interval

    return bootstrap_interval(np.asarray(differences, dtype=np.float64), seed)


def compare(
    challenger: PolicyFactory,
    champion: PolicyFactory,
    holdout: Sequence[MarketSessionView],
    env: EnvConfig | None,
    seed: int,
    against: str = HOLD,
) -> Comparison:
    """Play both on every holdout view and compare them market by market."""
    from kalshi_pipeline.training.evaluation import evaluate_policies, per_market_table

    if not holdout:
        raise PromotionError("no holdout view to compare the models on")
    episodes = evaluate_policies(
        {"challenger": challenger, "champion": champion}, {"holdout": holdout}, env, seed
    )
    by_policy: dict[str, dict[str, float]] = {"challenger": {}, "champion": {}}
    for row in per_market_table(episodes):
        by_policy[row["policy"]][row["market_ticker"]] = row["mean_reward"]
    markets = sorted(by_policy["challenger"])
    differences = [by_policy["challenger"][m] - by_policy["champion"][m] for m in markets]
    interval = difference_interval(differences, seed)
    return Comparison(against, len(markets), float(np.mean(differences)), interval)


# -- models ---------------------------------------------------------------------------------
def load_model(model_path: Path):
    """The SB3 model at ``model_path`` (with its lineage beside it), or PromotionError."""
    from kalshi_pipeline.market.features import FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION
    from kalshi_pipeline.training.phases import ALGORITHM_CLASSES, LINEAGE_FILE

    model_path = Path(model_path)
    if not model_path.is_file() or not (model_path.parent / LINEAGE_FILE).is_file():
        raise PromotionError(f"model {model_path}: the file or its {LINEAGE_FILE} is missing")
    lineage = _lineage(model_path)
    layout = (lineage["feature_layout"], lineage["feature_layout_version"])
    if layout != (FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION):
        raise PromotionError(
            f"model {model_path} was trained on feature layout {layout[0]} v{layout[1]}, and "
            f"the views have {FEATURE_LAYOUT} v{FEATURE_LAYOUT_VERSION}"
        )
    try:
        return ALGORITHM_CLASSES[lineage["algorithm"]].load(model_path, device="cpu")
    except Exception as exc:
        raise PromotionError(f"model {model_path} does not load: {exc}") from exc


def candidate_record(model_path: Path, profile: str | None = None, run: str = "") -> dict:
    """A new history record for the model at ``model_path``: what produced it, and when."""
    record = {"model_path": str(model_path), "profile": profile, "run": run, "at": _now()}
    try:
        lineage = _lineage(model_path)
    except (OSError, ValueError):
        return {**record, "sessions": [], "views": 0, "seed": None, "algorithm": None}
    return {
        **record,
        "sessions": lineage.get("sessions", []),
        "views": len(lineage.get("views", [])),
        "seed": lineage.get("seed"),
        "algorithm": lineage.get("algorithm"),
        "timesteps": lineage.get("timesteps"),
    }


# -- the history ----------------------------------------------------------------------------
class Registry:
    """The model history at ``path`` (a JSON file), read and written under one lock."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> list[dict]:
        """Every record, oldest first (none if the file does not exist yet)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        try:
            return json.loads(text)["models"]
        except (ValueError, KeyError, TypeError) as exc:
            raise PromotionError(f"the model history {self.path} is unreadable: {exc}") from exc

    def champion(self) -> dict | None:
        return champion_of(self.read())

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold the registry's exclusive lock (other processes wait)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_name(self.path.name + ".lock"), "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(lock, fcntl.LOCK_UN)

    def write(self, records: list[dict]) -> None:
        """Replace the file with ``records`` atomically (call while holding the lock)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        with open(tmp, "w") as fh:
            json.dump({"models": records}, fh, indent=1, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def append(self, record: dict) -> dict:
        """Add ``record`` with the next id, under the lock; returns it with its id."""
        with self.locked():
            records = self.read()
            record = {**record, "id": _next_id(records)}
            self.write([*records, record])
        return record


def champion_of(records: Sequence[dict]) -> dict | None:
    active = [r for r in records if r.get("status") == ACTIVE]
    return active[-1] if active else None


def champion_problems(records: Sequence[dict]) -> list[str]:
    """Why the production model is not a tested one (empty: it is, or there is none).

    A champion must be the only active record, have won its comparison (an interval
    whose lower end is above 0 over at least ``MIN_MARKETS`` markets) and still exist.
    """
    active = [r for r in records if r.get("status") == ACTIVE]
    if not active:
        return []
    problems = []
    if len(active) > 1:
        problems.append(f"{len(active)} active models (ids {[r.get('id') for r in active]})")
    champion = active[-1]
    interval = champion.get("interval") or [float("nan")] * 2
    if not (interval[0] > 0 and (champion.get("markets") or 0) >= MIN_MARKETS):
        problems.append(
            f"champion {champion.get('id')} ({champion.get('model_path')}) has no winning "
            f"comparison on record (interval {interval}, {champion.get('markets')} markets)"
        )
    if not Path(champion.get("model_path", "")).is_file():
        problems.append(f"champion model {champion.get('model_path')} is missing")
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

    Both play with the challenger's env config and seed (from its lineage). Raises
    :class:`PromotionError` if the comparison cannot run, after recording the candidate
    as failed.
    """
    from kalshi_pipeline.env.trading_env import EnvConfig
    from kalshi_pipeline.training.evaluation import hold_policy, model_policy

    model_path = Path(model_path)
    with registry.locked():
        records = registry.read()
        champion = champion_of(records)
        if champion is not None and champion["model_path"] == str(model_path):
            return Decision("unchanged", champion, champion, None, records)
        record = {**candidate_record(model_path, profile, run), "id": _next_id(records)}
        against = champion["model_path"] if champion else HOLD
        try:
            challenger = load_model(model_path)
            lineage = _lineage(model_path)
            env = EnvConfig(**lineage["config"]["env"])
            if not holdout:
                raise PromotionError(
                    f"no holdout view to compare model {model_path} with {against} on "
                    "(more sessions, or a larger holdout fraction)"
                )
            if champion is not None:
                held = load_model(Path(champion["model_path"]))
                champion_policy: PolicyFactory = lambda seed: model_policy(held)  # noqa: E731
            else:
                champion_policy = lambda seed: hold_policy()  # noqa: E731
            comparison = compare(
                lambda seed: model_policy(challenger), champion_policy, holdout, env,
                lineage["seed"], against,
            )  # fmt: skip
        except Exception as exc:
            record.update(status=FAILED, against=against, reason=f"not compared: {exc}")
            registry.write([*records, record])
            if isinstance(exc, PromotionError):
                raise
            raise PromotionError(f"model {model_path}: the comparison failed: {exc}") from exc
        record.update(
            status=ACTIVE if comparison.wins else REFUSED,
            against=against,
            markets=comparison.markets,
            mean_difference=comparison.mean_difference,
            interval=list(comparison.interval),
            reason=comparison.reason(),
        )
        if comparison.wins and champion is not None:
            champion.update(status=RETIRED, retired_at=record["at"], retired_by=record["id"])
        records = [*records, record]
        registry.write(records)
    return Decision(record["status"], record, champion_of(records), comparison, records)


# -- showing it -----------------------------------------------------------------------------
HISTORY_COLUMNS = (
    "id", "status", "at", "model", "sessions", "views", "profile", "seed", "against",
    "markets", "interval", "reason",
)  # fmt: skip


def history_rows(records: Sequence[dict]) -> list[dict]:
    """The champion first, then every other record, newest first, as display strings."""
    champion = champion_of(records)
    others = [r for r in reversed(records) if r is not champion]
    return [_display(r) for r in ([champion] if champion else []) + others]


def history_markdown(records: Sequence[dict]) -> str:
    """The history as a Markdown table (the champion first)."""
    if not records:
        return "(no model has been a candidate yet)"
    lines = [
        "| " + " | ".join(HISTORY_COLUMNS) + " |",
        "|" + "---|" * len(HISTORY_COLUMNS),
    ]
    for row in history_rows(records):
        cells = [str(row[c]).replace("|", "/") for c in HISTORY_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_champion(record: dict | None) -> str:
    if record is None:
        return "no champion: no candidate has beaten always-HOLD on the holdout yet"
    shown = _display(record)
    return (
        f"champion: model {record['model_path']} (id {record['id']}, since {record.get('at')}; "
        f"sessions {shown['sessions']}, {record.get('views')} views, profile "
        f"{record.get('profile')}, seed {record.get('seed')}); beat {record.get('against')} "
        f"over {record.get('markets')} holdout markets, interval {shown['interval']}"
    )


def _display(record: dict) -> dict:
    interval = record.get("interval")
    sessions = record.get("sessions") or []
    return {
        "id": record.get("id"),
        "status": record.get("status"),
        "at": record.get("at"),
        "model": record.get("model_path"),
        "sessions": _ranges(sessions),
        "views": record.get("views"),
        "profile": record.get("profile") or "",
        "seed": record.get("seed"),
        "against": record.get("against") or "",
        "markets": record.get("markets") if record.get("markets") is not None else "",
        "interval": f"[{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval else "",
        "reason": record.get("reason") or "",
    }


def _ranges(ids: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1-3, 7``: a long history of sessions stays one cell."""
    parts, ids = [], sorted(ids)
    start = prev = None
    for i in ids + [None]:
        if start is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = i
    return ", ".join(parts)


def _lineage(model_path: Path) -> dict:
    from kalshi_pipeline.training.phases import read_lineage

    return read_lineage(model_path)


def _next_id(records: Sequence[dict]) -> int:
    return max((r.get("id", 0) for r in records), default=0) + 1


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def registry_path(artifacts: Path) -> Path:
    """Where a pipeline home keeps its model history: ``<artifacts>/models/registry.json``."""
    return Path(artifacts) / "models" / REGISTRY_FILE
