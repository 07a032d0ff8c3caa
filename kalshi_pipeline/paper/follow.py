"""Following a live session: the collector's new rows in, the paper trader's records out,
each poll written with its cursor in one transaction.

:func:`follow` finds the session the collector is recording (or the one asked for),
reads its rows after the stored cursor (:class:`~kalshi_pipeline.sources.collector_tail.
CollectorTail`), feeds them to a :class:`~.trader.PaperTrader`, and writes the records and
the new cursor together (:meth:`~.store.PaperStore.write`), on a thread of its own while
it reads and decides the next rows (:mod:`.write_behind`). When the session row says the
session ended, it reads what is left, plays every market's last action
(:meth:`~.trader.PaperTrader.close`), writes that, and marks the session closed; then it
waits for the next live session.

* **Whole milliseconds.** The live path must see each receive millisecond whole; the
  collector commits a millisecond at once and a read is one snapshot, so a read never
  splits one. A catch-up read is limited to :data:`READ_LIMIT_ROWS` rows a table, and the
  tail ends such a read before the millisecond it would have cut, read next time.
* **Resume.** A follower killed at any point left the records of the rows up to its
  stored cursor, nothing more, nothing less. Started again, it replays the collector's
  rows up to that cursor through a fresh trader, in the groups it read them (each write's
  cursor is stored), with each market it had started pinned to the model that played it;
  what the replay makes must equal the stored records (:class:`ResumeMismatch` otherwise,
  naming session, market and step), and nothing of it is written again. Then it goes on
  from the cursor. Following the live session, it first finishes the sessions of its
  collector that the paper database holds as still followed and the collector has
  closed since (it was stopped before their close): each is resumed and closed.
* **Faults.** A collector that cannot be read is read again after 0.5 s, then twice as
  long each time up to 30 s, said each time; the paper database's writes retry the same
  way (:mod:`.store`). A session that gets no new row for ``stall_seconds`` while still
  recording is said to have stalled, and said again when rows resume.
* **A collector restart.** A collector that crashed leaves its session ``active`` with no
  end, and starts a new one when it comes back. Following the live session, a follower
  whose session got no row for ``stall_seconds`` looks for the live session (then again
  every ``wait_seconds``); once another one is live, it leaves its own as followed so far
  (its records and cursor stay; following it by id resumes it) and follows the new one.
* **Garbage collection.** A follower holds about half a million objects that live as
  long as it does (the libraries' and the model's; the markets' books, windows, views and
  envs), and each of Python's full collections traverses them all: some 300 ms, every few
  thousand commits, on the way to a decision. After a read that started markets, and
  after a resume's replay, what lives is frozen (``gc.freeze``), and collections then
  traverse only what was made since (a full one: well under a millisecond). A frozen
  object is still freed when nothing refers to it; only garbage in a reference cycle
  made by those reads is kept.
* **The session's window.** The trader's cleaning keeps the receive times of the
  session's window, whose end is the session row's ``ended_at``, else its
  ``last_message_at``. Neither is known for good while the session records (a collector
  may keep ``last_message_at`` current): the trader is given the row without them, its
  window open, however far along the session was when following began or resumed. So a
  follower's records are the same whether it followed live, after the fact or resumed.
"""

from __future__ import annotations

import dataclasses
import gc
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

from kalshi_pipeline.paper.follow_replay import replay_to_cursor
from kalshi_pipeline.paper.records import MarketRecord
from kalshi_pipeline.paper.store import PaperStatus, PaperStore, StoredSession, StreamCounts
from kalshi_pipeline.paper.trader import PaperTrader
from kalshi_pipeline.paper.write_behind import WriteBehind
from kalshi_pipeline.sources.collector_connection import SourceMisconfigured, SourceUnavailable
from kalshi_pipeline.sources.collector_tail import (
    CollectorTail,
    Cursor,
    NewRows,
    SessionNotFound,
)
from kalshi_pipeline.sources.raw import SessionInfo

READ_LIMIT_ROWS = 20_000  # rows a table per read: a long session is caught up in pieces
WAIT_FOR_SESSION_S = 0.5  # between looks for a live session
FIRST_RETRY_S, MAX_RETRY_S = 0.5, 30.0

# A trader for a session, given the markets already played (pinned to their models).
MakeTrader = Callable[[SessionInfo, Mapping[str, MarketRecord]], PaperTrader]


@dataclass(frozen=True, kw_only=True)
class FollowSettings:
    """How :func:`follow` paces itself (seconds) and how much one read takes."""

    poll_seconds: float = 0.005
    stall_seconds: float = 30.0
    wait_seconds: float = WAIT_FOR_SESSION_S
    limit: int = READ_LIMIT_ROWS


