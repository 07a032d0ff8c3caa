"""Faults a real collector's trades table can hold, read from Postgres and built into views.

Each case alters the table of a stored :func:`taped_session` the way a collector (or a
hand edit) could, then reads the session and builds its views: the bad trade is counted
under its repair, naming its session, market and trade id, and every other trade and the
book are as without the fault. A fault that leaves no trade readable is an error naming
the table and the column, never a wrong count.
"""

from __future__ import annotations

from contextlib import closing

import psycopg2
import pytest

from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline.market.views import SessionViews
from kalshi_pipeline.sources import ParquetSessionStore, PostgresSessionSource
from kalshi_pipeline.sources.collector_connection import SourceUnavailable
from kalshi_pipeline.sources.collector_writer import append_collector_rows, collector_ddl
from kalshi_pipeline.sources.trades import COLLECTOR_TRADES_TABLE as TRADES
from kalshi_pipeline_tests.factories import make_session, snapshot, trade, with_tape
from kalshi_pipeline_tests.sources.test_trade_tape_postgres import _no_book, run_sql, store
from kalshi_pipeline_tests.sources.trade_rows import book_session, taped_session

LATE_TRADE = trade("MKT-A", "late-1", yes_price=40, count=2, taker_side="no", seq=9)
TRADE_KINDS = [k for k in RepairKind if k.value.startswith(("trade_", "duplicate_trade"))]


def built(url: str, session_id: int = 1):
    """(the tape read back, {ticker: trade arrays of its view}, trade repairs, report)."""
    raw = PostgresSessionSource(url).load_session(session_id)
    builder = SessionViews(raw)
    views = [view for batch in builder.batches() for view in batch]
    trades = {v.market_ticker: _pairs(v) for v in views}
    repairs = {str(k): builder.report.repairs[k] for k in TRADE_KINDS if builder.report.repairs[k]}
    return raw.trades, trades, repairs, builder.report


def _pairs(view) -> list[tuple[int, int]]:
    """(count, YES price) of each trade of ``view``."""
    return list(zip(view.trade_counts.tolist(), view.trade_yes_prices.tolist(), strict=True))


def issue_of(report, kind: str) -> str:
    return str(next(issue for issue in report.examples if str(issue.kind) == kind))


def without_first_trade(trades: dict) -> dict:
    """The views' trades without a1b2-0001 (MKT-A's first: 3 contracts at 45)."""
    return {ticker: [t for t in ts if t != (3, 45)] for ticker, ts in trades.items()}


@pytest.fixture
def taped(collector_tables):
    """A collector database holding :func:`taped_session`, and the session's views."""
    store(collector_tables, taped_session(1))
    return collector_tables, built(collector_tables)


def test_extra_columns_in_the_trades_table_change_nothing(taped):
    url, (tape, trades, repairs, _) = taped
    run_sql(url, f"ALTER TABLE {TRADES} ADD COLUMN raw_message JSONB DEFAULT '{{}}'")
    run_sql(url, f"ALTER TABLE {TRADES} ADD COLUMN note TEXT DEFAULT 'x'")
    again, again_trades, again_repairs, _ = built(url)
    assert again.equals(tape) and again_trades == trades and again_repairs == repairs


# (an ALTER making the first trade's value unreadable, the repair it is counted under)
ONE_BAD_VALUE = [
    (
        f"ALTER TABLE {TRADES} ALTER COLUMN yes_price TYPE TEXT;"
        f"UPDATE {TRADES} SET yes_price = 'abc' WHERE id = 1",
        "trade_price_out_of_range",
    ),
    (
        f"ALTER TABLE {TRADES} ALTER COLUMN count TYPE DOUBLE PRECISION;"
        f"UPDATE {TRADES} SET count = 2.5 WHERE id = 1",
        "trade_count_out_of_range",
    ),
    (
        f"ALTER TABLE {TRADES} ALTER COLUMN count TYPE NUMERIC;"
        f"UPDATE {TRADES} SET count = 1e30 WHERE id = 1",
        "trade_count_out_of_range",
    ),
    (
        f"ALTER TABLE {TRADES} ALTER COLUMN trade_id DROP NOT NULL;"
        f"UPDATE {TRADES} SET trade_id = NULL WHERE id = 1",
        "trade_missing_id",
    ),  # fmt: skip
    # Kalshi's dollar strings for a price of 1 dollar, half a cent and a negative one.
    (
        f"UPDATE {TRADES} SET yes_price = NULL, no_price = NULL, "
        "yes_price_dollars = '1.0000', no_price_dollars = '0.0000' WHERE id = 1",
        "trade_price_out_of_range",
    ),
    (
        f"UPDATE {TRADES} SET yes_price = NULL, no_price = NULL, "
        "yes_price_dollars = '0.0050', no_price_dollars = '0.9950' WHERE id = 1",
        "trade_price_out_of_range",
    ),
    (
        f"UPDATE {TRADES} SET yes_price = NULL, no_price = NULL, "
        "yes_price_dollars = '-0.56', no_price_dollars = '1.56' WHERE id = 1",
        "trade_price_out_of_range",
    ),
    (
        f"UPDATE {TRADES} SET count = NULL, count_fp = '1e9' WHERE id = 1",
        "trade_count_out_of_range",
    ),  # fmt: skip
]


