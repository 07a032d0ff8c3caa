"""``kalshi-pipeline generate --postgres URL --live --speed X``: sessions written as the
collector records them, one after another, that read back as the same sessions written
at once."""

from __future__ import annotations

import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.sources import PostgresSessionSource
from kalshi_pipeline_tests.conftest import scratch_database

ARGS = ["generate", "--sessions", "2", "--markets", "3", "--seed", "5"]


def loaded(url: str) -> list:
    source = PostgresSessionSource(url)
    return [source.load_session(info.session_id) for info in source.list_sessions()]


def test_sessions_written_live_load_as_the_same_sessions_written_at_once(collector_db, capsys):
    assert main([*ARGS, "--postgres", collector_db, "--live", "--speed", "1e6"]) == 0
    lines = capsys.readouterr().out.splitlines()
    with scratch_database() as at_once:
        assert main([*ARGS, "--postgres", at_once]) == 0
        expected = loaded(at_once)

    # One line as each session starts and one as it closes, the sessions one after another.
    assert [line.split(":")[0].split(" after")[0] for line in lines[:4]] == [
        "session 1 started",
        "session 1 closed",
        "session 2 started",
        "session 2 closed",
    ]
    live = loaded(collector_db)
    assert [session.info for session in live] == [session.info for session in expected]
    for got, want in zip(live, expected, strict=True):
        assert got.snapshots.equals(want.snapshots)
        assert got.deltas.equals(want.deltas)
        assert got.trades.equals(want.trades)


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--out", "{tmp}/s", "--live"], "--live writes into the collector's tables"),
        (["--postgres", "postgresql://h/db", "--speed", "5"], "--speed X is the pace of --live"),
        (["--postgres", "postgresql://h/db", "--live", "--speed", "0"], "--speed"),
    ],
    ids=["live-without-postgres", "speed-without-live", "speed-not-above-zero"],
)
def test_live_options_out_of_place_are_refused_by_name(tmp_path, capsys, extra, message):
    with pytest.raises(SystemExit) as exit_info:
        main([*ARGS, *(arg.format(tmp=tmp_path) for arg in extra)])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert message in line
    assert not (tmp_path / "s").exists()
