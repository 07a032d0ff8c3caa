"""The local Parquet store under real faults: concurrent writer processes, a writer killed
(SIGKILL) in the middle of a write, and single-bit flips in the stored files.

A killed writer is stopped at a chosen point of its write (it touches a marker file and
sleeps there), so the kill always lands mid-write; nothing here depends on timing.
"""

from __future__ import annotations

import multiprocessing
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kalshi_pipeline.sources import ParquetSessionStore, RawSession, StoreCorrupt, store_writing
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session
from kalshi_pipeline_tests.factories import delta, make_session, snapshot

SPAWN = multiprocessing.get_context("spawn")
LEFTOVERS = (".tmp-*", ".old-*", ".catalog.json.*")


def tiny_session(session_id: int, version: int = 0) -> RawSession:
    """A two-event session whose content depends on its id and version."""
    return make_session(
        snapshot("MKT-A", seq=1, yes_bids={40: session_id + version}, no_bids={55: 7}),
        delta("MKT-A", seq=2, side="yes", price=41, new_size=100 * version + session_id),
        session_id=session_id,
    )


def same_content(loaded: RawSession, expected: RawSession) -> bool:
    return (
        loaded.info == expected.info
        and loaded.snapshots.equals(expected.snapshots)
        and loaded.deltas.equals(expected.deltas)
    )


def leftovers(root: Path) -> list[str]:
    return sorted(p.name for pattern in LEFTOVERS for p in root.glob(pattern))


# -- concurrent writers ---------------------------------------------------------------------
def write_sessions(root: str, session_ids: list[int], start) -> None:
    """Child process: write the given sessions once both writers are ready."""
    start.wait()
    store = ParquetSessionStore(root)
    for session_id in session_ids:
        store.write_session(tiny_session(session_id))


def test_two_writer_processes_lose_no_catalog_entry(tmp_path):
    start = SPAWN.Event()
    writers = [
        SPAWN.Process(target=write_sessions, args=(str(tmp_path), list(ids), start))
        for ids in (range(1, 81, 2), range(2, 81, 2))
    ]
    for writer in writers:
        writer.start()
    start.set()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0, 0]

    store = ParquetSessionStore(tmp_path)
    assert [info.session_id for info in store.list_sessions()] == list(range(1, 81))
    for session_id in range(1, 81):
        assert same_content(store.load_session(session_id), tiny_session(session_id))
    assert leftovers(tmp_path) == []


# -- a writer killed mid-write --------------------------------------------------------------
def stop_here(marker: str) -> None:
    Path(marker).touch()
    time.sleep(600)  # until the test kills this process


def write_until_stopped(root: str, where: str, marker: str) -> None:
    """Child process: one write that stops for good at ``where``.

    ``staging``: writing the deltas of new session 4; ``swap``: replacing session 3,
    between moving the old version aside and renaming the new one in; ``catalog``:
    replacing session 3, with the new version in place and the catalog not yet updated.
    """
    store = ParquetSessionStore(root)
    if where == "staging":
        write_parquet = store_writing.write_parquet

        def stopping_write_parquet(path, schema, batches):
            if path.name == "deltas.parquet":
                stop_here(marker)
            return write_parquet(path, schema, batches)

        store_writing.write_parquet = stopping_write_parquet
        store.write_session(tiny_session(4))
    elif where == "swap":
        rename = Path.rename

        def stopping_rename(self, target):
            moved = rename(self, target)
            if Path(target).name.startswith(".old-"):
                stop_here(marker)
            return moved

        Path.rename = stopping_rename
        store.write_session(tiny_session(3, version=1), replace=True)
    else:
        replace = os.replace

        def stopping_replace(source, target):
            if Path(target).name == "catalog.json":
                stop_here(marker)
            replace(source, target)

        os.replace = stopping_replace
        store.write_session(tiny_session(3, version=1), replace=True)


def kill_mid_write(root: Path, where: str) -> None:
    marker = root.parent / f"{root.name}.stopped"
    writer = SPAWN.Process(target=write_until_stopped, args=(str(root), where, str(marker)))
    writer.start()
    deadline = time.monotonic() + 120  # a hung test fails instead of hanging the suite
    while not marker.exists():
        assert writer.is_alive(), f"the writer exited ({writer.exitcode}) before {where}"
        assert time.monotonic() < deadline, f"the writer never reached {where}"
        time.sleep(0.01)
    os.kill(writer.pid, signal.SIGKILL)
    writer.join()
    assert writer.exitcode == -signal.SIGKILL


@pytest.mark.parametrize("where", ["staging", "swap", "catalog"])
def test_a_writer_killed_mid_write_leaves_no_half_session_and_the_next_write_tidies(
    tmp_path, where
):
    root = tmp_path / "store"
    store = ParquetSessionStore(root)
    for session_id in (1, 2, 3):
        store.write_session(tiny_session(session_id))

    kill_mid_write(root, where)

    assert leftovers(root)  # the kill did land mid-write
    # Every listed session is whole: the old version of 3, or (its files having been
    # renamed into place before the kill) the new one.
    assert [info.session_id for info in store.list_sessions()] == [1, 2, 3]
    for session_id in (1, 2):
        assert same_content(store.load_session(session_id), tiny_session(session_id))
    three = tiny_session(3, version=1) if where == "catalog" else tiny_session(3)
    assert same_content(store.load_session(3), three)

    store.write_session(tiny_session(5))

    assert leftovers(root) == []
    assert store.list_sessions() == [tiny_session(i).info for i in (1, 2)] + [
        three.info,
        tiny_session(5).info,
    ]
    assert same_content(store.load_session(3), three)
    store.write_session(tiny_session(4))  # the killed write of session 4 left no trace
    assert same_content(store.load_session(4), tiny_session(4))


