"""Resuming a followed session: its stored part replayed through a fresh trader and
checked against the stored records, nothing written.

The follower stored each write's cursor (``paper_polls``), so the replay feeds the trader
the collector's rows in exactly the groups the live run read them in: the rows with ids
up to the first write's cursor, then those up to the second's, and so on. The rows are
read in large pieces (a read never splits a receive millisecond) and cut at those ids.
What the replay records must equal what is stored, market by market
(:func:`~.records.compare`, and each market's model and end); the trader is then in the
state it had at the stored cursor.
"""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from kalshi_pipeline.paper.records import Records, compare
from kalshi_pipeline.paper.store import StoredSession
from kalshi_pipeline.paper.trader import PaperTrader
from kalshi_pipeline.sources.collector_tail import Cursor

_TABLES = ("snapshots", "deltas", "trades")


class ResumeMismatch(RuntimeError):
    """The replay of a session's stored part differs from its stored records; the
    message names the session, the market and the step."""


class RowBuffer:
    """Rows read ahead of the replay, each table in id order, cut at a cursor's ids."""

    def __init__(self) -> None:
        self.tables: dict[str, pa.Table | None] = {}
        self.ids: dict[str, np.ndarray] = {}
        self.start: dict[str, int] = {}  # the first row not taken yet
        self.read_to = Cursor()

    def add(self, found) -> None:
        for name in _TABLES:
            new = getattr(found, name)
            if new is None:
                self.tables[name] = None
                continue
            held = self.tables.get(name)
            if held is not None:
                new = pa.concat_tables([held.slice(self.start[name]), new]).combine_chunks()
            self.tables[name], self.start[name] = new, 0
            self.ids[name] = new.column("id").to_numpy()
        self.read_to = found.cursor

    def covers(self, cursor: Cursor) -> bool:
        return all(getattr(self.read_to, t) >= getattr(cursor, t) for t in _TABLES)

    def take(self, cursor: Cursor) -> list[pa.Table | None]:
        """Every held row with an id up to ``cursor``'s (taken out of the buffer)."""
        taken = []
        for name in _TABLES:
            table = self.tables.get(name)
            if table is None:
                taken.append(None)
                continue
            start = self.start[name]
            cut = int(np.searchsorted(self.ids[name], getattr(cursor, name), side="right"))
            cut = max(cut, start)
            taken.append(table.slice(start, cut - start))
            self.start[name] = cut
        return taken


def replay_to_cursor(
    collector,
    trader: PaperTrader,
    session_id: int,
    polls: list[Cursor],
    stored: StoredSession,
    limit: int,
) -> None:
    """Feed ``trader`` the rows of every stored write in turn (``polls``, their cursors),
    and check that it recorded ``stored``'s records (:class:`ResumeMismatch` if not)."""
    if (polls[-1] if polls else Cursor()) != stored.cursor:
        raise ResumeMismatch(
            f"session {session_id}: the paper database's cursor ({stored.cursor.describe()}) "
            "is not its last write's"
        )
    buffer, replayed = RowBuffer(), Records()
    for cursor in polls:
        while not buffer.covers(cursor):
            found = collector.read(session_id, buffer.read_to, limit)
            if not len(found):
                raise ResumeMismatch(
                    f"session {session_id}: the collector has no rows after "
                    f"{buffer.read_to.describe()}, but the paper database read up to "
                    f"{cursor.describe()}"
                )
            buffer.add(found)
        snapshots, deltas, trades = buffer.take(cursor)
        if snapshots.num_rows or deltas.num_rows or (trades is not None and trades.num_rows):
            replayed.extend(trader.add(snapshots, deltas, trades))
    problems = compare(replayed, stored.records) + market_differences(replayed, stored.records)
    if problems:
        more = f" (and {len(problems) - 1} more)" if len(problems) > 1 else ""
        raise ResumeMismatch(
            f"session {session_id}: replaying the collector's rows up to "
            f"{stored.cursor.describe()} does not give the stored records: {problems[0]}{more}"
        )


def market_differences(replayed: Records, stored: Records) -> list[str]:
    """Markets whose model or end differs (each market's latest record)."""
    ours = {m.market: m for m in replayed.markets}
    theirs = {m.market: m for m in stored.markets}
    return [
        f"{market}: market record {ours.get(market)} in the replay, {theirs.get(market)} stored"
        for market in sorted(set(ours) | set(theirs))
        if ours.get(market) != theirs.get(market)
    ]
