"""Cleaning under hostile input: each case ends as a counted repair or a named rejection.

The cases of issue 11's raw-data section, each on a simulated session (or a small
hand-made one) with one thing broken: an absurd timestamp, an oversized integer or a NULL
in a price map, a malformed map key, a sequence number far out of range, NULL key
fields, sequence numbers shared by markets or restarting, times going backwards. Every
test checks the named repair or rejection and that the other markets lose nothing.
"""

from __future__ import annotations

import dataclasses
from contextlib import closing

import numpy as np
import psycopg2
import pyarrow as pa
import pyarrow.compute  # noqa: F401  (pa.compute)
import pytest

from kalshi_pipeline.market.books import reconstruct_books
from kalshi_pipeline.market.cleaning.events import MAX_SIZE
from kalshi_pipeline.market.cleaning.report import RepairKind
from kalshi_pipeline.market.cleaning.timestamps import TIME_TOLERANCE_MS, recorded_window
from kalshi_pipeline.market.difficulty import score_views
from kalshi_pipeline.market.features import FEATURE_NAMES
from kalshi_pipeline.market.views import STEP_ARRAYS, build_market_views
from kalshi_pipeline.sources import PostgresSessionSource
from kalshi_pipeline.sources.collector_writer import collector_ddl, write_collector_session
from kalshi_pipeline.sources.raw import DELTA_SCHEMA, RawSession
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session
from kalshi_pipeline_tests.factories import T0_MS, delta, make_session, snapshot
from kalshi_pipeline_tests.market.test_cleaning import (
    assert_good_market_unaffected,
    assert_names,
    beside_good,
    example,
)

# The two-class store: its markets change every few seconds, so a time 50 minutes ahead
# steps back against the events after it (a kalshi market may not change for an hour).
SIM = SimulatorConfig(population=Population.TWO_CLASS, markets=20)


@pytest.fixture(scope="module")
def session() -> RawSession:
    return simulate_session(1, 0, SIM)


@pytest.fixture(scope="module")
def clean_views(session):
    return {v.market_ticker: v for v in build_market_views(session)}


def with_delta_values(raw: RawSession, row: int, **values) -> RawSession:
    """``raw`` with some columns of one delta row replaced."""
    deltas = raw.deltas
    for name, value in values.items():
        column = deltas.column(name).to_pylist()
        column[row] = value
        index = deltas.schema.get_field_index(name)
        deltas = deltas.set_column(index, name, pa.array(column, DELTA_SCHEMA.field(name).type))
    return dataclasses.replace(raw, deltas=deltas)


def assert_other_markets_unchanged(views, clean_views, bad_ticker):
    """Every other market's steps, books and features are as in the clean session.

    Two statistics are shares of the whole session and may move by one unit: coverage
    (of the session's steps) and the session-wide factor of data quality (a dropped row's
    number is one the sequence is missing)."""
    others = {t: v for t, v in views.items() if t != bad_ticker}
    assert others.keys() == {t for t in clean_views if t != bad_ticker}
    steps = sum(len(v) for v in clean_views.values())
    for ticker, view in others.items():
        want = clean_views[ticker]
        for name in STEP_ARRAYS:
            np.testing.assert_array_equal(getattr(view, name), getattr(want, name), ticker)
        for name in ("avg_spread", "volatility_score"):
            assert getattr(view, name) == getattr(want, name), (ticker, name)
        assert abs(view.market_coverage - want.market_coverage) <= 2 / steps
        assert abs(view.data_quality_score - want.data_quality_score) <= 2 / steps


