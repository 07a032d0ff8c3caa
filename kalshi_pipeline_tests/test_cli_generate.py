"""``kalshi-pipeline generate --population``: which markets a store holds, and the knobs
each population takes."""

from __future__ import annotations

import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session


def stored(path) -> list:
    store = ParquetSessionStore(path)
    return [store.load_session(info.session_id) for info in store.list_sessions()]


def test_the_kalshi_population_is_the_default_and_records_a_trade_tape(tmp_path, capsys):
    args = ["generate", "--sessions", "1", "--markets", "20", "--seed", "3"]
    assert main([*args, "--out", str(tmp_path / "default")]) == 0
    assert main([*args, "--population", "two-class", "--out", str(tmp_path / "two")]) == 0
    assert "kalshi population" in capsys.readouterr().out

    [kalshi] = stored(tmp_path / "default")
    [two_class] = stored(tmp_path / "two")
    assert kalshi.trades is not None and kalshi.trades.num_rows > 0
    assert two_class.trades is None
    # Each is the library's session of its population, byte for byte.
    for session, population in ((kalshi, Population.KALSHI), (two_class, Population.TWO_CLASS)):
        expected = simulate_session(1, 3, SimulatorConfig(population=population, markets=20))
        assert session.deltas.equals(expected.deltas)
        assert (session.trades is None) == (expected.trades is None)
        assert session.trades is None or session.trades.equals(expected.trades)


def test_a_two_class_knob_with_the_kalshi_population_is_refused_by_name(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--out", str(tmp_path / "s"), "--median-events", "50"])
    assert exit_info.value.code == 2
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "--median-events is a knob of the two-class population only" in line
    assert not (tmp_path / "s").exists()
    args = ["generate", "--out", str(tmp_path / "t"), "--population", "two-class"]
    assert main([*args, "--median-events", "50", "--sessions", "1", "--markets", "2"]) == 0


def test_an_unknown_population_is_refused_naming_the_known_ones(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--out", str(tmp_path / "s"), "--population", "three-class"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "three-class" in err and "kalshi" in err and "two-class" in err
