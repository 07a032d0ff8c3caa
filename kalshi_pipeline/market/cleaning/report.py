"""What cleaning found in one session: the kinds of repair, the issues and the report.

Every repair cleaning makes is one :class:`RepairKind`; :class:`IngestReport` counts them
per session, keeps a few named examples of each (:class:`DataIssue`) and holds the markets
it rejected. The report's counts and examples go into the ``market_views`` asset's
metadata and the ``data_quality`` check as they are (a :class:`RepairKind` is its string
there), and the defects among them lower a view's data quality
(:mod:`kalshi_pipeline.market.views`).
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Self

# The package's logger, so records keep the name they have always had.
log = logging.getLogger("kalshi_pipeline.market.cleaning")

MAX_EXAMPLES_PER_KIND = 20
# More than this share of a session's events outside its recorded window: the window
# contradicts the events (see IngestReport.window_contradiction).
MAX_OUTSIDE_WINDOW_SHARE = 0.5
# The kind of the issue that names a rejected market (a rejection, not a repair).
REJECTED_MARKET = "rejected_market"


class RepairKind(StrEnum):
    """Every repair cleaning counts (one row of the table in
    :mod:`kalshi_pipeline.market.cleaning` each); a member is its own string in reports."""

    MISSING_MARKET_TICKER = "missing_market_ticker"
    MISSING_SEQUENCE_NUMBER = "missing_sequence_number"
    MISSING_TIMESTAMP = "missing_timestamp"
    SEQUENCE_OUTLIER = "sequence_outlier"
    PRICE_OUT_OF_RANGE = "price_out_of_range"
    NEGATIVE_SIZE = "negative_size"
    SIZE_OUT_OF_RANGE = "size_out_of_range"
    UNKNOWN_SIDE = "unknown_side"
    UNKNOWN_ACTION = "unknown_action"
    DUPLICATE_SEQUENCE = "duplicate_sequence"
    SEQUENCE_SHARED = "sequence_shared"
    SEQUENCE_RESTART = "sequence_restart"
    STORED_OUT_OF_ORDER = "stored_out_of_order"
    DELTA_BEFORE_SNAPSHOT = "delta_before_snapshot"
    SEQUENCE_GAP = "sequence_gap"
    TIMESTAMP_OUT_OF_WINDOW = "timestamp_out_of_window"
    TIMESTAMP_BACKWARDS = "timestamp_backwards"
    TIMESTAMP_JITTER = "timestamp_jitter"
    CROSSED_BOOK = "crossed_book"
    MALFORMED_ASK_MAP = "malformed_ask_map"
    STORED_ASKS_DISAGREE = "stored_asks_disagree"
    # The trade tape (kalshi_pipeline.market.cleaning.trades): a bad trade is dropped,
    # named by its trade id; a trade off the recorded book is kept and flagged.
    TRADE_UNKNOWN_MARKET = "trade_unknown_market"
    TRADE_MISSING_ID = "trade_missing_id"
    TRADE_MISSING_TIMESTAMP = "trade_missing_timestamp"
    TRADE_TIMESTAMP_OUT_OF_WINDOW = "trade_timestamp_out_of_window"
    TRADE_PRICE_OUT_OF_RANGE = "trade_price_out_of_range"
    TRADE_PRICES_DISAGREE = "trade_prices_disagree"
    TRADE_COUNT_OUT_OF_RANGE = "trade_count_out_of_range"
    TRADE_UNKNOWN_TAKER_SIDE = "trade_unknown_taker_side"
    DUPLICATE_TRADE_ID = "duplicate_trade_id"
    TRADE_OFF_BOOK = "trade_off_book"

    @property
    def is_defect(self) -> bool:
        """Whether this repair means the market's own data was wrong (:data:`DEFECTS`)."""
        return self in DEFECTS