class Collector:
    """The collector's tail read with retries: a read that fails for want of the
    database is said and tried again, with backoff, until it succeeds (a URL libpq
    cannot parse is raised at once: waiting cannot fix it)."""

    def __init__(self, tail: CollectorTail, say: Callable[[str], None], sleep=time.sleep):
        self.tail, self.say, self.sleep = tail, say, sleep

    def live_session(self) -> SessionInfo | None:
        return self._retrying(self.tail.live_session)

    def session(self, session_id: int) -> SessionInfo:
        return self._retrying(self.tail.session, session_id)

    def read(self, session_id: int, cursor: Cursor, limit: int | None) -> NewRows:
        return self._retrying(self.tail.read, session_id, cursor, limit)

    def _retrying(self, read: Callable, *args):
        delay, failed = FIRST_RETRY_S, False
        while True:
            try:
                found = read(*args)
            except SourceMisconfigured:
                raise
            except SourceUnavailable as exc:
                self.say(f"{exc}; retrying in {delay:g} s")
                self.sleep(delay)
                delay, failed = min(2 * delay, MAX_RETRY_S), True
                continue
            if failed:
                self.say("collector reachable again")
            return found


def follow(
    tail: CollectorTail,
    store: PaperStore,
    make_trader: MakeTrader,
    *,
    session_id: int | None = None,
    once: bool = False,
    poll_seconds: float = 0.005,
    stall_seconds: float = 30.0,
    say: Callable[[str], None] = print,
    source: str = "",
    limit: int = READ_LIMIT_ROWS,
) -> None:
    """Follow the live session (or ``session_id``) to its close, then, unless ``once`` or
    a session id was given, each live session after it (see the module docstring).
    ``source`` names the collector in the paper database (never its credentials);
    ``limit`` is the rows a table one read takes at most."""
    settings = FollowSettings(poll_seconds=poll_seconds, stall_seconds=stall_seconds, limit=limit)
    collector = Collector(tail, say)
    finished: set[int] = set()  # followed to their close: never the live session again
    live = session_id is None
    with WriteBehind(store) as writes:
        parts = (collector, store, writes, make_trader, settings, say, source)
        for info in _closed_while_away(collector, store, source) if live else []:
            SessionFollower(info, *parts).run()
            finished.add(info.session_id)
        while True:
            if session_id is not None:
                info = collector.session(session_id)
            else:
                info = _wait_for_live_session(collector, settings, say, finished)
            SessionFollower(info, *parts, live=live).run()
            finished.add(info.session_id)
            if once or session_id is not None:
                return


def _closed_while_away(collector: Collector, store: PaperStore, source: str) -> list[SessionInfo]:
    """The sessions of this collector (``source``) the paper database holds as still
    followed that the collector has closed since, by id: a follower stopped before
    their close (a session the collector no longer has is left as it is)."""
    closed = []
    for summary in store.sessions():
        if summary.status != PaperStatus.FOLLOWING or summary.source != source:
            continue
        try:
            info = collector.session(summary.session_id)
        except SessionNotFound:
            continue
        if info.is_complete:
            closed.append(info)
    return sorted(closed, key=lambda info: info.session_id)


def _wait_for_live_session(
    collector: Collector, settings: FollowSettings, say: Callable[[str], None], finished
) -> SessionInfo:
    """The live session, once there is one not ``finished`` (a session row still active
    but with an end time is complete: it is not followed twice)."""
    said = False
    while (info := collector.live_session()) is None or info.session_id in finished:
        if not said:
            say("waiting for a live session")
            said = True
        time.sleep(settings.wait_seconds)
    return info


