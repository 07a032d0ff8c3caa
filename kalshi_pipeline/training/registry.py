"""The model history (the registry): one record per production candidate, in one JSON file.

The history lives in ``artifacts/models/registry.json`` in the pipeline home, like the
collector's ``rl_models`` table: ``{"models": [record, ...]}``, oldest first. A
:class:`RegistryRecord` holds a candidate's model path, a summary of its lineage
(sessions, number of views, profile, seed), when it was a candidate, its
:class:`RegistryStatus`, the reason and the comparison's interval. Runs may overlap (the
schedule and the retrain sensor), so a promotion holds :meth:`Registry.locked` (an
exclusive ``fcntl`` lock on ``registry.json.lock``) from reading the champion to writing
the result, and :meth:`Registry.write` replaces the file atomically (readers never see half
a file). The decision itself is :mod:`kalshi_pipeline.training.promotion`; the table and the
champion's line are :mod:`kalshi_pipeline.training.registry_display`; docs/training.md,
Promotion, describes both. This module needs none of the models' machinery (torch, SB3,
the env), so ``kalshi-pipeline models`` reads the history quickly.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any, Self

REGISTRY_FILE = "registry.json"


class PromotionError(RuntimeError):
    """A promotion that cannot happen: the comparison cannot run (no holdout view, a model
    that cannot be played) or the model history is unreadable."""


class RegistryStatus(StrEnum):
    """Where a candidate stands: ``ACTIVE`` (the champion, in production), ``RETIRED`` (a
    former champion, beaten), ``REFUSED`` (did not win its comparison), ``FAILED`` (its
    comparison could not run) or ``LOST`` (a former champion whose model could no longer be
    loaded when a challenger came; ``retired_by`` names that challenger)."""

    ACTIVE = "active"
    RETIRED = "retired"
    REFUSED = "refused"
    FAILED = "failed"
    LOST = "lost"


# The record's keys, in the order the pipeline writes them. These are in every record it
# writes (null when unknown); the others only once they have a value (a failed candidate
# has no interval, a champion is retired only once, an unreadable lineage no timesteps).
RECORD_KEYS = (
    "model_path", "profile", "run", "at", "sessions", "views", "seed", "algorithm",
    "timesteps", "id", "status", "against", "markets", "mean_difference", "interval",
    "reason", "retired_at", "retired_by",
)  # fmt: skip
_ALWAYS_WRITTEN = frozenset(
    {"model_path", "profile", "run", "at", "sessions", "views", "seed", "algorithm", "id",
     "status"}
)  # fmt: skip


@dataclass(frozen=True, kw_only=True)
class RegistryRecord:
    """One candidate in the history. A record written by hand may lack any field but
    ``model_path`` (it reads as ``None``) and may have keys of its own (``extra``)."""

    model_path: str
    profile: str | None = None  # the training profile that made the model
    run: str | None = None  # the Dagster run (empty when promoted outside one)
    at: str | None = None  # when it was a candidate: ISO 8601, UTC, seconds
    sessions: tuple[int, ...] = ()  # the sessions it trained on
    views: int | None = None  # how many views it trained on
    seed: int | None = None
    algorithm: str | None = None
    timesteps: int | None = None
    id: int | None = None  # 1, 2, ... in the order candidates came
    status: RegistryStatus | None = None
    against: str | None = None  # the champion's model path, or always-HOLD
    markets: int | None = None  # holdout markets compared on
    mean_difference: float | None = None  # mean per-market reward, challenger minus it
    interval: tuple[float, float] | None = None  # the mean's bootstrap interval
    reason: str | None = None
    retired_at: str | None = None  # when a challenger beat it
    retired_by: int | None = None  # that challenger's id
    extra: Mapping[str, Any] = field(default_factory=dict)  # keys the pipeline does not write
    # A record read from the file keeps its keys' order, so writing the history back
    # changes no record (one written by hand too); keys it gains since are added after
    # them, as a champion's retired_at and retired_by always were. None: made here.
    file_keys: tuple[str, ...] | None = field(default=None, compare=False, repr=False)

    def to_json(self) -> dict:
        values: dict[str, Any] = {key: getattr(self, key) for key in RECORD_KEYS}
        values["sessions"] = list(self.sessions)
        if self.interval is not None:
            values["interval"] = list(self.interval)
        if self.status is not None:
            values["status"] = self.status.value
        values.update(self.extra)
        if self.file_keys is None:
            pipeline = [k for k in RECORD_KEYS if k in _ALWAYS_WRITTEN or values[k] is not None]
            keys = [*pipeline, *self.extra]
        else:
            unset = (None, ())  # a hand-made record without sessions gains none
            gained = [k for k in RECORD_KEYS if getattr(self, k) not in unset]
            keys = [*self.file_keys, *(k for k in gained if k not in self.file_keys)]
        return {key: values[key] for key in keys}

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        known = {k: v for k, v in data.items() if k in RECORD_KEYS}
        known["sessions"] = tuple(data.get("sessions") or ())
        if data.get("interval") is not None:
            known["interval"] = tuple(data["interval"])
        if data.get("status") is not None:
            known["status"] = RegistryStatus(data["status"])
        extra = {k: v for k, v in data.items() if k not in RECORD_KEYS}
        return cls(**known, extra=extra, file_keys=tuple(data))


class Registry:
    """The model history at ``path`` (a JSON file), read and written under one lock."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def read(self) -> list[RegistryRecord]:
        """Every record, oldest first (none if the file does not exist yet)."""
        try:
            text = self.path.read_text()
        except FileNotFoundError:
            return []
        try:
            return [RegistryRecord.from_json(r) for r in json.loads(text)["models"]]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise PromotionError(f"the model history {self.path} is unreadable: {exc}") from exc

    def champion(self) -> RegistryRecord | None:
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

    def write(self, records: Sequence[RegistryRecord]) -> None:
        """Replace the file with ``records`` atomically (call while holding the lock)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        with open(tmp, "w") as fh:
            json.dump({"models": [r.to_json() for r in records]}, fh, indent=1, default=str)
            fh.write("\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)

    def append(self, record: RegistryRecord) -> RegistryRecord:
        """Add ``record`` with the next id, under the lock; returns it with its id."""
        with self.locked():
            records = self.read()
            record = replace(record, id=next_id(records))
            self.write([*records, record])
        return record


def champion_of(records: Sequence[RegistryRecord]) -> RegistryRecord | None:
    """The model in production: the last active record (``None`` while none has won)."""
    active = active_records(records)
    return active[-1] if active else None


def active_records(records: Sequence[RegistryRecord]) -> list[RegistryRecord]:
    return [r for r in records if r.status == RegistryStatus.ACTIVE]


def next_id(records: Sequence[RegistryRecord]) -> int:
    return max((r.id or 0 for r in records), default=0) + 1


def now() -> str:
    """The time a record is made, as the history writes it."""
    return datetime.now(UTC).isoformat(timespec="seconds")


def registry_path(artifacts: Path) -> Path:
    """Where a pipeline home keeps its model history: ``<artifacts>/models/registry.json``."""
    return Path(artifacts) / "models" / REGISTRY_FILE