# -- bit flips --------------------------------------------------------------------------------
def test_every_single_bit_flip_in_a_session_or_the_catalog_raises_naming_the_file(tmp_path):
    store = ParquetSessionStore(tmp_path)
    session = simulate_session(
        3, seed=5, config=SimulatorConfig(population=Population.TWO_CLASS, markets=3)
    )
    neighbours = [tiny_session(1), tiny_session(2)]  # so the catalog holds several entries
    for other in neighbours:
        store.write_session(other)
    directory = store.write_session(session)
    listed = [other.info for other in neighbours] + [session.info]
    catalog = tmp_path / "catalog.json"
    originals = {path: path.read_bytes() for path in [catalog, *sorted(directory.iterdir())]}
    rng = random.Random(11)
    outcomes = {
        (kind, outcome)
        : 0
        for kind in ("session", "catalog")
        for outcome in ("raised", "identical", "silently changed")
    }  # fmt: skip

    for _ in range(400):
        path = rng.choice(sorted(originals))
        flipped = bytearray(originals[path])
        bit = rng.randrange(len(flipped) * 8)
        flipped[bit // 8] ^= 1 << (bit % 8)
        path.write_bytes(flipped)
        if path == catalog:
            outcomes["catalog", catalog_flip_outcome(store, catalog, listed)] += 1
        else:
            for outcome in session_flip_outcomes(store, catalog, path, session):
                outcomes["session", outcome] += 1
        for original, data in originals.items():
            original.write_bytes(data)

    assert outcomes["session", "silently changed"] == 0, outcomes
    assert outcomes["catalog", "silently changed"] == 0, outcomes
    assert sorted(path.name for path in originals) == [
        "catalog.json",
        "deltas.parquet",
        "digests.json",
        "metadata.json",
        "snapshots.parquet",
    ]
    # All but a handful of flips (in JSON layout, say) raise; two reads per session flip.
    catalog_flips = sum(n for (kind, _), n in outcomes.items() if kind == "catalog")
    assert catalog_flips >= 50, outcomes
    assert outcomes["catalog", "raised"] >= 0.97 * catalog_flips, outcomes
    assert outcomes["session", "raised"] >= 0.97 * 2 * (400 - catalog_flips), outcomes
    # A session written before digests existed still loads, unverified.
    (directory / "digests.json").unlink()
    assert same_content(store.load_session(3), session)


def catalog_flip_outcome(store: ParquetSessionStore, catalog: Path, listed: list) -> str:
    """What the sensor and demo decide from after a flip in the catalog: the list, or an
    error naming the file."""
    try:
        same = store.list_sessions() == listed
    except StoreCorrupt as corrupt:
        assert str(catalog) in str(corrupt) and "rebuild_catalog()" in str(corrupt)
        return "raised"
    return "identical" if same else "silently changed"


def session_flip_outcomes(
    store: ParquetSessionStore, catalog: Path, path: Path, session: RawSession
) -> list[str]:
    """After a flip in session 3's ``path``: loading through the catalog, and rebuilding a
    lost catalog, both verify."""
    outcomes = []
    for read in (lambda: store.load_session(3), lambda: rebuilt(store, catalog)[3]):
        try:
            loaded = read()
        except StoreCorrupt as corrupt:
            assert "session 3" in str(corrupt) and str(path) in str(corrupt)
            outcomes.append("raised")
        else:
            outcomes.append("identical" if same_content(loaded, session) else "silently changed")
    return outcomes


def rebuilt(store: ParquetSessionStore, catalog: Path) -> dict[int, RawSession]:
    catalog.unlink()
    return {info.session_id: store.load_session(info.session_id) for info in store.list_sessions()}


_FAILING_READ = """
import gc, pathlib, sys
import pyarrow as pa
from kalshi_pipeline.sources.store_writing import write_parquet
schema = pa.schema([("a", pa.int64())])
def batches():
    yield pa.record_batch([pa.array([1, 2])], schema=schema)
    raise RuntimeError("the source went away")
try:
    write_parquet(pathlib.Path(sys.argv[1]), schema, batches())
except RuntimeError as exc:
    print(exc)
gc.collect()
"""


def test_a_read_that_fails_mid_write_leaves_no_writer_behind(tmp_path):
    """The Parquet writer is closed with its file when the rows stop coming: a writer left
    open writes to the closed file when collected, and Python prints that on exit."""
    done = subprocess.run(
        [sys.executable, "-c", _FAILING_READ, str(tmp_path / "table.parquet")],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.stdout.strip() == "the source went away"
    assert done.stderr == ""