class SessionFollower:
    """One session followed to its close (see the module docstring)."""

    def __init__(
        self,
        info: SessionInfo,
        collector: Collector,
        store: PaperStore,
        writes: WriteBehind,
        make_trader: MakeTrader,
        settings: FollowSettings,
        say: Callable[[str], None],
        source: str,
        *,
        live: bool = False,
    ) -> None:
        self.info, self.session_id = info, info.session_id
        self.collector, self.store, self.settings = collector, store, settings
        self.writes = writes  # each poll's write, made behind the loop (.write_behind)
        self.make_trader, self.say, self.source = make_trader, say, source
        self.stall = StallWatch(self.session_id, settings.stall_seconds, say)
        self.live = live  # following the live session: leave it when another is live
        self._next_look = 0.0  # monotonic time of the next look for another live session

    def run(self) -> None:
        self.writes.flush()  # the store as every write so far left it
        stored = self.store.load(self.session_id)
        if stored is not None and stored.status == PaperStatus.CLOSED:
            self.say(f"session {self.session_id} was already followed to its close")
            return
        trader, cursor = self._start(stored)
        self.stall.rows_came()  # quiet time counts from here, not from before a replay
        while True:
            found = self.collector.read(self.session_id, cursor, self.settings.limit)
            if len(found):
                markets = len(trader.episodes)
                records = trader.add(found.snapshots, found.deltas, found.trades)
                decided_at = time.time()
                if len(trader.episodes) > markets:
                    gc.freeze()  # see the module docstring: "Garbage collection"
                self.stall.rows_came()
                self.writes.write(
                    self.session_id, records, found.cursor, decided_at,
                    stream_counts=StreamCounts.of(trader.stream),
                )  # fmt: skip
                cursor = found.cursor
            elif found.info.is_complete:  # the snapshot that says so holds every row
                self._close(trader, cursor)
                return
            elif self._left_for_another(cursor):
                return
            else:
                self.stall.no_rows()
                time.sleep(self.settings.poll_seconds)

    def _left_for_another(self, cursor: Cursor) -> bool:
        """Whether another session is live while this one, following the live session,
        got no row for ``stall_seconds`` (its collector restarted): said, and left."""
        now = time.monotonic()
        quiet = self.stall.quiet_seconds()
        if not self.live or quiet < self.settings.stall_seconds or now < self._next_look:
            return False
        self._next_look = now + self.settings.wait_seconds
        live = self.collector.live_session()
        if live is None or live.session_id == self.session_id:
            return False
        self.say(
            f"session {self.session_id} got no row for {quiet:.0f} s and "
            f"session {live.session_id} is live now (the collector restarted): session "
            f"{self.session_id} is left as followed so far, up to {cursor.describe()}"
        )
        return True

    def _start(self, stored: StoredSession | None) -> tuple[PaperTrader, Cursor]:
        """A trader ready for the rows after the stored cursor (the session begun in the
        store if it is new there, its state replayed if not)."""
        info = _as_recording(self.info)
        if stored is None:
            trader = self.make_trader(info, {})
            self.store.begin(self.session_id, self.source, trader.config.to_json())
            self.say(f"following session {self.session_id}")
            return trader, Cursor()
        started = {market.market: market for market in stored.records.markets}
        trader = self.make_trader(info, started)
        self.say(
            f"resuming session {self.session_id} after {stored.cursor.describe()}: replaying "
            f"{len(started)} markets' {len(stored.records.decisions)} decisions"
        )
        polls = self.store.polls(self.session_id)
        replay_to_cursor(
            self.collector, trader, self.session_id, polls, stored, self.settings.limit
        )
        self.say(f"session {self.session_id}: the replay equals the stored records; following")
        gc.freeze()
        return trader, stored.cursor

    def _close(self, trader: PaperTrader, cursor: Cursor) -> None:
        records = trader.close()
        decided_at = time.time()
        self.writes.write(
            self.session_id, records, cursor, decided_at,
            status=PaperStatus.CLOSED, stream_counts=StreamCounts.of(trader.stream),
        )  # fmt: skip
        self.writes.flush()
        [summary] = self.store.sessions(self.session_id)
        self.say(
            f"session {self.session_id} closed: {summary.markets} markets, "
            f"{summary.decisions} decisions, {summary.fills} fills, "
            f"reward {summary.reward:+.4f}, fees {summary.fees_cents} cents"
        )


class StallWatch:
    """Says once when a session still recording got no row for ``stall_seconds``, and
    once when rows come again."""

    def __init__(self, session_id: int, stall_seconds: float, say: Callable[[str], None]):
        self.session_id, self.stall_seconds, self.say = session_id, stall_seconds, say
        self.last_row = time.monotonic()
        self.stalled = False

    def quiet_seconds(self) -> float:
        """Seconds since the last row came (or since watching began)."""
        return time.monotonic() - self.last_row

    def no_rows(self) -> None:
        quiet = self.quiet_seconds()
        if not self.stalled and quiet >= self.stall_seconds:
            self.stalled = True
            self.say(
                f"collector stalled: no new row of session {self.session_id} for "
                f"{self.stall_seconds:g} s"
            )

    def rows_came(self) -> None:
        now = time.monotonic()
        if self.stalled:
            self.say(f"collector resumed after {now - self.last_row:.1f} s")
            self.stalled = False
        self.last_row = now


def _as_recording(info: SessionInfo) -> SessionInfo:
    """The session row as it reads while the session records: no end, no last message
    (see the module docstring: the trader's window stays open)."""
    return dataclasses.replace(info, ended_at=None, last_message_at=None)
