"""Cleaning a session too big to hold in memory, a group of markets at a time.

:func:`~.cleaning.pipeline.clean_session` holds the whole raw session and its cleaned columns.
:class:`CleanedGroups` reads a :class:`~kalshi_pipeline.sources.raw.SessionBatches` (a
stored session opened with ``ParquetSessionStore.open_session``) in three passes, none
holding more than one batch of rows or one group of markets:

1. the outline (:func:`~.cleaning.outline.outline_session`): the narrow columns only, for the
   usable markets, their row counts and the median of the sequence numbers;
2. bucketing: each batch's usable rows are appended, in storage order, to an Arrow IPC
   file of their group in a scratch directory (groups of whole markets, in ticker order,
   of at most ``max_events`` rows, a bigger market alone);
3. per group: its two buckets are read and cleaned (:func:`~.cleaning.pipeline.clean_markets`),
   the cleaned events are written to the scratch directory (``CleanEvents.save``) and
   the buckets deleted.

The checks that read the whole session take what they need from the outline (outliers,
the recorded window) or from a :class:`~.cleaning.sequence.SequenceTally` counted after the last
group (gaps, numbers two markets share). The trade tape, far smaller than the deltas, is
held whole (``session.trades``) and checked once after the outline
(:func:`~.cleaning.trades.usable_trades`); each group takes its markets' trades. So the
repairs, the rejections and every market's events and trades are those of
``clean_session`` on the whole session (tested); only which examples of a kind are kept
(20 at most) may differ. What holds a value per event of
the whole session (the outline's sequence numbers, the tally, 20 bytes an event) is kept
in files in the scratch directory and memory-mapped when read (:mod:`.spill`); memory
holds one group. Scratch also holds the usable rows once more (IPC, uncompressed, about
as much as the rows take in memory) and the cleaned events.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa

from kalshi_pipeline.market.cleaning.events import CleanEvents
from kalshi_pipeline.market.cleaning.outline import outline_session, usable_rows
from kalshi_pipeline.market.cleaning.pipeline import clean_markets
from kalshi_pipeline.market.cleaning.report import IngestReport
from kalshi_pipeline.market.cleaning.sequence import SequenceTally
from kalshi_pipeline.market.cleaning.trades import usable_trades
from kalshi_pipeline.sources.raw import DELTA_SCHEMA, SNAPSHOT_SCHEMA, TABLES, SessionBatches

# Bucket files open at once, per table. A session of more than this many groups gets
# bigger groups instead (and needs more memory per group).
MAX_GROUPS = 256
_SCHEMAS = dict(zip(TABLES, (SNAPSHOT_SCHEMA, DELTA_SCHEMA), strict=True))


class CleanedGroups:
    """One session cleaned a group of markets at a time, spilled to ``scratch``.

    The outline is read when this is made; :meth:`clean` cleans and yields each group,
    after which ``report`` is complete; :meth:`cleaned` reads the groups back, as often
    as needed. ``scratch`` must exist; the caller removes it.
    """

    def __init__(self, session: SessionBatches, max_events: int, scratch: Path) -> None:
        self.report = IngestReport(session.info.session_id)
        self._session = session
        self._outline = outline_session(session, self.report, scratch)
        self._trades = usable_trades(session.trades, self._outline, self.report)
        least = -(-int(self._outline.rows.sum()) // MAX_GROUPS)
        self._groups = self._outline.groups(max(max_events, least))
        self._scratch = scratch
        self._spilled: list[Path] = []

    def clean(self) -> Iterator[CleanEvents]:
        """Clean, spill and yield each group in ticker order; then count the tally."""
        tally = SequenceTally(self._outline, self._scratch)
        buckets = self._bucket()
        for index in range(len(self._groups)):
            tables = []
            for table in TABLES:
                path = buckets.get((table, index))
                tables.append(_read(path) if path else _SCHEMAS[table].empty_table())
                if path:
                    path.unlink()
            tickers = self._groups[index]
            events = clean_markets(
                *tables, tickers, self._outline, self.report, tally, self._trades
            )
            del tables
            spilled = self._scratch / f"events-{index}.npz"
            events.save(spilled)
            self._spilled.append(spilled)
            yield events
        tally.count(self.report)

    def cleaned(self) -> Iterator[CleanEvents]:
        """The groups cleaned by :meth:`clean`, read back one at a time."""
        for path in self._spilled:
            yield CleanEvents.load(path, self._outline.session_id, self.report)

    def _bucket(self) -> dict[tuple[str, int], Path]:
        """Each usable row appended to its group's IPC file; the files by (table, group)."""
        group_of = {ticker: g for g, tickers in enumerate(self._groups) for ticker in tickers}
        paths: dict[tuple[str, int], Path] = {}
        for table in TABLES:
            writers: dict[int, pa.ipc.RecordBatchFileWriter] = {}
            try:
                for batch in self._session.batches(table):
                    rows = usable_rows(pa.Table.from_batches([batch]))
                    if not rows.num_rows:
                        continue
                    encoded = rows.column("market_ticker").combine_chunks().dictionary_encode()
                    groups = np.array([group_of[t] for t in encoded.dictionary.to_pylist()])
                    group = groups[encoded.indices.to_numpy(zero_copy_only=False)]
                    order = np.argsort(group, kind="stable")  # storage order within a group
                    rows, group = rows.take(order), group[order]
                    starts = np.flatnonzero(np.r_[True, group[1:] != group[:-1]])
                    for start, stop in zip(starts, np.r_[starts[1:], len(group)], strict=True):
                        g = int(group[start])
                        if g not in writers:
                            paths[table, g] = self._scratch / f"{table}-{g}.arrow"
                            writers[g] = pa.ipc.new_file(paths[table, g], rows.schema)
                        writers[g].write_table(rows.slice(start, stop - start))
            finally:
                for writer in writers.values():
                    writer.close()
        return paths


def _read(path: Path) -> pa.Table:
    with pa.OSFile(str(path)) as source:
        return pa.ipc.open_file(source).read_all()