# -- 1. an absurd timestamp --------------------------------------------------------------
@pytest.mark.parametrize("absurd", ["nanoseconds", 4 * 10**18, -(2**62), 0])
def test_an_absurd_timestamp_is_a_counted_repair_and_poisons_nothing(session, clean_views, absurd):
    row = 500
    ticker = session.deltas.column("market_ticker")[row].as_py()
    seq = session.deltas.column("sequence_number")[row].as_py()
    ts = session.deltas.column("timestamp_ms")[row].as_py()
    bad = with_delta_values(
        session, row, timestamp_ms=ts * 10**6 if absurd == "nanoseconds" else absurd
    )

    books = reconstruct_books(bad)
    views = {v.market_ticker: v for v in build_market_views(bad)}

    assert books.report.repairs[RepairKind.TIMESTAMP_OUT_OF_WINDOW] == 1
    assert_names(example(books.report, RepairKind.TIMESTAMP_OUT_OF_WINDOW), ticker, seq)
    start, end = recorded_window(bad.info)
    assert ((books.timestamp_ms >= start) & (books.timestamp_ms <= end)).all()
    assert len(views) == len(clean_views)  # the bad market keeps its view
    for view in views.values():
        assert np.isfinite(view.features).all(), view.market_ticker
        assert all(np.isfinite(list(view.statistics().values())))
    assert views[ticker].data_quality_score < clean_views[ticker].data_quality_score
    assert_other_markets_unchanged(views, clean_views, ticker)


def test_a_non_finite_statistic_excludes_the_view():
    description = {
        "session_id": 1, "market_ticker": "MKT-A", "length": 500, "market_coverage": 0.9,
        "data_quality_score": float("nan"), "avg_spread": 2.0, "volatility_score": 1.0,
        "activity_bursts": 0, "quiet_periods": 0,
    }  # fmt: skip
    (row,) = score_views([description]).to_pylist()

    assert not row["passes_filters"]
    assert "non-finite data_quality_score" in row["exclusion_reasons"]


# -- 2. oversized integers in a price map ------------------------------------------------
@pytest.mark.parametrize(
    ("bids", "kind"),
    [
        ('{"30": 2, "31": 1e20}', RepairKind.SIZE_OUT_OF_RANGE),
        ('{"30": 2, "31": 99999999999999999999}', RepairKind.SIZE_OUT_OF_RANGE),
        ('{"30": 2, "99999999999999999999": 5}', RepairKind.PRICE_OUT_OF_RANGE),
        ('{"30": 2, "31": 1099511627777}', RepairKind.SIZE_OUT_OF_RANGE),  # MAX_SIZE + 1
    ],
)
@pytest.mark.parametrize("column", ["yes_bids", "no_bids"])
def test_an_oversized_integer_in_a_price_map_drops_that_level(bids, kind, column):
    assert MAX_SIZE + 1 == 1099511627777
    maps = {"yes_bids": {30: 2}, "no_bids": {60: 1}, column: bids}
    bad = (
        snapshot("MKT-B", seq=7, **maps),
        delta("MKT-B", seq=9, side="yes", price=29, new_size=4),
    )
    books = reconstruct_books(beside_good(*bad))

    assert books.report.repairs[kind] == 1
    assert_names(example(books.report, kind), "MKT-B", 7)
    assert "MKT-B" in books.tickers
    b = books.market_rows("MKT-B")
    side = "best_yes_bid" if column == "yes_bids" else "best_no_bid"
    assert getattr(books, side)[b][0] == 30  # the good level stays
    assert_good_market_unaffected(*bad)


def test_an_oversized_delta_size_is_dropped():
    bad = (
        snapshot("MKT-B", seq=7, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=9, side="yes", price=31, new_size=9 * 10**18),
    )
    books = reconstruct_books(beside_good(*bad))

    assert books.report.repairs[RepairKind.SIZE_OUT_OF_RANGE] == 1
    assert_names(example(books.report, RepairKind.SIZE_OUT_OF_RANGE), "MKT-B", 9)
    assert books.best_yes_bid[books.market_rows("MKT-B")].tolist() == [30]
    assert_good_market_unaffected(*bad)


