"""Paper trading of each session, checked against its backtest: ``paper_trading``.

Per session partition, once its ``market_views`` are built: the session's paper records
(the live follower's, from the paper database, or the stored raw copy played after the
fact by the champion), the backtest of the same session's batch views with the same
models, and the blocking check ``agrees_with_backtest`` that the two agree bit for bit.
The figures (P&L per market, models, counts, the P&L plot) go to the metadata and to
``artifacts/paper/session-<id>.json``, which ``production_model`` reads for the
champion's paper record. The domain is :mod:`kalshi_pipeline.paper`; this module wires it.
"""

import time

import dagster as dg

from kalshi_pipeline.defs.assets.data_assets import market_views, raw_sessions
from kalshi_pipeline.defs.paper_metadata import (
    AGREEMENT_CHECK,
    agreement_check,
    report_metadata,
)
from kalshi_pipeline.defs.partitions import sessions
from kalshi_pipeline.defs.resources import PipelineResource
from kalshi_pipeline.paper.model_choice import champion, recorded_models, registry_ids
from kalshi_pipeline.paper.records import Records
from kalshi_pipeline.paper.session_files import (
    RecordSource,
    SessionReport,
    paper_dir,
    write_report,
)
from kalshi_pipeline.paper.session_report import (
    against_backtest,
    paper_after_the_fact,
    pnl_plot,
    summarize,
)
from kalshi_pipeline.paper.store import PaperStatus, PaperStore, PaperStoreError
from kalshi_pipeline.sources.collector_tail import Cursor
from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline.sources.redaction import describe_url
from kalshi_pipeline.sources.settings import COLLECTOR_URL, PAPER_DATABASE_URL
from kalshi_pipeline.training.registry import PromotionError, registry_path

PAPER_CHECKS = [
    dg.AssetCheckSpec(
        AGREEMENT_CHECK,
        asset="paper_trading",
        blocking=True,
        description="The session's paper records equal its backtest's (the batch views "
        "played by the same models) bit for bit: decisions, outcomes and fills, market by "
        "market. ERROR naming the first differences (market, step). A market traded live "
        "until the live cleaning rejected it, which has no batch view either, is named, not "
        "compared; one traded live and never rejected that has no batch view is a difference.",
    )
]


@dg.asset(
    partitions_def=sessions, deps=[raw_sessions, market_views], check_specs=PAPER_CHECKS,
    group_name="paper", kinds={"postgres", "json"},
)  # fmt: skip
def paper_trading(context: dg.AssetExecutionContext, pipeline: PipelineResource):
    """The session paper-traded, and its backtest: P&L per market, overall P&L, the
    models used, counts of decisions, outcomes and fills for both, and a plot of the
    cumulative P&L.

    The records are the paper database's closed record of the session
    (``KALSHI_PAPER_DATABASE_URL``: the live follower's) when it has one, with the models
    it names. Otherwise the champion of the model history at this moment (always-HOLD
    while there is none), in its own env config, plays the session's stored raw copy one
    receive millisecond at a time, as the collector committed it; the record is written
    to the paper database when one is configured. The backtest plays the session's
    ``market_views`` with each market's recorded model; ``agrees_with_backtest`` compares.
    """
    session_id = int(context.partition_key)
    registry = registry_path(pipeline.artifacts)
    records, source = _session_records(context, pipeline, session_id)
    ids = registry_ids(registry)
    models = _recorded_models(session_id, records, ids)
    agreement = against_backtest(records, pipeline.session_views(session_id), models)
    cash = {market: played.config.starting_cash_cents for market, played in models.items()}
    report = SessionReport(
        session_id=session_id,
        source=source,
        paper=summarize(records, cash).with_registry_ids(ids),
        backtest=summarize(agreement.backtest, cash).with_registry_ids(ids),
        differences=agreement.differences,
        without_batch_view=agreement.without_batch_view,
    )
    directory = paper_dir(pipeline.artifacts)
    summary_path = write_report(report, directory)
    plot = pnl_plot(records, directory / f"session-{session_id}-pnl.png", cash)
    if not report.agrees:
        context.log.error(
            f"session {session_id}: paper trading and its backtest differ in "
            f"{len(report.differences)} places; first: {report.differences[0][:300]}"
        )
    yield dg.MaterializeResult(metadata=report_metadata(report, summary_path, plot))
    yield agreement_check(report)