# Repairs that mean a market's own data was wrong (dropped events, crossed books, times
# that went back). The others fix the storage without losing or doubting anything
# (sorting rows, dropping an exact copy, ignoring stored asks, new segments) and do not
# lower a view's data quality. A time replaced because it fell outside the session's
# window (TIMESTAMP_OUT_OF_WINDOW) is not among them: the score's time factor, the share
# of steps whose time is real, counts it once (kalshi_pipeline.market.views.statistics).
# Nor are the trade tape's repairs: a bad trade says nothing about the book.
DEFECTS = frozenset(
    {
        RepairKind.PRICE_OUT_OF_RANGE,
        RepairKind.NEGATIVE_SIZE,
        RepairKind.SIZE_OUT_OF_RANGE,
        RepairKind.UNKNOWN_SIDE,
        RepairKind.UNKNOWN_ACTION,
        RepairKind.DELTA_BEFORE_SNAPSHOT,
        RepairKind.CROSSED_BOOK,
        RepairKind.MISSING_SEQUENCE_NUMBER,
        RepairKind.MISSING_TIMESTAMP,
        RepairKind.SEQUENCE_OUTLIER,
        RepairKind.TIMESTAMP_BACKWARDS,
    }
)


@dataclass(frozen=True, kw_only=True)
class DataIssue:
    """One problem in the data, and where it is: a repair (``kind`` a
    :class:`RepairKind`) or a rejection (``kind`` :data:`REJECTED_MARKET`). A trade's
    issue names its ``trade_id`` (Kalshi's); only such issues carry the key in JSON."""

    kind: RepairKind | str
    session_id: int
    market_ticker: str | None
    sequence_number: int | None
    message: str
    row_id: int | None = None
    trade_id: str | None = None

    def __str__(self) -> str:
        where = [f"session {self.session_id}"]
        if self.market_ticker is not None:
            where.append(f"market {self.market_ticker}")
        if self.trade_id is not None:
            where.append(f"trade {self.trade_id}")
        if self.sequence_number is not None:
            where.append(f"seq {self.sequence_number}")
        if self.row_id is not None:
            where.append(f"row id {self.row_id}")
        return f"{', '.join(where)}: {self.message}"

    def to_json(self) -> dict:
        data = {
            "kind": str(self.kind),
            "session_id": self.session_id,
            "market_ticker": self.market_ticker,
            "sequence_number": self.sequence_number,
            "message": self.message,
            "row_id": self.row_id,
        }
        if self.trade_id is not None:
            data["trade_id"] = self.trade_id
        return data

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        kind = data["kind"]
        return cls(
            kind=kind if kind == REJECTED_MARKET else RepairKind(kind),
            session_id=data["session_id"],
            market_ticker=data["market_ticker"],
            sequence_number=data["sequence_number"],
            message=data["message"],
            row_id=data["row_id"],
            trade_id=data.get("trade_id"),
        )


