"""The trade tape in the Parquet session store: kept exactly, verified, fingerprinted.

A tape is ``trades.parquet`` beside the book tables, with its digest in ``digests.json``;
a session without one has no such file and reads ``trades=None``, exactly as a session
stored before tapes were kept.
"""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest

from kalshi_pipeline.sources import ParquetSessionStore, RawSession, SessionExists, StoreCorrupt
from kalshi_pipeline.sources.trades import TRADE_SCHEMA, empty_trades
from kalshi_pipeline_tests.factories import InBatches, trade, with_tape
from kalshi_pipeline_tests.sources.trade_rows import book_session, taped_session

BOOK_FILES = ["deltas.parquet", "metadata.json", "snapshots.parquet"]


def file_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def recorded_digests(directory: Path) -> dict[str, str]:
    return json.loads((directory / "digests.json").read_bytes())["sha256"]


@pytest.mark.parametrize(
    "session",
    [
        taped_session(3),
        dataclasses.replace(book_session(3), trades=empty_trades()),
        book_session(3),
    ],
    ids=["tape", "empty tape", "no tape"],
)
def test_the_tape_round_trips_exactly_none_and_empty_kept_apart(tmp_path, session):
    store = ParquetSessionStore(tmp_path / "sessions")

    directory = store.write_session(session)

    loaded = store.load_session(3)
    with store.open_session(3) as opened:
        streamed = opened.trades
    for got in (loaded.trades, streamed):
        if session.trades is None:
            assert got is None
        else:
            assert got.schema.equals(TRADE_SCHEMA) and got.equals(session.trades)
    assert loaded.deltas.equals(session.deltas) and loaded.snapshots.equals(session.snapshots)
    has_tape = session.trades is not None
    assert (directory / "trades.parquet").exists() == has_tape
    assert sorted(recorded_digests(directory)) == sorted(BOOK_FILES + ["trades.parquet"] * has_tape)


def test_a_session_without_a_tape_is_stored_as_before_tapes_existed(tmp_path):
    """Same files, same digests.json: a store written before tapes reads, and the copies
    built from it (which record its digests' SHA-256) are not taken for changed."""
    store = ParquetSessionStore(tmp_path / "sessions")
    directory = store.write_session(book_session(1))
    assert sorted(p.name for p in directory.iterdir()) == sorted([*BOOK_FILES, "digests.json"])
    assert sorted(recorded_digests(directory)) == BOOK_FILES
    fingerprint = store.fingerprints([1])[1]
    assert fingerprint.trades is None and "trades" not in fingerprint.to_json()


def test_a_tape_written_a_batch_at_a_time_gives_the_same_bytes(tmp_path):
    session = taped_session(2)
    whole, batched = ParquetSessionStore(tmp_path / "a"), ParquetSessionStore(tmp_path / "b")
    whole.write_session(session)
    batched.write_session(InBatches(session, rows=2))
    assert file_bytes(whole.path) == file_bytes(batched.path)
    assert (whole.path / "session-2" / "trades.parquet").exists()


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        ("flip a byte", r"session-1/trades.parquet is corrupt: its SHA-256"),
        ("delete it", r"session 1: .*session-1/trades.parquet is missing"),
    ],
)
def test_a_damaged_tape_is_detected_naming_its_file(tmp_path, damage, problem):
    store = ParquetSessionStore(tmp_path / "sessions")
    path = store.write_session(taped_session(1)) / "trades.parquet"
    if damage == "flip a byte":
        data = bytearray(path.read_bytes())
        data[len(data) // 2] ^= 0x01
        path.write_bytes(bytes(data))
    else:
        path.unlink()

    with pytest.raises(StoreCorrupt, match=problem):
        store.load_session(1)
    with pytest.raises(StoreCorrupt, match=problem), store.open_session(1):
        pass


def test_a_tape_the_digests_do_not_record_is_detected(tmp_path):
    store = ParquetSessionStore(tmp_path / "sessions")
    directory = store.write_session(book_session(1))
    other = store.write_session(taped_session(2))
    (directory / "trades.parquet").write_bytes((other / "trades.parquet").read_bytes())

    with pytest.raises(StoreCorrupt, match="session-1/trades.parquet is not recorded in"):
        store.load_session(1)


def test_a_stored_session_with_another_tape_is_never_overwritten(tmp_path):
    store = ParquetSessionStore(tmp_path / "sessions")
    session = taped_session(1)
    store.write_session(session)
    before = file_bytes(store.path / "session-1")

    store.write_session(taped_session(1))  # the same content: nothing to do
    changed_price = with_tape(
        book_session(1), trade("MKT-A", "a1b2-0001", yes_price=46, count=3, taker_side="yes", seq=4)
    )
    for other in (
        changed_price,
        book_session(1),
        dataclasses.replace(session, trades=empty_trades()),
    ):
        with pytest.raises(SessionExists, match="session 1 is already stored"):
            store.write_session(other)
    assert file_bytes(store.path / "session-1") == before

    store.write_session(changed_price, replace=True)  # a derived copy is swapped
    assert store.load_session(1).trades["yes_price"].to_pylist() == [46]


def test_a_changed_tape_changes_the_stored_fingerprint(tmp_path):
    store = ParquetSessionStore(tmp_path / "sessions")
    session = taped_session(1)
    store.write_session(session)
    before = store.fingerprints([1])[1]
    assert before.trades.rows == session.trades.num_rows == 4 and before.trades.last_id == 4

    grown = with_tape(
        session,
        *session.trades.drop_columns(["id", "session_id"]).to_pylist(),
        trade("MKT-B", "a1b2-0005", yes_price=21, count=2, taker_side="no", seq=9),
    )
    store.write_session(grown, replace=True)
    after = store.fingerprints([1])[1]

    assert after.token != before.token and after.trades.rows == 5
    assert (after.snapshots, after.deltas) == (before.snapshots, before.deltas)
    assert after.changes_since(before) == "trades 4 rows up to id 4 -> 5 rows up to id 5"


def test_a_raw_session_refuses_a_tape_of_another_schema():
    session = taped_session(1)
    with pytest.raises(ValueError, match="session 1: trades do not have TRADE_SCHEMA"):
        RawSession(
            session.info, session.snapshots, session.deltas, session.trades.drop_columns(["count"])
        )
