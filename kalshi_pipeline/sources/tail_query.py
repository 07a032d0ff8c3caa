"""One read of a followed session as one SQL statement: the session row and the rows of
each table after a cursor, in a single round trip and from a single snapshot.

PostgreSQL runs a statement on one snapshot of the database, taken when it starts (after
it has its locks), so every part of one statement sees the same commits: a committed
transaction is seen whole or not at all, with the session row as it stood then. That is
what :class:`~kalshi_pipeline.sources.collector_tail.CollectorTail` needs of a read, and
one statement gives it without a transaction around several (its ``BEGIN``, ``SELECT`` s
and ``ROLLBACK`` were six round trips a poll).

The statement is a ``UNION ALL`` of one branch per table. Every row has the same columns:
a tag naming its table, then a slot of columns for each table (the select lists of
:mod:`~kalshi_pipeline.sources.postgres`), that table's own filled and every other's
NULL. A first branch that returns no row (``WHERE false``) reads each slot from its own
table, so every column keeps its table's type (an untyped NULL in the first branches
would otherwise be taken for text). :func:`split_rows` gives each table's rows back as the
tuples its own ``SELECT`` would have returned, by id.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

from kalshi_pipeline.sources.postgres import DELTA_COLUMNS, SESSION_COLUMNS, SNAPSHOT_COLUMNS
from kalshi_pipeline.sources.raw_values import INT64_MAX
from kalshi_pipeline.sources.trades import COLLECTOR_TRADES_TABLE

# A branch's rows after the cursor, by id (LIMIT NULL: no limit). Written as a range of the
# (session_id, id) index so that only that index serves it: given "session_id = s AND
# id > c", the planner, which takes the two columns for independent, may scan the primary
# key from c on and filter out the rows of every later session.
_AFTER = (
    "WHERE (session_id, id) > ($1, ${after}) "
    f"AND (session_id, id) <= ($1, {INT64_MAX}) ORDER BY session_id, id LIMIT $2"
)
# The prepared statement's name, and its parameters: the session id, the rows a table at
# most (NULL: all) and the cursor's last id of the snapshots, deltas and trades.
_NAME = "kalshi_tail_read"
_PARAMETERS = ("session", "limit", "snapshots", "deltas", "trades")
EXECUTE = f"EXECUTE {_NAME} ({', '.join(f'%({name})s' for name in _PARAMETERS)})"


@dataclass(frozen=True)
class _Slot:
    """One table's place in the statement's rows: its tag, table and select list."""

    tag: str
    table: str
    columns: tuple[str, ...]


def prepare_statement(trade_select: str) -> str:
    """The ``PREPARE`` of the read, run once per connection: the statement is planned
    once, not at every poll (planning a ``UNION ALL`` of five branches costs more than
    running it on a few new rows). :data:`EXECUTE` runs it, given ``session``, ``limit``,
    and the cursor's ids by table name. ``trade_select`` is the trades table's select
    list, "" where the database has no trades table."""
    return f"PREPARE {_NAME} (bigint, bigint, bigint, bigint, bigint) AS {_statement(trade_select)}"


def _statement(trade_select: str) -> str:
    slots = _slots(trade_select)
    template = ", ".join(
        f"t{i}.{item}" if item != "NULL" else item
        for i, slot in enumerate(slots)
        for item in slot.columns
    )
    tables = ", ".join(f"{slot.table} t{i}" for i, slot in enumerate(slots))
    branches = [f"SELECT '', {template} FROM {tables} WHERE false"]
    for slot in slots:
        select = ", ".join(
            ", ".join(other.columns) if other is slot else ", ".join(["NULL"] * len(other.columns))
            for other in slots
        )
        where = (
            "WHERE session_id = $1"
            if slot.tag == "session"
            else _AFTER.format(after=_PARAMETERS.index(slot.tag) + 1)
        )
        branches.append(f"(SELECT '{slot.tag}', {select} FROM {slot.table} {where})")
    return " UNION ALL ".join(branches)


def split_rows(rows: Sequence[tuple], trade_select: str) -> dict[str, list[tuple]]:
    """Each table's rows of the statement's result (``session``, ``snapshots``,
    ``deltas`` and, with a trades table, ``trades``), as its own select list gives them,
    by id (a row's first column; the session row has one)."""
    places = _places(trade_select)
    found: dict[str, list[tuple]] = {tag: [] for tag in places}
    for row in rows:
        first, end = places[row[0]]
        found[row[0]].append(row[first:end])
    for table_rows in found.values():
        table_rows.sort(key=lambda row: row[0])
    return found


@cache
def _places(trade_select: str) -> dict[str, tuple[int, int]]:
    """Each table's first and end column in the statement's rows (column 0: the tag)."""
    places, start = {}, 1
    for slot in _slots(trade_select):
        places[slot.tag] = (start, start + len(slot.columns))
        start += len(slot.columns)
    return places


@cache
def _slots(trade_select: str) -> tuple[_Slot, ...]:
    slots = [
        _Slot("session", "rl_orderbook_sessions", _items(SESSION_COLUMNS)),
        _Slot("snapshots", "rl_orderbook_snapshots", _items(SNAPSHOT_COLUMNS)),
        _Slot("deltas", "rl_orderbook_deltas", _items(DELTA_COLUMNS)),
    ]
    if trade_select:
        slots.append(_Slot("trades", COLLECTOR_TRADES_TABLE, _items(trade_select)))
    return tuple(slots)


def _items(select_list: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in select_list.split(","))