@dataclass
class IngestReport:
    """What cleaning repaired and which markets it rejected, for one session.

    Not frozen: cleaning, reconstruction and cutting views each add to it as they go.
    """

    session_id: int
    repairs: Counter = field(default_factory=Counter)
    examples: list[DataIssue] = field(default_factory=list)
    rejected: dict[str, DataIssue] = field(default_factory=dict)
    missing_sequence_numbers: int = 0
    sequence_span: int = 0  # highest - lowest sequence number + 1, summed over segments
    empty: bool = False
    market_defects: Counter = field(default_factory=Counter)  # ticker -> DEFECTS repaired
    timed_events: int = 0  # events whose time was checked against the recorded window
    inverted_window: str | None = None  # why the session's start is after its end

    def window_contradiction(self) -> str | None:
        """Why the session's recorded window contradicts its events, or None.

        It does when the session's ``started_at`` is after its ``ended_at``, or when more
        than :data:`MAX_OUTSIDE_WINDOW_SHARE` of its events (those cleaning kept) fell
        outside the window and had their times replaced: times in seconds instead of
        milliseconds, rows of another session, or a wrong start or end. Such a session's
        views keep their books but hardly any real time (their data quality says so); the
        ``data_quality`` check fails naming the session and this reason.
        """
        if self.inverted_window is not None:
            return self.inverted_window
        outside = self.repairs[RepairKind.TIMESTAMP_OUT_OF_WINDOW]
        if not self.timed_events or outside <= MAX_OUTSIDE_WINDOW_SHARE * self.timed_events:
            return None
        return (
            f"{outside} of its {self.timed_events} events "
            f"({outside / self.timed_events:.0%}) have receive times outside its recorded "
            "window (times in seconds instead of ms, rows of another session, or a wrong "
            "started_at/ended_at?)"
        )

    @property
    def missing_fraction(self) -> float:
        """Share of the session-wide sequence that never arrived."""
        return self.missing_sequence_numbers / self.sequence_span if self.sequence_span else 0.0

    def repair(
        self,
        kind: RepairKind,
        tickers,
        sequences,
        message: str,
        row_ids=None,
        count=None,
        trade_ids=None,
    ) -> None:
        """Count ``len(sequences)`` repairs of one kind (or ``count``, when only the
        first of them are given as examples), keeping a few named examples.

        ``tickers`` and ``sequences`` may hold ``None`` (unknown); ``row_ids`` names the
        rows where the sequence number cannot, ``trade_ids`` the trades repaired.
        """
        count = len(sequences) if count is None else count
        if count == 0:
            return
        self.repairs[kind] += count
        if kind in DEFECTS:
            self.market_defects.update(t for t in tickers if t is not None)
        ids = [None] * len(sequences) if row_ids is None else row_ids
        trades = [None] * len(sequences) if trade_ids is None else trade_ids
        named = list(zip(tickers, sequences, ids, trades, strict=True))
        room = max(MAX_EXAMPLES_PER_KIND - sum(e.kind == kind for e in self.examples), 0)
        for where in named[:room]:
            self.examples.append(self._issue(kind, *where, message=message))
        log.warning("%s (%d in this session)", self._issue(kind, *named[0], message=message), count)

    def reject(
        self, ticker: str, sequence_number: int | None, message: str, row_id: int | None = None
    ) -> None:
        """Exclude one market; the first reason given is the one kept."""
        if ticker in self.rejected:
            return
        issue = self._issue(REJECTED_MARKET, ticker, sequence_number, row_id, message=message)
        self.rejected[ticker] = issue
        log.error("%s; market excluded", issue)

    def to_json(self) -> dict:
        return {
            "session_id": self.session_id,
            "repairs": {str(kind): count for kind, count in self.repairs.items()},
            "examples": [issue.to_json() for issue in self.examples],
            "rejected": {ticker: issue.to_json() for ticker, issue in self.rejected.items()},
            "missing_sequence_numbers": self.missing_sequence_numbers,
            "sequence_span": self.sequence_span,
            "empty": self.empty,
            "market_defects": dict(self.market_defects),
            "timed_events": self.timed_events,
            "inverted_window": self.inverted_window,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(
            session_id=data["session_id"],
            repairs=Counter({RepairKind(k): n for k, n in data["repairs"].items()}),
            examples=[DataIssue.from_json(issue) for issue in data["examples"]],
            rejected={t: DataIssue.from_json(issue) for t, issue in data["rejected"].items()},
            missing_sequence_numbers=data["missing_sequence_numbers"],
            sequence_span=data["sequence_span"],
            empty=data["empty"],
            market_defects=Counter(data["market_defects"]),
            timed_events=data.get("timed_events", 0),
            inverted_window=data.get("inverted_window"),
        )

    def _issue(
        self, kind, ticker, sequence_number, row_id, trade_id=None, *, message: str
    ) -> DataIssue:
        return DataIssue(
            kind=kind,
            session_id=self.session_id,
            market_ticker=ticker,
            sequence_number=_int(sequence_number),
            message=message,
            row_id=_int(row_id),
            trade_id=None if trade_id is None else str(trade_id),
        )


def _int(value) -> int | None:
    return None if value is None else int(value)
