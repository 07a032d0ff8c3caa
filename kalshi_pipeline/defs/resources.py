"""The pipeline's one resource: where sessions come from and where artifacts go.

The session source is the local Parquet store under ``$KALSHI_PIPELINE_HOME/sessions``
by default, or the collector's Postgres when ``KALSHI_COLLECTOR_URL`` is set. The URL is
read from the environment when a source is needed and never stored in config, logs or
metadata. Artifacts (normalised raw sessions, views, scores, models, reports) live under
``$KALSHI_PIPELINE_HOME/artifacts``. A home holds the sessions of one source: the first
successful ingest records it (``artifacts/source.json``), and a home used with another
source fails with :class:`SourceMismatch` before anything is read or counted as ingested.

Reading the source may fail for a while (the collector restarts, the network drops):
``raw_sessions`` retries a failed read twice (``SOURCE_RETRY_POLICY``), after
``KALSHI_SOURCE_RETRY_DELAY_SECONDS`` (default 10, at most an hour) and then three times that,
so an outage of up to ~40 s does not fail the run. The step waits itself, before it fails
(:func:`wait_before_source_retry`), and Dagster retries it at once: Dagster's own retry delay
is a ``time.sleep`` in the in-process executor (the demo's) that ignores SIGTERM, while a
step's wait is ended by it at once (Dagster raises interrupts inside a step). Every setting is
checked when the definitions load (:func:`resources`), so a bad one names itself there.
Tests set a tiny delay so that a failing ingest fails fast.
"""

import json
import os
import shutil
import socket
import time
from pathlib import Path

import dagster as dg

from kalshi_pipeline.market.views import (
    Footer,
    MarketSessionView,
    RawCopy,
    ViewsChanged,
    ViewsDamaged,
    read_views,
    views_footer,
)
from kalshi_pipeline.paths import artifacts_dir, pipeline_home, sessions_dir
from kalshi_pipeline.runtime import keep_freed_memory
from kalshi_pipeline.sources import ParquetSessionStore, PostgresSessionSource, SessionSource
from kalshi_pipeline.sources.redaction import redact
from kalshi_pipeline.sources.settings import COLLECTOR_URL, SOURCE_RETRY_DELAY, check_all

# Tags an ingest run that failed because the collector could not be reached at all: the
# session is not at fault, so the sensor does not count the run as one of its attempts.
SOURCE_DOWN_TAG = "kalshi_pipeline/source_down"
SOURCE_RETRY_DELAY_ENV = SOURCE_RETRY_DELAY.name
SOURCE_RETRIES = 2
# No delay here: the step waits before it fails (wait_before_source_retry). Only a source
# that cannot be reached waits and is retried: an error a retry cannot change (a damaged
# store, a session not there) is raised as dg.Failure(allow_retries=False) by the step.
SOURCE_RETRY_POLICY = dg.RetryPolicy(max_retries=SOURCE_RETRIES)


def source_retry_wait_s(retry_number: int) -> float:
    """Seconds to wait after failed attempt ``retry_number`` (0 first) before the next:
    the delay, then three times it (Dagster's exponential backoff), 0 after the last."""
    if retry_number >= SOURCE_RETRIES:
        return 0.0
    return SOURCE_RETRY_DELAY.read() * (2 ** (retry_number + 1) - 1)


def wait_before_source_retry(context: dg.AssetExecutionContext) -> None:
    """Wait, inside the failing step, before Dagster retries it (see the module notes).

    SIGTERM (or a run's termination) ends the wait at once: inside a step Dagster's
    signal handler raises, and ``time.sleep`` gives way to it. The step then fails without
    a retry, so the run ends.
    """
    wait_s = source_retry_wait_s(context.retry_number)
    if wait_s > 0:
        context.log.warning(
            f"reading the source failed; retrying in {wait_s:g} s "
            f"(attempt {context.retry_number + 2} of {SOURCE_RETRIES + 1}; "
            f"{SOURCE_RETRY_DELAY.name}={SOURCE_RETRY_DELAY.read():g})"
        )
        try:
            time.sleep(wait_s)
        except (dg.DagsterExecutionInterruptedError, KeyboardInterrupt):
            # Dagster retries an interrupted step that has a retry policy: a stop request
            # ends the run instead.
            raise dg.Failure(
                "interrupted while waiting to retry reading the source (SIGTERM, SIGINT or "
                "the run's termination): not retried",
                allow_retries=False,
            ) from None


def redact_source_error(exc: BaseException) -> str:
    """``Type: message`` of a source failure, without the collector's credentials.

    The sources already keep the URL out of their errors; this is the second lock on the
    door, for messages that come from a driver unchanged.
    """
    return redact_collector(f"{type(exc).__name__}: {exc}".strip())


def redact_collector(text: str) -> str:
    """``text`` without the collector URL's credentials (or any other visible password)."""
    return redact(text, COLLECTOR_URL.read())


class SourceMismatch(RuntimeError):
    """The pipeline home was filled from another session source."""


SOURCE_FILE = "source.json"  # in artifacts/: the source this home's sessions came from


