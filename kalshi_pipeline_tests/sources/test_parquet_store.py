"""The local Parquet session store: round trips, the catalog, determinism, atomic writes,
never overwriting a stored session, a lost, corrupt or changed catalog.

Faults with real processes (concurrent writers, SIGKILL, bit flips) are in
test_store_faults.py.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from kalshi_pipeline.sources import (
    ParquetSessionStore,
    RawSession,
    SessionExists,
    SessionNotComplete,
    StoreCorrupt,
    store_reading,
    store_writing,
)
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session
from kalshi_pipeline_tests.factories import InBatches, delta, make_session, snapshot

SMALL = SimulatorConfig(population=Population.TWO_CLASS, markets=6)


def small_session(session_id: int, seed: int = 7) -> RawSession:
    return simulate_session(session_id, seed=seed, config=SMALL)


def assert_same_session(loaded: RawSession, expected: RawSession) -> None:
    assert loaded.info == expected.info
    for table in ("snapshots", "deltas"):
        got, want = getattr(loaded, table), getattr(expected, table)
        assert got.schema.equals(want.schema), table
        for name in want.column_names:
            assert got[name].equals(want[name]), f"{table}.{name}"


def file_bytes(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` (hidden ones included) by relative path."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_a_simulated_session_round_trips(tmp_path):
    store = ParquetSessionStore(tmp_path / "sessions")
    session = small_session(3)

    store.write_session(session)

    assert_same_session(store.load_session(3), session)


def test_an_undecodable_map_round_trips_as_a_null_map_with_its_reason(tmp_path):
    store = ParquetSessionStore(tmp_path)
    session = make_session(
        snapshot("MKT-A", seq=1, yes_bids='{"abc": 5}', no_bids={55: 7}),
        snapshot("MKT-B", seq=2, yes_bids={40: 10}, no_bids={}),
        delta("MKT-B", seq=3, side="yes", price=41, new_size=3),
    )

    store.write_session(session)
    loaded = store.load_session(1)

    assert_same_session(loaded, session)
    assert loaded.snapshots["map_error"].to_pylist()[0].startswith("yes_bids:")
    assert loaded.snapshots["yes_bids"].to_pylist() == [None, [(40, 10)]]
    # An empty book side stays an empty map, distinct from "could not be decoded".
    assert loaded.snapshots["no_bids"].to_pylist() == [[(55, 7)], []]


def test_list_sessions_describes_every_written_session_sorted_by_id(tmp_path):
    store = ParquetSessionStore(tmp_path)
    assert store.list_sessions() == []  # the directory does not even exist yet

    recording = make_session(
        snapshot("MKT-Z", seq=1, yes_bids={30: 4}),
        delta("MKT-Z", seq=2, side="no", price=60, new_size=9),
        session_id=5,
        status="active",
    )
    for session in (small_session(9), recording, small_session(2)):
        store.write_session(session)

    listed = store.list_sessions()

    assert [info.session_id for info in listed] == [2, 5, 9]
    assert [info.status for info in listed] == ["closed", "active", "closed"]
    assert [info.is_complete for info in listed] == [True, False, True]
    by_id = {info.session_id: info for info in listed}
    assert by_id[5].started_at == datetime(2026, 1, 5, tzinfo=UTC)
    assert by_id[5].ended_at is None
    assert by_id[5].market_tickers == ("MKT-Z",)
    assert (by_id[5].snapshots_count, by_id[5].deltas_count) == (1, 1)
    nine = small_session(9)
    assert by_id[9] == nine.info
    assert by_id[9].ended_at > by_id[9].started_at
    assert len(by_id[9].market_tickers) == SMALL.markets
    assert by_id[9].deltas_count == nine.deltas.num_rows


def test_an_active_session_is_not_loaded_unless_asked(tmp_path):
    store = ParquetSessionStore(tmp_path)
    recording = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=3),
        session_id=8,
        status="active",
    )
    store.write_session(recording)

    with pytest.raises(SessionNotComplete, match="session 8 is still active"):
        store.load_session(8)

    assert_same_session(store.load_session(8, allow_incomplete=True), recording)


def test_a_missing_session_raises_key_error_naming_it(tmp_path):
    store = ParquetSessionStore(tmp_path)
    store.write_session(small_session(1))

    with pytest.raises(KeyError, match="session 42"):
        store.load_session(42)


def test_writing_the_same_session_twice_gives_byte_identical_files(tmp_path):
    session = small_session(4)
    store = ParquetSessionStore(tmp_path / "a")
    store.write_session(session)
    first = file_bytes(store.path)

    store.write_session(session)
    again = file_bytes(store.path)
    # A second store fed the same session (another run, another machine) agrees too.
    elsewhere = ParquetSessionStore(tmp_path / "b")
    elsewhere.write_session(small_session(4))

    assert sorted(first) == [
        ".lock",
        "catalog.json",
        "session-4/deltas.parquet",
        "session-4/digests.json",
        "session-4/metadata.json",
        "session-4/snapshots.parquet",
    ]
    assert again == first
    assert file_bytes(elsewhere.path) == first


def test_replace_swaps_in_a_new_version_of_a_derived_copy(tmp_path):
    store = ParquetSessionStore(tmp_path)
    store.write_session(small_session(6, seed=1))
    replacement = small_session(6, seed=2)
    assert not replacement.deltas.equals(small_session(6, seed=1).deltas)

    store.write_session(replacement, replace=True)

    assert_same_session(store.load_session(6), replacement)
    assert store.list_sessions() == [replacement.info]
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "catalog.json", "session-6"]


def test_a_crash_while_writing_leaves_no_trace_and_keeps_the_previous_version(
    tmp_path, monkeypatch
):
    store = ParquetSessionStore(tmp_path)
    previous = small_session(4, seed=1)
    store.write_session(previous)
    catalog_before = (tmp_path / "catalog.json").read_bytes()

    real_write_parquet = store_writing.write_parquet

    def crash_on_deltas(path, schema, batches):
        if path.name == "deltas.parquet":
            raise OSError("disk full")
        return real_write_parquet(path, schema, batches)

    monkeypatch.setattr(store_writing, "write_parquet", crash_on_deltas)
    for session in (small_session(4, seed=2), small_session(5)):
        with pytest.raises(OSError, match="disk full"):
            store.write_session(session, replace=True)
    monkeypatch.undo()

    # The new session never became visible...
    assert [info.session_id for info in store.list_sessions()] == [4]
    with pytest.raises(KeyError, match="session 5"):
        store.load_session(5)
    # ...no staging directory was left behind...
    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "catalog.json", "session-4"]
    # ...and the session being overwritten is still the previous version, whole.
    assert (tmp_path / "catalog.json").read_bytes() == catalog_before
    assert_same_session(store.load_session(4), previous)


def test_a_failed_swap_puts_the_previous_version_back(tmp_path, monkeypatch):
    store = ParquetSessionStore(tmp_path)
    previous = small_session(4, seed=1)
    store.write_session(previous)

    real_rename = Path.rename

    def refuse_to_swap_in(self, target):
        if self.name.startswith(".tmp-"):
            raise OSError("rename refused")
        return real_rename(self, target)

    monkeypatch.setattr(Path, "rename", refuse_to_swap_in)
    with pytest.raises(OSError, match="rename refused"):
        store.write_session(small_session(4, seed=2), replace=True)
    monkeypatch.undo()

    assert sorted(p.name for p in tmp_path.iterdir()) == [".lock", "catalog.json", "session-4"]
    assert_same_session(store.load_session(4), previous)


# -- a stored session is never overwritten --------------------------------------------------
def test_a_different_version_of_a_stored_session_is_refused_and_nothing_changes(tmp_path):
    store = ParquetSessionStore(tmp_path)
    original = small_session(4, seed=1)
    store.write_session(original)
    before = file_bytes(tmp_path)

    with pytest.raises(SessionExists) as refused:
        store.write_session(small_session(4, seed=2))

    assert isinstance(refused.value, FileExistsError)
    message = str(refused.value)
    assert "session 4" in message and str(tmp_path / "session-4") in message
    assert "new session id" in message  # says how to proceed
    assert file_bytes(tmp_path) == before
    assert_same_session(store.load_session(4), original)


def test_writing_the_same_content_again_leaves_the_files_untouched(tmp_path):
    store = ParquetSessionStore(tmp_path)
    session = small_session(4)
    path = store.write_session(session)
    stamps = {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in path.iterdir()}

    for replace in (False, True):
        assert store.write_session(small_session(4), replace=replace) == path

    assert {p.name: (p.stat().st_ino, p.stat().st_mtime_ns) for p in path.iterdir()} == stamps
    assert path.stat().st_ino == (tmp_path / "session-4").stat().st_ino


# -- the catalog ------------------------------------------------------------------------------
def test_a_lost_catalog_is_rebuilt_and_its_sessions_are_never_overwritten(tmp_path):
    store = ParquetSessionStore(tmp_path)
    real = [small_session(1, seed=11), small_session(2, seed=12)]
    for session in real:
        store.write_session(session)
    catalog = (tmp_path / "catalog.json").read_bytes()
    (tmp_path / "catalog.json").unlink()

    # What the demo does: a store that lists no session gets simulated ones.
    assert store.list_sessions() == [session.info for session in real]
    assert (tmp_path / "catalog.json").read_bytes() == catalog
    (tmp_path / "catalog.json").unlink()
    with pytest.raises(SessionExists, match="session 2"):
        store.write_session(small_session(2, seed=99))

    for session in real:
        assert_same_session(store.load_session(session.session_id), session)
    assert store.rebuild_catalog() == [session.info for session in real]
    assert (tmp_path / "catalog.json").read_bytes() == catalog


@pytest.mark.parametrize(
    ("content", "problem"),
    [
        ('[{"session_id": 1, ', "cannot be read: Expecting"),
        ('{"session_id": 1}', r'expected \{"sessions": \[...\], "sha256": hex digest\}'),
        ('"sessions"', "got str"),
        ('{"sessions": [], "sha256": "00"}', "is corrupt: the SHA-256 of its entries"),
        ("[3]", "entry 0 is a int"),
        ('[{"session_id": 1, "status": "closed"}]', "entry 0: .*started_at"),
        ('[{"session_id": 1, "started_at": "yesterday", "status": "closed", '
         '"ended_at": null, "market_tickers": []}]', "entry 0: Invalid isoformat"),
        ("", "cannot be read"),
    ],
)  # fmt: skip
def test_a_corrupt_catalog_raises_naming_the_file_and_can_be_rebuilt(tmp_path, content, problem):
    store = ParquetSessionStore(tmp_path)
    session = small_session(1)
    store.write_session(session)
    (tmp_path / "catalog.json").write_text(content)

    for read in (store.list_sessions, lambda: store.load_session(1)):
        with pytest.raises(StoreCorrupt, match=problem) as corrupt:
            read()
        assert str(tmp_path / "catalog.json") in str(corrupt.value)
        assert "rebuild_catalog()" in str(corrupt.value)

    assert store.rebuild_catalog() == [session.info]
    assert_same_session(store.load_session(1), session)


def test_a_changed_catalog_entry_raises_naming_the_file_instead_of_listing_it(tmp_path):
    store = ParquetSessionStore(tmp_path)
    store.write_session(small_session(1))
    catalog = tmp_path / "catalog.json"
    text = catalog.read_text()
    assert text.count('"environment": "local"') == 1
    catalog.write_text(text.replace('"environment": "local"', '"environment": "docal"'))

    for read in (store.list_sessions, lambda: store.load_session(1)):
        with pytest.raises(StoreCorrupt, match="is corrupt: the SHA-256 of its entries") as bad:
            read()
        assert str(catalog) in str(bad.value) and "rebuild_catalog()" in str(bad.value)

    assert store.rebuild_catalog() == [small_session(1).info]
    assert catalog.read_text() == text


def test_a_catalog_of_earlier_versions_is_still_read_and_the_next_write_verifies_it(tmp_path):
    """Earlier versions wrote a bare list of entries, with no digest: read it unverified."""
    store = ParquetSessionStore(tmp_path)
    first = small_session(1)
    store.write_session(first)
    catalog = tmp_path / "catalog.json"
    entries = json.loads(catalog.read_text())["sessions"]
    catalog.write_text(json.dumps(entries))

    assert store.list_sessions() == [first.info]
    assert_same_session(store.load_session(1), first)

    store.write_session(small_session(2))
    data = json.loads(catalog.read_text())
    assert [entry["session_id"] for entry in data["sessions"]] == [1, 2]
    assert sorted(data) == ["sessions", "sha256"]


# -- reading a batch at a time -----------------------------------------------------------
def test_an_opened_session_reads_in_batches_what_load_session_returns(tmp_path, monkeypatch):
    monkeypatch.setattr(store_reading, "BATCH_ROWS", 100)  # several batches per table
    store = ParquetSessionStore(tmp_path)
    session = small_session(3)
    store.write_session(session)

    with store.open_session(3) as stored:
        batches = list(stored.batches("deltas"))
        snapshots = pa.Table.from_batches(list(stored.batches("snapshots")))
        narrow = pa.Table.from_batches(list(stored.batches("deltas", ["id", "price"])))
        events = stored.num_events

    assert stored.info == session.info
    assert len(batches) > 3 and max(len(b) for b in batches) == 100
    assert pa.Table.from_batches(batches).equals(session.deltas)
    assert snapshots.equals(session.snapshots)
    assert narrow.equals(session.deltas.select(["id", "price"]))
    assert events == session.num_events


def test_an_opened_session_reads_the_version_it_verified_while_a_writer_replaces_it(tmp_path):
    store = ParquetSessionStore(tmp_path)
    first, second = small_session(6, seed=1), small_session(6, seed=2)
    store.write_session(first)

    with store.open_session(6) as stored:
        store.write_session(second, replace=True)
        deltas = pa.Table.from_batches(list(stored.batches("deltas")))

    assert deltas.equals(first.deltas)
    assert_same_session(store.load_session(6), second)


def test_opening_a_session_checks_what_loading_checks(tmp_path):
    store = ParquetSessionStore(tmp_path)
    store.write_session(small_session(1))
    recording = make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: 10}, no_bids={55: 7}), session_id=8, status="active"
    )
    store.write_session(recording)
    path = tmp_path / "session-1" / "deltas.parquet"
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 1
    path.write_bytes(bytes(data))

    with pytest.raises(KeyError, match="session 42"), store.open_session(42):
        pass
    still_active = pytest.raises(SessionNotComplete, match="session 8 is still active")
    with still_active, store.open_session(8):
        pass
    corrupt = pytest.raises(StoreCorrupt, match="session-1/deltas.parquet is corrupt")
    with corrupt, store.open_session(1):
        pass
    with store.open_session(8, allow_incomplete=True) as stored:
        assert stored.info == recording.info


def test_a_session_written_a_batch_at_a_time_gives_the_same_bytes(tmp_path, monkeypatch):
    """Row groups of BATCH_ROWS rows whatever the batches: the bytes, and so the digests
    that tell a repeated write from a new version, depend on the rows only."""
    monkeypatch.setattr(store_writing, "BATCH_ROWS", 100)
    session = small_session(4)
    stores = {}
    for rows in (7, 100, 1_000_000):
        stores[rows] = ParquetSessionStore(tmp_path / str(rows))
        stores[rows].write_session(InBatches(session, rows))

    files = [file_bytes(store.path) for store in stores.values()]
    assert files[0] == files[1] == files[2]
    deltas = pq.ParquetFile(stores[7].path / "session-4" / "deltas.parquet")
    assert deltas.num_row_groups == -(-session.deltas.num_rows // 100)
    assert_same_session(stores[7].load_session(4), session)
    stamps = file_bytes(stores[7].path)
    stores[7].write_session(session)  # the same rows again, batched otherwise: untouched
    assert file_bytes(stores[7].path) == stamps