def test_a_non_integer_key_rejects_the_market_with_the_reason():
    bad = (
        snapshot("MKT-B", seq=7, yes_bids='{"1e20": 5}', no_bids={60: 1}),
        delta("MKT-B", seq=9, side="yes", price=31, new_size=1),
    )
    books = reconstruct_books(beside_good(*bad))

    issue = books.report.rejected["MKT-B"]
    assert_names(issue, "MKT-B", 7)
    assert "'1e20'" in str(issue) and "yes_bids" in str(issue)
    assert_good_market_unaffected(*bad)


# -- 3. a NULL size inside a bid map -------------------------------------------------------
@pytest.mark.parametrize("column", ["yes_bids", "no_bids"])
def test_a_null_size_in_a_bid_map_drops_that_level_only(column):
    maps = {"yes_bids": {30: 2}, "no_bids": {60: 1}}
    maps[column] = '{"30": 2, "29": null}' if column == "yes_bids" else '{"60": 1, "59": null}'
    bad = (snapshot("MKT-B", seq=7, **maps),)
    books = reconstruct_books(beside_good(*bad))

    assert "MKT-B" not in books.report.rejected
    assert books.report.repairs[RepairKind.NEGATIVE_SIZE] == 1
    assert_names(example(books.report, RepairKind.NEGATIVE_SIZE), "MKT-B", 7)
    b = books.market_rows("MKT-B")
    assert (books.best_yes_bid[b][0], books.best_no_bid[b][0]) == (30, 60)
    assert (books.yes_bid_volume[b][0], books.no_bid_volume[b][0]) == (2, 1)
    assert_good_market_unaffected(*bad)


# -- 4. map keys Python's int() would take, or one price given twice ---------------------------
@pytest.mark.parametrize(
    ("yes_bids", "named"),
    [
        *((f'{{"{key}": 3}}', repr(key)) for key in ["6_3", " 64", "64 ", "+64", "٦٤", "0x40"]),
        # Which size is the book's, 16 or 999? Neither is kept silently.
        ('{"29": 16, "029": 999}', "price 29 is given twice"),
        ('{"29": 16, "29": 999}', "price key '29' is given twice"),
    ],
)
def test_a_key_that_is_not_a_plain_integer_makes_the_map_malformed(yes_bids, named):
    bad = (
        snapshot("MKT-B", seq=7, yes_bids=yes_bids, no_bids={60: 1}),
        delta("MKT-B", seq=9, side="yes", price=31, new_size=1),
    )
    books = reconstruct_books(beside_good(*bad))

    issue = books.report.rejected["MKT-B"]
    assert_names(issue, "MKT-B", 7)
    assert "malformed" in str(issue) and named in str(issue)
    assert_good_market_unaffected(*bad)


# -- 5. one sequence number far out of range -------------------------------------------------
@pytest.mark.parametrize("seq", [9 * 10**15, 2**63 - 1, -(2**63)])
def test_one_far_sequence_number_is_one_outlier_row(session, clean_views, seq):
    row = 700
    ticker = session.deltas.column("market_ticker")[row].as_py()
    clean_report = reconstruct_books(session).report
    bad = with_delta_values(session, row, sequence_number=seq)

    books = reconstruct_books(bad)
    views = {v.market_ticker: v for v in build_market_views(bad)}

    assert books.report.repairs[RepairKind.SEQUENCE_OUTLIER] == 1
    issue = example(books.report, RepairKind.SEQUENCE_OUTLIER)
    assert_names(issue, ticker, seq)
    assert "row id 701" in str(issue)
    assert books.report.repairs[RepairKind.STORED_OUT_OF_ORDER] == 0
    # One number fewer arrived: at most one more gap, nothing like the span of 9e15.
    assert books.report.missing_sequence_numbers <= clean_report.missing_sequence_numbers + 1
    assert books.report.sequence_span == clean_report.sequence_span
    for t, view in views.items():
        assert view.data_quality_score > 0.9 * clean_views[t].data_quality_score, t
    assert_other_markets_unchanged(views, clean_views, ticker)