class PipelineResource(dg.ConfigurableResource):
    """Paths and the session source. ``home`` unset: ``$KALSHI_PIPELINE_HOME``."""

    home: str | None = None

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # Where runs execute: keep freed buffers for the next array (see runtime.py).
        keep_freed_memory()

    @property
    def home_path(self) -> Path:
        return pipeline_home(self.home)

    @property
    def artifacts(self) -> Path:
        return artifacts_dir(self.home_path)

    def source(self) -> SessionSource:
        url = COLLECTOR_URL.read()
        if url:
            return PostgresSessionSource(url)
        return ParquetSessionStore(sessions_dir(self.home_path))

    def source_kind(self) -> str:
        return "collector postgres" if COLLECTOR_URL.read() else "local parquet"

    def source_identity(self) -> str:
        """Which source this is, without credentials: the collector's host:port/database
        and the schema its tables resolve to (its URL's options may pick another one:
        :meth:`PostgresSessionSource.identity`, which asks the server), or the home's own
        local store."""
        source = self.source()
        if isinstance(source, PostgresSessionSource):
            return f"collector postgres {source.identity()}"
        return "local parquet store <home>/sessions"

    def check_source(self) -> None:
        """Raise :class:`SourceMismatch` if this home's artifacts came from another source.

        Session ids are the source's own: sessions of two sources in one home (views,
        raw copies, the instance's partitions) would be taken for each other.
        """
        claimed = self._claim_path()
        if not claimed.exists():
            return
        recorded = json.loads(claimed.read_text())["source"]
        if recorded != self.source_identity():
            raise SourceMismatch(
                f"the pipeline home {self.home_path} holds sessions ingested from {recorded}, "
                f"and the source is now {self.source_identity()}: their session ids would mix "
                "(use another home for this source: --home or KALSHI_PIPELINE_HOME, and "
                "another DAGSTER_HOME)"
            )

    def claim_source(self) -> None:
        """Record this home's source (after its first successful ingest)."""
        claimed = self._claim_path()
        if claimed.exists():
            return
        claimed.parent.mkdir(parents=True, exist_ok=True)
        tmp = claimed.with_name(f".{claimed.name}.{os.getpid()}")
        tmp.write_text(json.dumps({"source": self.source_identity()}) + "\n")
        os.replace(tmp, claimed)

    def _claim_path(self) -> Path:
        return self.artifacts / SOURCE_FILE

    def raw_store(self, session_id: int | str) -> ParquetSessionStore:
        """The normalised copy of one ingested raw session (what ``raw_sessions`` writes).

        One store per session: a store's catalog assumes a single writer, and ingest runs
        of different sessions run concurrently.
        """
        return ParquetSessionStore(self.artifacts / "raw" / f"session-{int(session_id)}")

    def scratch(self) -> Path:
        """This process's directory for big intermediate files while a step runs.

        Each step removes its own files; a step killed mid-way cannot, so each process
        works in ``artifacts/scratch/pid-<pid>-on-<host>`` and this first deletes the
        directories of this host's processes that are gone (artifacts may be shared by
        workers on several machines: another host's are left to it).
        """
        root, host = self.artifacts / "scratch", socket.gethostname()
        root.mkdir(parents=True, exist_ok=True)
        for leftover in root.glob(f"pid-*-on-{host}"):
            pid = leftover.name.removeprefix("pid-").split("-on-", 1)[0]
            if pid.isdigit() and not _alive(int(pid)):
                shutil.rmtree(leftover, ignore_errors=True)
        path = root / f"pid-{os.getpid()}-on-{host}"
        path.mkdir(exist_ok=True)
        return path

    def views_path(self, session_id: int | str) -> Path:
        return self.artifacts / "views" / f"session-{int(session_id)}.parquet"

    def session_views(self, session_id: int, version: str | None = None) -> list[MarketSessionView]:
        """The views ``market_views`` wrote for one session; with ``version`` (the split's
        pin, ``Split.views_versions``), at that version.

        Neither a damaged file nor one replaced since the split was made (the session
        ingested again mid-run) can come right by retrying the step: both fail it with a
        :class:`dagster.Failure` that is not retried, naming the session and the file.
        """
        path = self.views_path(session_id)
        try:
            return read_views(path, int(session_id), version, self._raw_copy(session_id))
        except ViewsChanged as exc:
            raise dg.Failure(
                f"session {session_id}'s views changed since this training's split was made "
                f"(the session was ingested again): views file {path} is now version "
                f"{exc.found[:12]}, not {exc.pinned[:12]}; run train_and_evaluate again "
                "(a new split of the current views)",
                allow_retries=False,
            ) from exc
        except ViewsDamaged as exc:
            raise dg.Failure(str(exc), allow_retries=False) from exc

    def session_views_footer(self, session_id: int) -> Footer:
        """The footer of the views ``market_views`` wrote for one session (its views'
        statistics and its version), verified as :meth:`session_views` verifies the file:
        :class:`ViewsDamaged` if it is damaged, of another session, or built from another
        raw copy of the session than this home's."""
        path = self.views_path(session_id)
        return views_footer(path, int(session_id), self._raw_copy(session_id))

    def _raw_copy(self, session_id: int) -> RawCopy:
        """This home's raw copy of the session (the SHA-256 of its ``digests.json``), which
        the session's views file must record as what it was built from;
        :class:`ViewsDamaged` if this home has no raw copy of the session."""
        store = self.raw_store(session_id)
        try:
            return RawCopy(store.digests_sha256(int(session_id)))
        except KeyError:
            raise ViewsDamaged(
                self.views_path(session_id),
                int(session_id),
                f"this home has no raw copy of session {session_id} ({store.path}) to tell "
                "what it was built from (materialise its raw_sessions partition first)",
            ) from None


@dg.definitions
def resources() -> dg.Definitions:
    check_all()  # a bad KALSHI_* setting fails the load, named, before any run or tick
    return dg.Definitions(resources={"pipeline": PipelineResource()})


def _alive(pid: int) -> bool:
    """Whether a process with this id runs on this host (signal 0 checks, sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # someone else's process
    return True
