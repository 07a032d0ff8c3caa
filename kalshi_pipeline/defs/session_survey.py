"""What the source holds against what the instance ingested: the sessions to ingest, to
ingest again, and those that wait. The sensor and the demo decide from the same survey.

**A session that changed after its ingest.** ``raw_sessions`` records, in its
materialisation's metadata (``FINGERPRINT_METADATA``), the fingerprint of the rows it
ingested (:mod:`kalshi_pipeline.sources.fingerprint`: status, end, each table's row count
and last id). The survey asks the source for the current fingerprints of the ingested
sessions (one query on the collector) and reads the recorded ones (two reads of the
instance's event log, whatever the number of sessions). An ingested session is to be
ingested again when:

* its fingerprint differs from the recorded one (a collector resumed it: more rows, a new
  market, a later end);
* no fingerprint was recorded (ingested by an earlier version of the pipeline: it cannot be
  told, so it is ingested once more);
* its last ``raw_sessions`` materialisation is newer than its last ``market_views`` one
  (a re-ingest whose views step failed: the views are of the earlier version).

Its earlier views stay in use until the new ones replace them: the views file is written
to a temporary file and renamed into place
(:func:`~kalshi_pipeline.market.views.write_view_batches`), so a reader sees the old file or
the new one whole; the raw copy is swapped in the same way. A session ingested earlier that is
recording again (it is not complete now) keeps its views, and the survey says so.

**Sessions that wait.** A session whose status is unknown, or an ``error`` session without
an end time, is never complete: the survey names each in ``waiting``, with why. So is an
ingested session the source no longer lists (deleted from the collector): its views stay
in use, since a source losing rows is no reason to forget what was recorded, and the note
says how to leave it out.
"""

from dataclasses import dataclass, field

import dagster as dg

from kalshi_pipeline.defs.ingest_runs import (
    FINGERPRINT_TAG,
    IngestState,
    ingest_states,
    ingested_sessions,
)
from kalshi_pipeline.defs.partitions import session_key, sessions
from kalshi_pipeline.defs.recorded_fingerprints import recorded_fingerprints, views_behind
from kalshi_pipeline.sources import SessionFingerprint, SessionInfo, SessionSource
from kalshi_pipeline.sources.raw import SessionStatus


@dataclass(frozen=True)
class SourceReading:
    """What the source lists, and the current fingerprints of the ingested sessions."""

    listed: list[SessionInfo]
    fingerprints: dict[int, SessionFingerprint]


@dataclass
class Survey:
    """The source's sessions against the instance (see the module docstring)."""

    complete: list[str]  # keys of the complete sessions, by id
    states: dict[str, IngestState]  # of each complete session
    changes: dict[str, str] = field(default_factory=dict)  # key -> what changed, in words
    waiting: list[str] = field(default_factory=list)  # one line per session that waits
    recording_again: list[str] = field(default_factory=list)  # ingested, not complete now

    def fingerprint_tags(self, key: str) -> dict[str, str]:
        """The tags of a run that ingests ``key``: its new fingerprint if it changed."""
        token = self.states[key].changed
        return {FINGERPRINT_TAG: token} if token else {}


def read_source(source: SessionSource, instance: dg.DagsterInstance) -> SourceReading:
    """The source's listing and its fingerprints of the complete sessions already ingested
    (every read of the source the survey needs: a failure here is the source's)."""
    listed = source.list_sessions()
    done = ingested_sessions(instance)
    ingested = [i.session_id for i in listed if i.is_complete and session_key(i.session_id) in done]
    return SourceReading(listed, source.fingerprints(ingested) if ingested else {})


def survey(reading: SourceReading, instance: dg.DagsterInstance) -> Survey:
    """What to ingest, to ingest again, and what waits (reads only the instance)."""
    complete = [session_key(i.session_id) for i in reading.listed if i.is_complete]
    current = {session_key(k): fp for k, fp in reading.fingerprints.items()}
    recorded = recorded_fingerprints(instance, list(current))
    behind = views_behind(instance, list(current))
    changes = {}
    for key, now in current.items():
        before = recorded.get(key)
        if before is None or before.token != now.token or key in behind:
            why = now.changes_since(before) if key not in behind else "its views were not rebuilt"
            changes[key] = f"fingerprint {before.token if before else 'none'} -> {now.token}: {why}"
    tokens = {key: current[key].token for key in changes}
    found = Survey(complete, ingest_states(instance, complete, tokens), changes)
    registered = set(instance.get_dynamic_partitions(sessions.name))
    _note_waiting(found, reading.listed, ingested_sessions(instance) & registered)
    return found


def _note_waiting(found: Survey, listed: list[SessionInfo], done: set[str]) -> None:
    """Name each session that is not complete and matters: ingested before and recording
    again, of an unknown status, or ``error`` with no end (not a plain recording one); and
    each ingested session the source no longer lists (deleted from the collector)."""
    listed_keys = {session_key(info.session_id) for info in listed}
    gone = sorted(done - listed_keys, key=lambda key: (len(key), key))
    for key in gone:
        found.waiting.append(
            f"session {key} was ingested but the source no longer lists it: its views stay "
            f"in use (delete its partition {key} to leave it out)"
        )
    for info in listed:
        key = session_key(info.session_id)
        if info.is_complete:
            continue
        if key in done:
            found.recording_again.append(key)
            found.waiting.append(
                f"session {key} is being recorded again ({info.incomplete_reason}): its views "
                "from the earlier ingest stay in use; it is ingested again once it ends"
            )
        elif not info.status_is_known or info.status != SessionStatus.ACTIVE:
            found.waiting.append(f"session {key} is {info.incomplete_reason}: not ingested")
