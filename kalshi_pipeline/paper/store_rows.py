"""Records as rows of the paper tables and back (:mod:`.store` runs the statements).

Each record type of :mod:`.records` is one table, its fields its columns in order, after
``session_id``: a decision adds ``decided_at``, a fill its place among its step's fills
(``fill_index``: an order can fill twice in one step). A market's record is upserted,
since it is written again when the market ends. Reading back gives each table's rows by
market and step, as the records were made, with the same Python values: integers,
floats (DOUBLE PRECISION round-trips a float exactly), booleans, and an observation's
bytes (BYTEA).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import astuple, fields
from datetime import datetime

from kalshi_pipeline.paper.records import Decision, FillRecord, MarketRecord, Outcome, Records
from kalshi_pipeline.sources.collector_tail import Cursor

_DECISION_COLUMNS = [f.name for f in fields(Decision)]
_OUTCOME_COLUMNS = [f.name for f in fields(Outcome)]
_FILL_COLUMNS = [f.name for f in fields(FillRecord)]
_MARKET_COLUMNS = [f.name for f in fields(MarketRecord)]
_UPSERT_MARKET = "ON CONFLICT (session_id, market) DO UPDATE SET " + ", ".join(
    f"{name} = EXCLUDED.{name}" for name in _MARKET_COLUMNS[1:]
)

# Records' kinds: the table, the record, the order rows are read in.
_READ = {
    "decisions": ("paper_decisions", Decision, "market, step"),
    "outcomes": ("paper_outcomes", Outcome, "market, step"),
    "fills": ("paper_fills", FillRecord, "market, step, fill_index"),
    "markets": ("paper_markets", MarketRecord, "market"),
}

SUMMARY_QUERY = """
SELECT s.session_id, s.source, s.status, s.started_at, s.closed_at,
       (SELECT count(*) FROM paper_markets m WHERE m.session_id = s.session_id),
       (SELECT count(*) FROM paper_decisions d WHERE d.session_id = s.session_id),
       (SELECT count(*) FROM paper_fills f WHERE f.session_id = s.session_id),
       COALESCE((SELECT sum(o.reward) FROM paper_outcomes o
                 WHERE o.session_id = s.session_id), 0),
       COALESCE((SELECT sum(last.value_cents) FROM (
                   SELECT DISTINCT ON (o.market) o.value_cents FROM paper_outcomes o
                   WHERE o.session_id = s.session_id ORDER BY o.market, o.step DESC) AS last),
                0)::BIGINT,
       COALESCE((SELECT sum(o.fees_cents) FROM paper_outcomes o
                 WHERE o.session_id = s.session_id), 0)::BIGINT
FROM paper_sessions s WHERE %(every)s OR s.session_id = %(session_id)s
ORDER BY s.started_at DESC, s.session_id DESC
"""


def record_rows(
    session_id: int, records: Records, decided_at: datetime
) -> dict[str, tuple[str, list[tuple], str]]:
    """Per table: its column list, the rows of ``records``, and the INSERT's conflict
    clause (only markets have one: the primary keys refuse any other second copy)."""
    latest = {market.market: market for market in records.markets}  # one upsert per market
    return {
        "paper_markets": (
            _columns(_MARKET_COLUMNS),
            [(session_id, *astuple(m)) for m in latest.values()],
            _UPSERT_MARKET,
        ),
        "paper_decisions": (
            _columns([*_DECISION_COLUMNS, "decided_at"]),
            [(session_id, *astuple(d), decided_at) for d in records.decisions],
            "",
        ),
        "paper_outcomes": (
            _columns(_OUTCOME_COLUMNS),
            [(session_id, *astuple(o)) for o in records.outcomes],
            "",
        ),
        "paper_fills": (
            _columns([*_FILL_COLUMNS, "fill_index"]),
            fill_rows(session_id, records.fills),
            "",
        ),
    }


def fill_rows(session_id: int, fills: list[FillRecord]) -> list[tuple]:
    """The fills' rows, each with its place among its step's fills (all of a step's
    fills come in one poll: the step is played once)."""
    seen: Counter = Counter()
    rows = []
    for fill in fills:
        key = (fill.market, fill.step)
        rows.append((session_id, *astuple(fill), seen[key]))
        seen[key] += 1
    return rows


def read_session(cur, session_id: int) -> tuple[Records, Cursor, str] | None:
    """The session's records, its cursor and its status word; None if not stored."""
    cur.execute(
        "SELECT snapshots_id, deltas_id, trades_id, status FROM paper_sessions "
        "WHERE session_id = %s",
        (session_id,),
    )
    row = cur.fetchone()
    if row is None:
        return None
    found = {
        kind: [record(*r) for r in _rows(cur, table, record, order, session_id)]
        for kind, (table, record, order) in _READ.items()
    }
    return Records(**found), Cursor(*row[:3]), row[3]


def _rows(cur, table: str, record: type, order: str, session_id: int) -> list[tuple]:
    columns = ", ".join(f.name for f in fields(record))
    cur.execute(
        f"SELECT {columns} FROM {table} WHERE session_id = %s ORDER BY {order}", (session_id,)
    )
    return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in cur]


def _columns(names: list[str]) -> str:
    return ", ".join(["session_id", *names])