# -- 6. NULL timestamp, sequence number or ticker -----------------------------------------------
@pytest.mark.parametrize(
    ("field", "kind"),
    [
        ("timestamp_ms", RepairKind.MISSING_TIMESTAMP),
        ("sequence_number", RepairKind.MISSING_SEQUENCE_NUMBER),
        ("market_ticker", RepairKind.MISSING_MARKET_TICKER),
    ],
)
def test_a_null_key_field_drops_that_row_by_name(session, clean_views, field, kind):
    row = 300
    ticker = session.deltas.column("market_ticker")[row].as_py()
    bad = with_delta_values(session, row, **{field: None})

    views = {v.market_ticker: v for v in build_market_views(bad)}
    report = reconstruct_books(bad).report

    assert report.repairs[kind] == 1
    assert "row id 301" in str(example(report, kind))
    assert len(views) == len(clean_views)
    assert_other_markets_unchanged(views, clean_views, ticker)


def test_null_key_fields_in_a_database_without_constraints_are_clean_rejections(
    collector_db,
):
    """The collector's DDL forbids these NULLs; a copy of its tables without the
    constraints must still load, and cleaning drops exactly those rows."""
    ddl = collector_ddl().replace(" NOT NULL", "")
    raw = simulate_session(3, 0, SimulatorConfig(population=Population.TWO_CLASS, markets=6))
    with closing(psycopg2.connect(collector_db)) as conn:
        with conn.cursor() as cur:
            cur.execute(ddl)
        write_collector_session(conn, raw)
        with conn.cursor() as cur:
            for column, row_id in (
                ("timestamp_ms", 5),
                ("sequence_number", 6),
                ("market_ticker", 7),
            ):
                cur.execute(
                    f"UPDATE rl_orderbook_deltas SET {column} = NULL WHERE id = %s", (row_id,)
                )
            cur.execute("UPDATE rl_orderbook_snapshots SET sequence_number = NULL WHERE id = 2")
        conn.commit()

    loaded = PostgresSessionSource(collector_db).load_session(3)
    report = reconstruct_books(loaded).report

    assert report.repairs[RepairKind.MISSING_TIMESTAMP] == 1
    assert report.repairs[RepairKind.MISSING_SEQUENCE_NUMBER] == 2
    assert report.repairs[RepairKind.MISSING_MARKET_TICKER] == 1
    named = {str(i) for i in report.examples if i.kind.startswith("missing_")}
    assert any("row id 6" in text for text in named)
    assert build_market_views(loaded)  # the rest builds


# -- 7. a sequence number in two markets; times going backwards --------------------------------
def test_a_sequence_number_shared_by_two_markets_is_counted_and_changes_no_book():
    bad = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=3, side="yes", price=31, new_size=4),  # MKT-A also has 3
        delta("MKT-B", seq=8, side="yes", price=31, new_size=0),  # and 8 (a snapshot)
    )
    books = reconstruct_books(beside_good(*bad))

    assert books.report.repairs[RepairKind.SEQUENCE_SHARED] == 2
    assert_names(example(books.report, RepairKind.SEQUENCE_SHARED), "MKT-B", 3)
    assert not books.report.rejected
    assert books.best_yes_bid[books.market_rows("MKT-B")].tolist() == [30, 31, 30]
    assert_good_market_unaffected(*bad)


