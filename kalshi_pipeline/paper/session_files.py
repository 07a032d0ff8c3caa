"""A paper-traded session's summary file, and a model's paper record across sessions.

Each paper-traded session leaves ``session-<id>.json`` in the paper directory (the
pipeline home's ``artifacts/paper``): a :class:`SessionReport`, the paper trading's and
its backtest's summaries (:class:`~.session_report.PaperSummary`) and whether they
agreed. :func:`model_record` reads them back for one model of the history: what it
earned, session by session, in the markets it played.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Self

from kalshi_pipeline.paper.session_report import PaperSummary


class RecordSource(StrEnum):
    """Where a session's paper records came from: the live follower's closed record in
    the paper database, or the session's stored raw copy played after the fact."""

    PAPER_DATABASE = "paper database"
    REPLAYED = "replayed from the raw copy"


@dataclass(frozen=True)
class SessionReport:
    """A paper-traded session: its summary, its backtest's, and their differences."""

    session_id: int
    source: RecordSource
    paper: PaperSummary
    backtest: PaperSummary
    differences: tuple[str, ...]
    without_batch_view: tuple[str, ...]  # rejected by the live cleaning and the batch one

    @property
    def agrees(self) -> bool:
        return not self.differences

    def to_json(self) -> dict:
        return {
            "session_id": self.session_id,
            "source": self.source.value,
            "agrees": self.agrees,
            "paper": self.paper.to_json(),
            "backtest": self.backtest.to_json(),
            "differences": list(self.differences),
            "without_batch_view": list(self.without_batch_view),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(
            session_id=int(data["session_id"]),
            source=RecordSource(data["source"]),
            paper=PaperSummary.from_json(data["paper"]),
            backtest=PaperSummary.from_json(data["backtest"]),
            differences=tuple(data["differences"]),
            without_batch_view=tuple(data["without_batch_view"]),
        )


def paper_dir(artifacts: Path) -> Path:
    """Where a pipeline home keeps its paper-traded sessions' files: ``<artifacts>/paper``."""
    return Path(artifacts) / "paper"


def report_path(directory: Path, session_id: int) -> Path:
    return Path(directory) / f"session-{int(session_id)}.json"


def write_report(report: SessionReport, directory: Path) -> Path:
    """``report`` as ``session-<id>.json`` in ``directory``, replaced atomically."""
    path = report_path(directory, report.session_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}")
    tmp.write_text(json.dumps(report.to_json(), indent=1) + "\n")
    os.replace(tmp, path)
    return path


def read_reports(directory: Path) -> list[SessionReport]:
    """Every session's report in ``directory``, by session id (none if it is missing).
    A file that does not read as a report raises ``ValueError`` naming it."""
    reports = []
    for path in Path(directory).glob("session-*.json"):
        try:
            reports.append(SessionReport.from_json(json.loads(path.read_text())))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"paper session report {path} is unreadable: {exc}") from exc
    return sorted(reports, key=lambda r: r.session_id)


@dataclass(frozen=True)
class ModelSession:
    """What one model did in one paper-traded session: in the markets it played."""

    session_id: int
    pnl_cents: int
    markets: int
    decisions: int
    agrees: bool


def model_record(reports: Sequence[SessionReport], registry_id: int) -> list[ModelSession]:
    """The paper record of the history's model ``registry_id``: per session it played,
    its markets' P&L, how many markets and decisions."""
    record = []
    for report in reports:
        names = {m.name for m in report.paper.models if m.registry_id == registry_id}
        played = [m for m in report.paper.markets if m.model in names]
        if played:
            record.append(
                ModelSession(
                    session_id=report.session_id,
                    pnl_cents=sum(m.pnl_cents for m in played),
                    markets=len(played),
                    decisions=sum(m.decisions for m in played),
                    agrees=report.agrees,
                )
            )
    return record
