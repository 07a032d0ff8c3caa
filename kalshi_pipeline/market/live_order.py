"""What the live path settles about a commit's rows before cleaning them (:mod:`.streaming`).

A market the live path has stepped goes into its next rows as a snapshot of its book,
numbered and timed as its last event. Rows numbered at or below that number came after
rows numbered above them: the batch path sorts them into place, the live path cannot
(their steps are taken), so they are dropped and counted, unless a snapshot numbered so
came with them: a reconnect restarts a market's numbers, and cleaning's restart rule
(:mod:`.cleaning.restarts`) judges it on the carried snapshot and the new rows. Rows
received in the millisecond of a market's last step split that step's commit. Deltas of a
market with no snapshot yet wait for its first (:class:`EarlyDeltas`), so that cleaning
sees them together, as the batch path does.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Container, Mapping
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from kalshi_pipeline.market.books import SessionBooks
from kalshi_pipeline.market.cleaning.events import CleanEvents
from kalshi_pipeline.market.cleaning.price_maps import KnownBooks
from kalshi_pipeline.market.cleaning.restarts import RESTART_MIN_DROP
from kalshi_pipeline.market.features import MarketOrigin
from kalshi_pipeline.sources.raw import LEVELS

_NO_ROWS = np.zeros(0, bool)  # a mask of no rows (read only)
_NO_ROWS.flags.writeable = False


@dataclass
class LiveMarket:
    """What the live path keeps of one market between commits."""

    book: np.ndarray  # int64[198]: the whole book after its last event
    last_seq: int  # the number of its last event
    last_ms: int  # the receive time of its last event (as cleaning left it)
    segment_first: int  # the number of the snapshot its segment began with
    steps: int  # time steps so far
    history: SessionBooks  # its latest steps: the features' window (:mod:`.streaming`)
    origin: MarketOrigin
    pending_trades: list[pa.Table] = field(default_factory=list)
    segment_ms: int = np.iinfo(np.int64).min  # when a restart taken live began its segment
    top_ms: int = np.iinfo(np.int64).min  # its latest step time (times never go back)


def against_last_step(table: pa.Table, markets: Mapping[str, LiveMarket]) -> tuple[np.ndarray, ...]:
    """Per row of ``table`` (usable rows): whether it is numbered at or below its market's
    last event, whether it was received in that event's millisecond, and whether before
    its market's segment began (all False for a market not in ``markets``)."""
    if not table.num_rows:
        return _NO_ROWS, _NO_ROWS, _NO_ROWS
    lowest = np.iinfo(np.int64).min
    known = [markets.get(ticker) for ticker in table.column("market_ticker").to_pylist()]
    floor = np.array([lowest if m is None else m.last_seq for m in known], np.int64)
    step_ms = np.array([lowest if m is None else m.last_ms for m in known], np.int64)
    begun = np.array([lowest if m is None else m.segment_ms for m in known], np.int64)
    below = table.column("sequence_number").to_numpy() <= floor
    ms = table.column("timestamp_ms").to_numpy()
    return below, ms == step_ms, ms < begun


def placeable(
    snapshots: pa.Table, deltas: pa.Table, markets: Mapping[str, LiveMarket], live_only: Counter
) -> tuple[pa.Table, pa.Table, dict[str, int]]:
    """The rows (sequence outliers dropped) the live path can place: rows received in a
    stepped market's last millisecond are counted in ``live_only`` (a split commit: they
    make a step of their own, where the batch path merges them); rows received before
    their market's segment began (a restart taken live) are dropped and counted (the
    batch path puts them in the segment before, whose steps are taken); deltas at or
    below their market's last number are dropped and counted, unless a snapshot so
    numbered came too. Returns those markets too, with that snapshot's number and time:
    cleaning judges whether it restarts them (:func:`refused_restarts`)."""
    if not markets:
        return snapshots, deltas, {}
    snapshots, low_snapshots, split_snapshots = _after_segment_start(snapshots, markets, live_only)
    deltas, low_deltas, split_deltas = _after_segment_start(deltas, markets, live_only)
    live_only["millisecond_split_across_commits"] += int(split_snapshots.sum() + split_deltas.sum())
    restarting = lowest_numbers(snapshots, low_snapshots) if low_snapshots.any() else {}
    late = low_deltas & ~of_markets(deltas, restarting) if restarting else low_deltas
    if late.any():
        live_only["delta_at_or_below_last_number"] += int(late.sum())
        deltas = deltas.filter(pa.array(~late))
    return snapshots, deltas, restarting


def _after_segment_start(table: pa.Table, markets, live_only: Counter) -> tuple:
    """``table`` without the rows received before their market's segment began (counted),
    and the first two masks of :func:`against_last_step` for the rows kept."""
    below, split, earlier = against_last_step(table, markets)
    if earlier.any():
        live_only["row_of_an_earlier_segment"] += int(earlier.sum())
        table, below, split = table.filter(pa.array(~earlier)), below[~earlier], split[~earlier]
    return table, below, split


def carried_books(tickers: list[str], markets: Mapping[str, LiveMarket]) -> KnownBooks:
    """Each market's book as a snapshot numbered and timed as its last event."""
    carried = [markets[ticker] for ticker in tickers]
    books = [market.book for market in carried]
    return KnownBooks(
        tickers=tickers,
        sequence_number=np.array([market.last_seq for market in carried], np.int64),
        timestamp_ms=np.array([market.last_ms for market in carried], np.int64),
        books=np.stack(books) if books else np.zeros((0, 2 * LEVELS), np.int64),
    )


