"""Per-session assets: the raw session, normalised, and its market views (with checks)."""

import dagster as dg

from kalshi_pipeline.defs.checks import (
    VIEW_CHECKS,
    non_finite_features,
    non_finite_statistics,
    statistics_table,
    view_checks,
)
from kalshi_pipeline.defs.config import FilterSettings
from kalshi_pipeline.defs.partitions import sessions
from kalshi_pipeline.defs.recorded_fingerprints import (
    FINGERPRINT_METADATA,
    recorded_fingerprints,
)
from kalshi_pipeline.defs.resources import (
    SOURCE_DOWN_TAG,
    SOURCE_RETRY_POLICY,
    PipelineResource,
    SourceMismatch,
    wait_before_source_retry,
)
from kalshi_pipeline.market.views import SessionViews, write_view_batches
from kalshi_pipeline.sources import (
    SessionNotComplete,
    SourceMisconfigured,
    SourceTimeout,
    SourceUnavailable,
    StoreCorrupt,
)
from kalshi_pipeline.sources.raw import TABLES
from kalshi_pipeline.workflow import select_views


@dg.asset(
    partitions_def=sessions, group_name="data", kinds={"parquet"}, retry_policy=SOURCE_RETRY_POLICY
)
def raw_sessions(
    context: dg.AssetExecutionContext, pipeline: PipelineResource
) -> dg.MaterializeResult:
    """One closed session from the source, stored as normalised Parquet.

    A failed read is retried (``SOURCE_RETRY_POLICY``: the collector may be back in a
    moment), except when the source says the session is not there or not complete, its
    URL cannot be read, or a stored file is damaged (``StoreCorrupt``, naming the file):
    retrying cannot change that, so the step fails once. A run that fails because the
    collector cannot be reached is tagged ``SOURCE_DOWN_TAG``, so that the sensor does
    not count it against the session. A home filled from another source fails at once.

    The copy keeps the session's trade tape where the source has one (the store writes
    ``session.trades`` beside the book tables); ``trades`` in the metadata counts its
    trades, and is absent for a session without a tape.

    The metadata records the fingerprint of the rows ingested (``source_fingerprint``):
    how the sensor and the demo tell that the session changed since
    (:mod:`kalshi_pipeline.defs.session_survey`). When it differs from the one recorded
    by the previous ingest, the change (which session, old and new fingerprint, what
    differs) is logged and recorded as ``changed``.
    """
    session_id = int(context.partition_key)
    store = pipeline.raw_store(session_id)
    try:
        pipeline.check_source()
        # Read and written a batch of rows at a time: a session of any size streams through.
        with pipeline.source().open_session(session_id) as session:
            # The pipeline's own normalised copy: a new ingest of the session replaces it.
            store.write_session(session, replace=True)
    except (KeyError, SessionNotComplete, SourceMisconfigured, SourceMismatch, StoreCorrupt) as exc:
        reason = exc.args[0] if isinstance(exc, KeyError) and exc.args else exc
        raise dg.Failure(
            f"session {session_id} ({pipeline.source_kind()} source): {reason}",
            allow_retries=False,
        ) from exc
    except SourceUnavailable as exc:
        if not isinstance(exc, SourceTimeout):  # unreachable, not slow: not this session's fault
            context.instance.add_run_tags(context.run.run_id, {SOURCE_DOWN_TAG: "true"})
        wait_before_source_retry(context)
        raise
    pipeline.claim_source()
    return dg.MaterializeResult(metadata=_ingested_metadata(context, pipeline, session_id))


def _ingested_metadata(
    context: dg.AssetExecutionContext, pipeline: PipelineResource, session_id: int
) -> dict:
    """raw_sessions' metadata: what the stored copy holds, and its fingerprint compared
    with the one the previous ingest of the session recorded."""
    store = pipeline.raw_store(session_id)
    with store.open_session(session_id, allow_incomplete=True) as stored:
        info, rows = stored.info, {table: stored.rows(table) for table in TABLES}
        trades = None if stored.trades is None else stored.trades.num_rows
    fingerprint = store.fingerprints([session_id])[session_id]  # of the copy just written
    key = context.partition_key
    metadata = {
        "status": str(info.status),  # Dagster stores only plain strings, not StrEnums
        "markets": len(info.market_tickers),
        "snapshots": rows["snapshots"],
        "deltas": rows["deltas"],
        "started_at": info.started_at.isoformat(),
        "ended_at": info.ended_at.isoformat() if info.ended_at else "",
        "source": pipeline.source_kind(),
        "fingerprint": fingerprint.token,
        FINGERPRINT_METADATA: dg.MetadataValue.json(fingerprint.to_json()),
    }
    if trades is not None:
        metadata["trades"] = trades
    recorded = recorded_fingerprints(context.instance, [key])
    if key in recorded:  # ingested before
        previous = recorded[key]
        if previous is None or previous.token != fingerprint.token:
            change = (
                f"session {key} changed since its previous ingest (fingerprint "
                f"{previous.token if previous else 'none'} -> {fingerprint.token}): "
                f"{fingerprint.changes_since(previous)}; its raw copy and views are replaced"
            )
            context.log.warning(change)
            metadata["changed"] = change
            if previous is not None:
                metadata["previous_fingerprint"] = dg.MetadataValue.json(previous.to_json())
    return metadata


@dg.asset(
    partitions_def=sessions, deps=[raw_sessions], check_specs=VIEW_CHECKS, group_name="data",
    kinds={"parquet"},
)  # fmt: skip
def market_views(
    context: dg.AssetExecutionContext, pipeline: PipelineResource, config: FilterSettings
):
    """One MarketSessionView per market of the session, with features and statistics.

    The stored session is read a batch of rows at a time, cleaned a group of markets at a
    time and its views written a group at a time (``SessionViews.streamed``), so a session
    of any size is never held whole in memory; the groups wait in ``pipeline.scratch``.
    The file records its session, the raw copy it was built from (the SHA-256 of its
    ``digests.json``) and the digests its readers verify
    (:mod:`kalshi_pipeline.market.views.integrity`); it replaces the previous one atomically.
    """
    session_id = int(context.partition_key)
    poisoned: list[str] = []
    path = pipeline.views_path(session_id)
    with (
        pipeline.raw_store(session_id).open_session(session_id) as stored,
        SessionViews.streamed(stored, scratch=pipeline.scratch()) as builder,
    ):

        def checked_batches():
            for views in builder.batches():
                poisoned.extend(non_finite_features(views))
                yield views

        described = write_view_batches(
            checked_batches(), path, session_id, raw_sha256=stored.digests_sha256
        )
    report = builder.report
    selected = select_views(described, config.to_domain()).to_pylist()
    yield dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "views": len(described),
            "steps": sum(d["length"] for d in described),
            "passing_filters": sum(r["passes_filters"] for r in selected),
            "rejected_markets": len(report.rejected),
            "repairs": dg.MetadataValue.json(dict(report.repairs)),
            "statistics": dg.MetadataValue.md(statistics_table(selected)),
        }
    )
    yield from view_checks(selected, report, poisoned + non_finite_statistics(selected))