def _session_records(
    context: dg.AssetExecutionContext, pipeline: PipelineResource, session_id: int
) -> tuple[Records, RecordSource]:
    """The paper database's closed record of the session, or the session's raw copy
    played after the fact by the champion (written to the paper database if there is
    one and it holds nothing of the session). A closed record that stops short of the
    raw copy (the collector resumed the session after it was followed to its close, and
    it was ingested again) is not of these rows: the raw copy is played instead."""
    url = PAPER_DATABASE_URL.read()
    store = PaperStore(url, say=context.log.warning) if url else None
    try:
        stored = _stored_session(store, session_id)
        unread = None if stored is None else _unread_rows(pipeline, session_id, stored.cursor)
        if stored is not None and stored.status == PaperStatus.CLOSED and not unread:
            context.log.info(f"session {session_id}: the {store.where}'s closed record")
            return stored.records, RecordSource.PAPER_DATABASE
        if stored is not None:
            closed = stored.status == PaperStatus.CLOSED
            held = "a closed record" if closed else "a record still being followed"
            short = f", but this home's raw copy holds {unread} (ingested again)" if unread else ""
            context.log.warning(
                f"session {session_id}: the {store.where} holds {held} up to "
                f"{stored.cursor.describe()}{short}; played after the fact instead, and not "
                "written there"
            )
        raw = _raw_session(pipeline, session_id)
        played = _champion(pipeline, session_id)
        context.log.info(
            f"session {session_id}: {played.name} plays the raw copy "
            f"({len(raw.info.market_tickers)} markets) after the fact"
        )
        records = paper_after_the_fact(raw, played.config, lambda _: played.chosen)
        if store is not None and stored is None:
            _write_closed(store, pipeline, raw, played.config.to_json(), records)
            context.log.info(f"session {session_id}: written to the {store.where}")
        return records, RecordSource.REPLAYED
    except PaperStoreError as exc:  # names the database, never its credentials
        raise dg.Failure(f"session {session_id}: {exc}", allow_retries=False) from exc
    finally:
        if store is not None:
            store.close()


def _stored_session(store: PaperStore | None, session_id: int):
    if store is None:
        return None
    store.create()
    return store.load(session_id)


def _unread_rows(pipeline: PipelineResource, session_id: int, cursor: Cursor) -> str:
    """The raw copy's rows past ``cursor`` (``deltas up to id 812``), or '' when there
    are none (or this home has no raw copy to tell)."""
    copy = pipeline.raw_store(session_id).fingerprints([session_id]).get(session_id)
    if copy is None:
        return ""
    beyond = [
        f"{table} up to id {extent.last_id}"
        for table in ("snapshots", "deltas", "trades")
        if (extent := getattr(copy, table)) is not None
        and extent.last_id is not None
        and extent.last_id > getattr(cursor, table)
    ]
    return ", ".join(beyond)


def _raw_session(pipeline: PipelineResource, session_id: int) -> RawSession:
    try:
        return pipeline.raw_store(session_id).load_session(session_id)
    except KeyError as exc:
        raise dg.Failure(
            f"session {session_id}: this home has no raw copy of it to paper-trade "
            f"({pipeline.raw_store(session_id).path}; materialise its raw_sessions "
            f"partition first): {exc}",
            allow_retries=False,
        ) from exc


def _champion(pipeline: PipelineResource, session_id: int):
    try:
        return champion(registry_path(pipeline.artifacts))
    except PromotionError as exc:
        raise dg.Failure(
            f"session {session_id}: the champion cannot play: {exc}", allow_retries=False
        ) from exc


def _recorded_models(session_id: int, records: Records, ids: dict[str, int]):
    try:
        return recorded_models(records, ids)
    except PromotionError as exc:
        raise dg.Failure(
            f"session {session_id}: a model its paper records name cannot play its backtest: {exc}",
            allow_retries=False,
        ) from exc


def _write_closed(
    store: PaperStore, pipeline: PipelineResource, raw: RawSession, env: dict, records: Records
) -> None:
    """The session's records, closed, in the paper database: its cursor the last row of
    each table of the raw copy."""
    session_id = raw.info.session_id
    # Named as the live follower names its collector, so the two records say one source.
    collector = COLLECTOR_URL.read()
    source = describe_url(collector) if collector else pipeline.source_identity()
    store.begin(session_id, source, env)
    store.write(session_id, records, _end_of(raw), time.time(), status=PaperStatus.CLOSED)


def _end_of(raw: RawSession) -> Cursor:
    def last_id(table) -> int:
        ids = table.column("id").to_pylist() if table is not None else []
        return max(ids, default=0)

    return Cursor(last_id(raw.snapshots), last_id(raw.deltas), last_id(raw.trades))