def test_times_going_back_are_counted_where_they_step_back_and_kept():
    far, near = TIME_TOLERANCE_MS + 500, TIME_TOLERANCE_MS // 2
    bad = (
        snapshot("MKT-B", seq=2, yes_bids={30: 2}, no_bids={60: 1}, ts=T0_MS + 10_000),
        delta("MKT-B", seq=5, side="yes", price=31, new_size=4, ts=T0_MS + 10_000 - far),
        delta("MKT-B", seq=7, side="yes", price=32, new_size=4, ts=T0_MS + 20_000),
        delta("MKT-B", seq=9, side="yes", price=33, new_size=4, ts=T0_MS + 20_000 - near),
    )
    books = reconstruct_books(beside_good(*bad))
    b = books.market_rows("MKT-B")

    assert books.report.repairs[RepairKind.TIMESTAMP_BACKWARDS] == 1
    assert_names(example(books.report, RepairKind.TIMESTAMP_BACKWARDS), "MKT-B", 5)
    assert books.report.repairs[RepairKind.TIMESTAMP_JITTER] == 1
    assert_names(example(books.report, RepairKind.TIMESTAMP_JITTER), "MKT-B", 9)
    offsets = (books.timestamp_ms[b] - T0_MS).tolist()
    assert offsets == [10_000, 10_000 - far, 20_000, 20_000 - near]  # as received
    assert books.best_yes_bid[b].tolist() == [30, 31, 32, 33]  # no event lost
    view = next(v for v in build_market_views(beside_good(*bad)) if v.market_ticker == "MKT-B")
    assert len(view) == 4
    assert view.features[1, FEATURE_NAMES.index("log_gap")] == 0  # clamped: no negative gap
    assert_good_market_unaffected(*bad)


def test_one_time_far_ahead_inside_the_window_is_one_repair_and_moves_no_other_market(
    session, clean_views
):
    """A single receive time 50 minutes ahead (still inside the recorded window)."""
    ts = session.deltas.column("timestamp_ms").to_numpy()
    tickers = session.deltas.column("market_ticker").to_numpy(zero_copy_only=False)
    row = 400
    ticker = tickers[row]
    later = np.flatnonzero((tickers == ticker) & (np.arange(len(ts)) > row))
    assert len(later) > 20  # the market goes on after the jump
    bad = with_delta_values(session, row, timestamp_ms=int(ts[row]) + 50 * 60_000)

    views = {v.market_ticker: v for v in build_market_views(bad)}
    report = reconstruct_books(bad).report

    assert report.repairs[RepairKind.TIMESTAMP_BACKWARDS] == 1  # where the market steps back
    # Only the jumped event leaves the step of its millisecond; nothing else is split.
    assert len(clean_views[ticker]) <= len(views[ticker]) <= len(clean_views[ticker]) + 1
    assert_other_markets_unchanged(views, clean_views, ticker)


# -- 8. sequence numbers restarting inside one session ------------------------------------------
def restarted_market(reconnect_ms: int = 30_000):
    """MKT-B's subscription restarts: S1 D2 D3, then (later, stored later) S1 D2 again.

    MKT-B's numbers are its own here (the restart makes them repeat anyway); MKT-A is
    the good market with the session's other numbers.
    """
    later = T0_MS + reconnect_ms
    return (
        snapshot("MKT-B", seq=101, yes_bids={30: 2}, no_bids={60: 1}),
        delta("MKT-B", seq=102, side="yes", price=31, new_size=4),
        delta("MKT-B", seq=103, side="no", price=61, new_size=5),
        snapshot("MKT-B", seq=101, yes_bids={40: 7}, no_bids={50: 3}, ts=later),
        delta("MKT-B", seq=102, side="yes", price=41, new_size=1, ts=later + 5),
    )


def test_a_sequence_restart_starts_a_new_segment_instead_of_rejecting_the_market():
    rows = restarted_market()
    books = reconstruct_books(make_session(*rows))

    assert "MKT-B" not in books.report.rejected
    assert books.report.repairs[RepairKind.SEQUENCE_RESTART] == 1
    assert_names(example(books.report, RepairKind.SEQUENCE_RESTART), "MKT-B", 101)
    b = books.market_rows("MKT-B")
    assert books.sequence_number[b].tolist() == [101, 102, 103, 101, 102]
    assert books.best_yes_bid[b].tolist() == [30, 31, 31, 40, 41]
    assert books.best_no_bid[b].tolist() == [60, 60, 61, 50, 50]
    assert books.report.repairs[RepairKind.DUPLICATE_SEQUENCE] == 0
    assert books.report.missing_sequence_numbers == 0
    (view,) = build_market_views(make_session(*rows))
    assert np.all(np.diff(view.timestamps_ms) >= 0)


