"""The kalshi-pipeline command, run as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.settings import HOME_ENV
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


def test_demo_runs_the_whole_graph_on_a_fresh_home(tmp_path):
    """The README's main-job command: simulated store, local instance, report."""
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", HOME_ENV)}
    command = [sys.executable, "-m", "kalshi_pipeline.cli", "demo", "--home", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)

    assert "simulating" in done.stdout
    assert (tmp_path / "sessions" / "catalog.json").exists()
    assert (tmp_path / "dagster" / "dagster.yaml").exists()  # the local instance
    report = Path(done.stdout.strip().splitlines()[-1].split("report: ")[1])
    assert report.is_file() and report.is_relative_to(tmp_path / "artifacts")
    assert "model-vs-hold/holdout" in report.read_text()
