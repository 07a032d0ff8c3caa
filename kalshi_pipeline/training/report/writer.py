"""Writing the report directory: the Markdown, the CSV and JSON it is computed from, plots.

:func:`write_report` puts into ``out_dir``: ``report.md`` (:mod:`.markdown`),
``per_market.csv`` (every :class:`PerMarketRow`, every policy and split),
``episodes.csv`` (every :class:`Episode`, the rows everything else is computed from),
``summary.json`` (the :class:`EvaluationSummary` in the file's layout plus
:func:`analyse`'s findings and the execution settings, keys sorted) and the plots in
:data:`PLOTS`. These files' bytes are a contract (docs/contracts.md): the same episodes
and seed give the same files.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from kalshi_pipeline.env.trading_env import EnvConfig
from kalshi_pipeline.training.evaluation import (
    Episode,
    EvaluationSummary,
    PerMarketRow,
    analyse,
)
from kalshi_pipeline.training.lineage import Lineage
from kalshi_pipeline.training.report.execution import execution_lines, execution_summary
from kalshi_pipeline.training.report.markdown import report_markdown
from kalshi_pipeline.training.report.order import policy_split_keys
from kalshi_pipeline.training.report.plots import (
    PLOTS,
    action_plot,
    difficulty_plot,
    learning_curve,
    policy_rewards,
)


@dataclass(frozen=True, kw_only=True)
class WrittenReport:
    """A report directory as written: ``report.md``'s path, its results (the file up to
    its plots: what Dagster shows as metadata) and the summary its figures come from."""

    path: Path
    results_markdown: str
    summary: EvaluationSummary

    def to_json(self) -> dict:
        return {
            "path": str(self.path),
            "results_markdown": self.results_markdown,
            "summary": self.summary.to_json(),
        }

    @classmethod
    def from_json(cls, data: Mapping) -> WrittenReport:
        return cls(
            path=Path(data["path"]),
            results_markdown=data["results_markdown"],
            summary=EvaluationSummary.from_json(data["summary"]),
        )


def write_report(
    out_dir: str | Path,
    episodes: Sequence[Episode],
    rows: Sequence[PerMarketRow],
    summary: EvaluationSummary,
    *,
    model_path: Path | None,
    lineage: Lineage | None,
    difficulties: Mapping[str, float],
    progress_files: Sequence[Path] = (),
    env: EnvConfig | None = None,
) -> WrittenReport:
    """Write the report directory (see :class:`WrittenReport`). The findings on top
    of ``summary`` are computed here (:func:`analyse`, with ``summary``'s seed), so the
    report is the same for the same episodes and seed. ``env`` is the env config the
    episodes were played in (``None``: the model's own, from ``lineage``, else the
    default), whose execution settings the report states (:mod:`.execution`)."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    if env is None:
        env = lineage.env_config() if lineage is not None else EnvConfig()
    findings = analyse(episodes, rows, difficulties, summary.seed)
    findings["execution"] = execution_summary(env, lineage)
    _write_csv(out / "episodes.csv", [e.to_json() for e in episodes])
    _write_csv(out / "per_market.csv", [r.to_json() for r in rows])
    summary_json = {**summary.summary_file_json(), **findings}
    (out / "summary.json").write_text(json.dumps(summary_json, indent=1, sort_keys=True))
    policy_rewards(out / PLOTS[0], rows, summary.seed)
    action_plot(out / PLOTS[1], findings["actions"], policy_split_keys(episodes))
    learning_curve(out / PLOTS[2], progress_files)
    difficulty_plot(out / PLOTS[3], episodes, rows, difficulties)
    results, rest = report_markdown(
        episodes, rows, summary, findings, model_path, lineage, execution_lines(env, lineage)
    )
    report = out / "report.md"
    report.write_text(results + rest)
    return WrittenReport(path=report, results_markdown=results, summary=summary)


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        if not rows:
            return
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
