"""The fingerprints the instance recorded for ingested sessions, read back.

``raw_sessions`` records, in its materialisation's metadata under
``FINGERPRINT_METADATA``, the fingerprint of the rows it ingested
(:mod:`kalshi_pipeline.sources.fingerprint`). These read them back for many sessions at
once (two reads of the event log, whatever their number); what is done with them is
:mod:`kalshi_pipeline.defs.session_survey`'s job. Assets are named by key here, so that
the assets themselves can import this module.
"""

from collections.abc import Iterable

import dagster as dg

from kalshi_pipeline.sources import SessionFingerprint

FINGERPRINT_METADATA = "source_fingerprint"  # raw_sessions' metadata: what it ingested
RAW_SESSIONS = dg.AssetKey("raw_sessions")
MARKET_VIEWS = dg.AssetKey("market_views")


def recorded_fingerprints(
    instance: dg.DagsterInstance, keys: Iterable[str]
) -> dict[str, SessionFingerprint | None]:
    """The fingerprint each session's latest ``raw_sessions`` materialisation recorded
    (None where it recorded none or an unreadable one)."""
    found: dict[str, SessionFingerprint | None] = {}
    for record in latest_materializations(instance, RAW_SESSIONS, keys):
        value = record.asset_materialization.metadata.get(FINGERPRINT_METADATA)
        try:
            found[record.partition_key] = SessionFingerprint.from_json(value.value)
        except (AttributeError, KeyError, TypeError, ValueError):
            found[record.partition_key] = None  # none recorded: an earlier version ingested it
    return found


def views_behind(instance: dg.DagsterInstance, keys: Iterable[str]) -> set[str]:
    """Keys whose latest ``raw_sessions`` materialisation is newer than their latest
    ``market_views`` one (a re-ingest that did not get to its views)."""
    raw = latest_storage_ids(instance, RAW_SESSIONS, keys)
    views = latest_storage_ids(instance, MARKET_VIEWS, keys)
    return {key for key, storage_id in raw.items() if storage_id > views.get(key, -1)}


def latest_materializations(
    instance: dg.DagsterInstance, asset: dg.AssetKey, keys: Iterable[str]
) -> list[dg.EventLogRecord]:
    """The latest materialisation of each of ``asset``'s partitions ``keys`` (those that
    have one), in two reads of the event log whatever their number."""
    latest = latest_storage_ids(instance, asset, keys)
    if not latest:
        return []
    return instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=asset, storage_ids=list(latest.values())),
        limit=len(latest),
    ).records


def latest_storage_ids(
    instance: dg.DagsterInstance, asset: dg.AssetKey, keys: Iterable[str]
) -> dict[str, int]:
    keys = set(keys)
    if not keys:
        return {}
    return dict(
        instance.get_latest_storage_id_by_partition(
            asset, dg.DagsterEventType.ASSET_MATERIALIZATION, keys
        )
    )
