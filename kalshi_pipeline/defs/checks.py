"""The asset checks of ``market_views``: the training filters and the data quality.

They are emitted by the ``market_views`` asset itself (``check_specs``), from the one
selection table it computes: a check defined on its own would load every session
partition. The filters read the selection's boolean columns (one per filter, see
:func:`kalshi_pipeline.workflow.select_views`), never its English reasons.

* ``min_episode_length``, ``min_coverage``: list the views each filter excludes; they
  pass, since a filter excludes views and does not fail the session.
* ``data_quality`` (blocking, ERROR): fails when no view of the session is usable, any
  feature or statistic is not finite, or the session's recorded window contradicts its
  events (its start after its end, or most events outside it:
  :meth:`~kalshi_pipeline.market.cleaning.IngestReport.window_contradiction`); its
  description names the session and why. Lists the rejected markets with their reasons.
"""

import math

import dagster as dg
import numpy as np

from kalshi_pipeline.market.cleaning import IngestReport
from kalshi_pipeline.market.difficulty import FINITE_STATISTICS

VIEW_CHECKS = [
    dg.AssetCheckSpec(
        "min_episode_length", asset="market_views", blocking=True,
        description="Views shorter than min_episode_length are excluded from training.",
    ),
    dg.AssetCheckSpec(
        "min_coverage", asset="market_views", blocking=True,
        description="Views covering less than min_coverage of the session are excluded.",
    ),
    dg.AssetCheckSpec(
        "data_quality", asset="market_views", blocking=True,
        description="Fails when the session has no usable view, any non-finite feature or "
        "statistic, or a recorded window its events contradict; lists rejected markets and "
        "views below min_data_quality.",
    ),
]  # fmt: skip
# check name -> the selection column of its filter
FILTER_CHECKS = {"min_episode_length": "long_enough", "min_coverage": "covered"}


def non_finite_features(views) -> list[str]:
    """Every view with a NaN or infinite feature, by name (views are checked when built,
    so this is the last line of defence before training; the views may come a batch at a
    time, hence apart from their statistics)."""
    return [
        f"{v.market_ticker}: non-finite features"
        for v in views
        if not np.isfinite(v.features).all()
    ]


def non_finite_statistics(selected: list[dict]) -> list[str]:
    """Every view whose statistic that must be finite is not, by name."""
    return [
        f"{r['market_ticker']}: non-finite {name} ({r[name]})"
        for r in selected
        for name in FINITE_STATISTICS
        if not math.isfinite(r[name])
    ]


def view_checks(selected: list[dict], report: IngestReport, non_finite_views: list[str]):
    """The ``AssetCheckResult`` of every check in ``VIEW_CHECKS``."""

    def failing(column: str) -> list[str]:
        return [
            f"{r['market_ticker']}: {r['exclusion_reasons']}" for r in selected if not r[column]
        ]

    for name, column in FILTER_CHECKS.items():
        listed = failing(column)
        yield dg.AssetCheckResult(
            check_name=name,
            passed=True,  # a filter excludes views; it does not fail the session
            metadata={"excluded": len(listed), "views": dg.MetadataValue.md(bullets(listed))},
        )
    usable = sum(r["passes_filters"] for r in selected)
    window = report.window_contradiction()
    problem = quality_problem(report.session_id, window, non_finite_views, usable)
    yield dg.AssetCheckResult(
        check_name="data_quality",
        passed=problem is None,
        severity=dg.AssetCheckSeverity.ERROR,
        description=problem,
        metadata={
            "usable_views": usable,
            "window": window or "(consistent with its events)",
            "non_finite": dg.MetadataValue.md(bullets(non_finite_views)),
            "rejected_markets": dg.MetadataValue.md(
                bullets([str(issue) for issue in report.rejected.values()])
            ),
            "below_quality": dg.MetadataValue.md(bullets(failing("good_quality"))),
            "missing_sequence_numbers": report.missing_sequence_numbers,
        },
    )


def quality_problem(
    session_id: int, window: str | None, non_finite_views: list[str], usable: int
) -> str | None:
    """Why the ``data_quality`` check fails (every reason, in one line), or None."""
    problems = []
    if window:
        problems.append(
            f"session {session_id}: its recorded window contradicts its events: {window}"
        )
    if non_finite_views:
        listed = "; ".join(non_finite_views[:5])
        problems.append(f"non-finite values in {len(non_finite_views)} views: {listed}")
    if not usable:
        problems.append("no view of this session is usable for training")
    return "; ".join(problems) or None


def bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines) or "(none)"


def statistics_table(rows: list[dict]) -> str:
    """The selection as a Markdown table (the ``statistics`` metadata of ``market_views``)."""
    header = "| market | steps | spread | coverage | quality | difficulty | excluded because |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['market_ticker']} | {r['length']} | {r['avg_spread']:.1f} | "
            f"{r['market_coverage']:.2f} | {r['data_quality_score']:.2f} | "
            f"{r['difficulty']:.2f} | {r['exclusion_reasons'] or ''} |"
        )
    return "\n".join(lines)
