"""Per-session assets: the raw session, normalised, and its market views (with checks)."""

import math

import dagster as dg
import numpy as np

from kalshi_pipeline.defs.partitions import sessions
from kalshi_pipeline.defs.resources import SOURCE_DOWN_TAG, SOURCE_RETRY_POLICY, PipelineResource
from kalshi_pipeline.defs.settings import FilterSettings
from kalshi_pipeline.market.books import reconstruct_books
from kalshi_pipeline.market.difficulty import score_views
from kalshi_pipeline.market.views import views_from_books, write_views
from kalshi_pipeline.sources import (
    SessionNotComplete,
    SourceMisconfigured,
    SourceTimeout,
    SourceUnavailable,
)

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
        description="Fails when the session has no usable view or any non-finite feature or "
        "statistic; lists rejected markets and views below min_data_quality.",
    ),
]  # fmt: skip


@dg.asset(
    partitions_def=sessions, group_name="data", kinds={"parquet"}, retry_policy=SOURCE_RETRY_POLICY
)
def raw_sessions(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """One closed session from the source, stored as normalised Parquet.

    A failed read is retried (``SOURCE_RETRY_POLICY``: the collector may be back in a
    moment), except when the source says the session is not there or not complete, or
    its URL cannot be read: retrying cannot change that. A run that fails because the
    collector cannot be reached is tagged ``SOURCE_DOWN_TAG``, so that the sensor does
    not count it against the session.
    """
    session_id = int(context.partition_key)
    pipeline.check_source()
    try:
        raw = pipeline.source().load_session(session_id)
    except (KeyError, SessionNotComplete, SourceMisconfigured) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise dg.Failure(
            f"session {session_id} ({pipeline.source_kind()} source): {reason}",
            allow_retries=False,
        ) from exc
    except SourceUnavailable as exc:
        if not isinstance(exc, SourceTimeout):  # unreachable, not slow: not this session's fault
            context.instance.add_run_tags(context.run.run_id, {SOURCE_DOWN_TAG: "true"})
        raise
    # The pipeline's own normalised copy: a new ingest of the session replaces it.
    pipeline.raw_store(raw.session_id).write_session(raw, replace=True)
    pipeline.claim_source()
    info = raw.info
    return dg.MaterializeResult(
        metadata={
            "status": info.status,
            "markets": len(info.market_tickers),
            "snapshots": raw.snapshots.num_rows,
            "deltas": raw.deltas.num_rows,
            "started_at": info.started_at.isoformat(),
            "ended_at": info.ended_at.isoformat() if info.ended_at else "",
            "source": pipeline.source_kind(),
        }
    )


@dg.asset(
    partitions_def=sessions, deps=[raw_sessions], check_specs=VIEW_CHECKS, group_name="data",
    kinds={"parquet"},
)  # fmt: skip
def market_views(
    context: dg.AssetExecutionContext, pipeline: PipelineResource, config: FilterSettings
):
    """One MarketSessionView per market of the session, with features and statistics."""
    session_id = int(context.partition_key)
    books = reconstruct_books(pipeline.raw_store(session_id).load_session(session_id))
    views, report = views_from_books(books), books.report
    path = write_views(views, pipeline.views_path(session_id))
    scored = score_views([v.describe() for v in views], config.to_filter_config()).to_pylist()
    yield dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "views": len(views),
            "steps": sum(len(v) for v in views),
            "passing_filters": sum(r["passes_filters"] for r in scored),
            "rejected_markets": len(report.rejected),
            "repairs": dg.MetadataValue.json(dict(report.repairs)),
            "statistics": dg.MetadataValue.md(_markdown_table(scored)),
        }
    )
    yield from _checks(scored, report, config, _non_finite(views, scored))


def _non_finite(views, scored: list[dict]) -> list[str]:
    """Every view with a NaN or infinite feature or statistic, by name (views are checked
    when built, so this is the last line of defence before training)."""
    bad = [
        f"{v.market_ticker}: non-finite features"
        for v in views
        if not np.isfinite(v.features).all()
    ]
    bad += [
        f"{r['market_ticker']}: non-finite {name} ({r[name]})"
        for r in scored
        for name in ("avg_spread", "volatility_score", "market_coverage", "data_quality_score")
        if not math.isfinite(r[name])
    ]
    return bad


def _checks(scored: list[dict], report, config: FilterSettings, non_finite: list[str]):
    def excluded(word: str) -> list[str]:
        return [
            f"{r['market_ticker']}: {reason}"
            for r in scored
            for reason in r["exclusion_reasons"].split("; ")
            if reason.startswith(word)
        ]

    for name, word in (("min_episode_length", "too short"), ("min_coverage", "low coverage")):
        listed = excluded(word)
        yield dg.AssetCheckResult(
            check_name=name,
            passed=True,  # a filter excludes views; it does not fail the session
            metadata={"excluded": len(listed), "views": dg.MetadataValue.md(_bullets(listed))},
        )
    poor = excluded("poor data quality")
    rejected = [str(issue) for issue in report.rejected.values()]
    usable = sum(r["passes_filters"] for r in scored)
    if non_finite:
        problem = f"non-finite values in {len(non_finite)} views: " + "; ".join(non_finite[:5])
    else:
        problem = None if usable else "no view of this session is usable for training"
    yield dg.AssetCheckResult(
        check_name="data_quality",
        passed=problem is None,
        severity=dg.AssetCheckSeverity.ERROR,
        description=problem,
        metadata={
            "usable_views": usable,
            "non_finite": dg.MetadataValue.md(_bullets(non_finite)),
            "rejected_markets": dg.MetadataValue.md(_bullets(rejected)),
            "below_quality": dg.MetadataValue.md(_bullets(poor)),
            "missing_sequence_numbers": report.missing_sequence_numbers,
        },
    )


def _bullets(lines: list[str]) -> str:
    return "\n".join(f"- {line}" for line in lines) or "(none)"


def _markdown_table(rows: list[dict]) -> str:
    header = "| market | steps | spread | coverage | quality | difficulty | excluded because |"
    lines = [header, "|---|---:|---:|---:|---:|---:|---|"]
    for r in rows:
        lines.append(
            f"| {r['market_ticker']} | {r['length']} | {r['avg_spread']:.1f} | "
            f"{r['market_coverage']:.2f} | {r['data_quality_score']:.2f} | "
            f"{r['difficulty']:.2f} | {r['exclusion_reasons'] or ''} |"
        )
    return "\n".join(lines)