def refused_restarts(
    events: CleanEvents,
    rejected: Container[str],
    restarting: Mapping[str, tuple[int, int]],
    markets: Mapping[str, LiveMarket],
    live_only: Counter,
) -> set[str]:
    """The markets ``restarting`` (each with the number and time of its lowest-numbered
    snapshot at or below its last) whose rows cleaning did not take as a restart: it
    sorted some before
    their carried snapshot, or ``rejected`` them. A restart taken on a number above the
    one its segment began with, less than ``RESTART_MIN_DROP`` below the last, may be
    one the batch path refuses (it reads the segment's earlier numbers and times, which
    the live path does not keep): counted in ``live_only``."""
    refused = set()
    position = {ticker: i for i, ticker in enumerate(events.tickers)}
    offsets = np.searchsorted(events.market, np.arange(len(events.tickers) + 1))
    for ticker, (number, ms) in restarting.items():
        market, index = markets[ticker], position.get(ticker)
        first = -1 if index is None else int(offsets[index])
        carried_first = first >= 0 and bool(
            events.is_snapshot[first]
            and events.sequence_number[first] == market.last_seq
            and events.timestamp_ms[first] == market.last_ms
        )
        if ticker in rejected or not carried_first:
            refused.add(ticker)
            continue
        later = events.sequence_number[first + 1 : int(offsets[index + 1])]
        if not (later <= market.last_seq).any():
            continue  # no restart: the snapshot was a copy of the carried one
        if number > market.segment_first and market.last_seq - number < RESTART_MIN_DROP:
            live_only["restart_judged_on_recent_rows"] += 1
        market.segment_first, market.segment_ms = number, ms
    return refused


def without_low_numbers(
    tables: tuple[pa.Table, pa.Table],
    tickers: set[str],
    markets: Mapping[str, LiveMarket],
    live_only: Counter,
) -> tuple[pa.Table, pa.Table]:
    """The (snapshots, deltas) without those of the markets ``tickers`` numbered at or
    below their last (counted in ``live_only``): they came late."""
    kept = []
    for kind, table in zip(("snapshot", "delta"), tables, strict=True):
        late = against_last_step(table, markets)[0] & of_markets(table, tickers)
        live_only[f"{kind}_at_or_below_last_number"] += int(late.sum())
        kept.append(table.filter(pa.array(~late)))
    return kept[0], kept[1]


def lowest_numbers(table: pa.Table, rows: np.ndarray) -> dict[str, tuple[int, int]]:
    """The lowest number of ``rows`` (a mask of ``table``) of each market, with its time."""
    tickers = pc.filter(table.column("market_ticker"), pa.array(rows)).to_pylist()
    numbers = table.column("sequence_number").to_numpy()[rows].tolist()
    times = table.column("timestamp_ms").to_numpy()[rows].tolist()
    lowest: dict[str, tuple[int, int]] = {}
    for ticker, number, ms in zip(tickers, numbers, times, strict=True):
        lowest[ticker] = min(lowest.get(ticker, (number, ms)), (number, ms))
    return lowest


def of_markets(table: pa.Table, tickers) -> np.ndarray:
    """Mask of ``table``'s rows of the markets ``tickers``."""
    value_set = pa.array(sorted(tickers), pa.string())
    return pc.is_in(table.column("market_ticker"), value_set).to_numpy(zero_copy_only=False)


class NoTally:
    """The sequence tally cleaning adds to (:class:`~.cleaning.sequence.SequenceTally`),
    for the live path, which keeps none: gaps and numbers shared by markets are counted
    once every market is cleaned, by the batch path."""

    def add(self, *events) -> None:
        """Nothing is tallied."""


class EarlyDeltas:
    """Deltas of markets with no step yet, held until a snapshot of their market comes:
    cleaning then drops those numbered before it (``delta_before_snapshot``) and keeps the
    ones numbered after it, as it does with all of a market's rows in the batch path."""

    def __init__(self) -> None:
        self._held: dict[str, list[pa.Table]] = {}

    def sort(self, deltas: pa.Table, waiting: set[str], opening: set[str]) -> pa.Table:
        """``deltas`` without those of the markets ``waiting`` (held), after the held
        deltas of the markets ``opening`` (a snapshot of theirs is among the rows)."""
        if waiting:
            tickers = deltas.column("market_ticker")
            for ticker in sorted(waiting):
                self._held.setdefault(ticker, []).append(deltas.filter(pc.equal(tickers, ticker)))
            deltas = deltas.filter(pa.array(~of_markets(deltas, waiting)))
        released = [t for t in sorted(opening) if t in self._held]
        if not released:
            return deltas
        return pa.concat_tables([*(part for t in released for part in self._held.pop(t)), deltas])

    def left(self) -> tuple[list[str], pa.Table] | None:
        """The markets still waiting and their deltas (the session closed), or None."""
        if not self._held:
            return None
        tickers = sorted(self._held)
        deltas = pa.concat_tables([part for t in tickers for part in self._held[t]])
        self._held = {}
        return tickers, deltas