def test_a_restart_beside_a_good_market_leaves_it_unaffected():
    books = reconstruct_books(beside_good(*restarted_market()))

    assert books.tickers == ["MKT-A", "MKT-B"]  # the restarted market is rebuilt, not rejected
    assert_good_market_unaffected(*restarted_market())


def test_the_same_snapshot_stored_twice_at_once_is_a_copy_not_a_restart():
    copy = snapshot("MKT-B", seq=101, yes_bids={30: 2}, no_bids={60: 1})
    rows = (*restarted_market()[:3], copy)
    books = reconstruct_books(make_session(*rows))

    assert books.report.repairs[RepairKind.SEQUENCE_RESTART] == 0
    assert books.report.repairs[RepairKind.DUPLICATE_SEQUENCE] == 1


def test_a_whole_session_replayed_after_a_reconnect_is_rebuilt_market_by_market(session):
    """The collector kept the session open across a reconnect: every market's snapshot
    and deltas arrive again, numbered from the start again, a minute after the last
    message and stored after it. Every market is rebuilt as its first subscription
    followed by its second, exactly as each alone."""
    span = session.info.ended_at - session.info.started_at
    shift_ms = int(span.total_seconds() * 1000) + 60_000
    tables = {}
    for name in ("snapshots", "deltas"):
        first = getattr(session, name)
        again = first.set_column(
            first.schema.get_field_index("id"),
            "id",
            pa.compute.add(first.column("id"), first.num_rows),
        )
        again = again.set_column(
            again.schema.get_field_index("timestamp_ms"),
            "timestamp_ms",
            pa.compute.add(again.column("timestamp_ms"), shift_ms),
        )
        tables[name] = pa.concat_tables([first, again])
    info = dataclasses.replace(session.info, ended_at=session.info.ended_at + 2 * span)
    replayed = RawSession(info, tables["snapshots"], tables["deltas"])

    books = reconstruct_books(replayed)
    once = reconstruct_books(session)

    assert not books.report.rejected
    assert books.report.repairs[RepairKind.SEQUENCE_RESTART] == len(once.tickers)
    assert books.report.repairs[RepairKind.DUPLICATE_SEQUENCE] == 0
    assert books.tickers == once.tickers
    for ticker in once.tickers:
        rows, alone = books.market_rows(ticker), once.market_rows(ticker)
        for column in ("sequence_number", "best_yes_bid", "best_no_bid", "yes_bid_volume"):
            single = getattr(once, column)[alone]
            np.testing.assert_array_equal(
                getattr(books, column)[rows], np.concatenate([single, single]), ticker
            )


def test_a_view_that_is_not_finite_is_rejected_by_name_when_built(session, monkeypatch):
    """Cleaning bounds every input, so no real session reaches this guard; poison the
    feature computation to check the guard itself."""
    import kalshi_pipeline.market.views.building as views_module

    clean = views_module.compute_features

    def poisoned(books):
        features = clean(books)
        row = int(books.market_offsets[3]) + 2  # the fourth market's third step
        features[row, FEATURE_NAMES.index("micro_edge")] = np.inf
        return features

    monkeypatch.setattr(views_module, "compute_features", poisoned)
    books = reconstruct_books(session)
    bad_ticker = books.tickers[3]

    views = views_module.views_from_books(books)

    assert bad_ticker not in {v.market_ticker for v in views}
    assert len(views) == len(books.tickers) - 1
    issue = books.report.rejected[bad_ticker]
    assert "micro_edge" in str(issue) and "step 2" in str(issue) and "seq " in str(issue)
