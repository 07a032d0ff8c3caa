"""The kalshi-pipeline command, run as a user runs it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.sources import ParquetSessionStore, PostgresSessionSource


def files_and_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_generate_writes_a_store_and_is_deterministic(tmp_path, capsys):
    args = ["generate", "--sessions", "2", "--markets", "5", "--seed", "4"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "wrote 2 sessions" in capsys.readouterr().out

    first = files_and_bytes(tmp_path / "a")
    assert first == files_and_bytes(tmp_path / "b")
    listed = ParquetSessionStore(tmp_path / "a").list_sessions()
    assert [info.session_id for info in listed] == [1, 2]
    assert all(len(info.market_tickers) == 5 and info.is_complete for info in listed)

    assert main([*args, "--no-signal", "--out", str(tmp_path / "c")]) == 0
    assert files_and_bytes(tmp_path / "c") != first


def test_generate_needs_exactly_one_destination(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--sessions", "1"])
    assert exit_info.value.code == 2


def test_generate_into_the_collector_tables(collector_db, tmp_path):
    args = ["generate", "--sessions", "2", "--markets", "4", "--seed", "8"]
    assert main([*args, "--postgres", collector_db]) == 0
    assert main([*args, "--out", str(tmp_path / "store")]) == 0

    source = PostgresSessionSource(collector_db)
    store = ParquetSessionStore(tmp_path / "store")
    assert [i.session_id for i in source.list_sessions()] == [1, 2]
    from_db, from_store = source.load_session(2), store.load_session(2)
    for table in ("snapshots", "deltas"):
        got, want = getattr(from_db, table), getattr(from_store, table)
        assert got.drop_columns(["id"]).equals(want.drop_columns(["id"])), table


def test_demo_builds_a_store_once_and_summarises_it(tmp_path):
    command = [sys.executable, "-m", "kalshi_pipeline.cli", "demo", "--home", str(tmp_path)]
    first = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "simulating" in first.stdout
    assert (tmp_path / "sessions" / "catalog.json").exists()
    rows = [line.split() for line in first.stdout.splitlines() if line.split()[:1] == ["1"]]
    assert rows and rows[0][1] == "closed" and int(rows[0][2]) > 0

    again = subprocess.run(command, capture_output=True, text=True, check=True)
    assert "simulating" not in again.stdout
    assert again.stdout.splitlines()[1:] == first.stdout.splitlines()[2:]