@pytest.mark.parametrize("alter, kind", ONE_BAD_VALUE)
def test_a_value_of_a_wrong_type_or_range_drops_its_trade_alone(taped, alter, kind):
    url, (_, trades, repairs, _) = taped
    run_sql(url, alter)
    _, got, got_repairs, report = built(url)

    assert got_repairs == {**repairs, kind: 1}
    assert got == without_first_trade(trades)
    text = issue_of(report, kind)
    assert "session 1" in text and "market MKT-A" in text and "row id 1" in text
    assert "trade a1b2-0001" in text or kind == "trade_missing_id"


def test_numbers_stored_as_text_are_read_as_numbers(taped):
    url, (tape, trades, repairs, _) = taped
    for column in ("count", "yes_price", "timestamp_ms", "sequence_number"):
        run_sql(url, f"ALTER TABLE {TRADES} ALTER COLUMN {column} TYPE TEXT")
    again, again_trades, again_repairs, _ = built(url)
    assert again.equals(tape) and again_trades == trades and again_repairs == repairs


@pytest.mark.parametrize("column", ["id", "session_id"])
def test_a_trades_table_without_its_key_columns_is_an_error_naming_them(taped, column):
    """Without ``session_id`` the fingerprint once counted every row of the table for
    each session (the column resolved to the session's own id): now both reads fail,
    naming the table's column."""
    url, _ = taped
    store(url, taped_session(2))
    run_sql(url, f"ALTER TABLE {TRADES} DROP COLUMN {column}")
    source = PostgresSessionSource(url)

    with pytest.raises(SourceUnavailable, match=rf"{TRADES}\.{column} does not exist"):
        source.fingerprints([1, 2])
    with pytest.raises(SourceUnavailable, match=rf"session 1: trades: column \"{column}\""):
        source.load_session(1)
    assert [info.session_id for info in source.list_sessions()] == [1, 2]


def test_trade_rows_stored_under_another_session_stay_with_that_session(taped):
    """The collector filed session 1's trades under session 2, which recorded other
    markets: session 1 has an empty tape (not none), session 2 counts them as trades of
    markets it has no book for, and both books are as before."""
    url, _ = taped
    store(url, make_session(snapshot("MKT-C", seq=1, yes_bids={30: 2}), session_id=2))
    run_sql(url, f"UPDATE {TRADES} SET session_id = 2")

    tape, trades, repairs, _ = built(url, 1)
    assert tape is not None and tape.num_rows == 0
    assert trades == {"MKT-A": [], "MKT-B": []} and repairs == {}
    _, other_trades, other_repairs, report = built(url, 2)
    assert other_trades == {"MKT-C": []}
    assert other_repairs == {"trade_unknown_market": 4}
    assert "session 2, market MKT-A, trade a1b2-0001" in issue_of(report, "trade_unknown_market")


def test_a_trades_table_that_appears_while_a_session_is_read_is_seen_as_a_change(
    collector_tables, tmp_path
):
    """The collector starts recording trades while a session is being copied: the copy
    keeps what it read (no tape), and the source's next fingerprint differs from the
    copy's by the tape, so the session is read again."""
    run_sql(collector_tables, f"DROP TABLE {TRADES}")
    store(collector_tables, book_session(1))
    source, copy = PostgresSessionSource(collector_tables), ParquetSessionStore(tmp_path)
    with source.open_session(1) as opened:
        run_sql(collector_tables, collector_ddl())
        with closing(psycopg2.connect(collector_tables)) as conn:
            append_collector_rows(conn, with_tape(_no_book(book_session(1)), LATE_TRADE))
        copy.write_session(opened)

    assert copy.load_session(1).trades is None
    now, copied = source.fingerprints([1])[1], copy.fingerprints([1])[1]
    assert now != copied
    assert now.changes_since(copied).startswith("trades no tape -> 1 rows")
