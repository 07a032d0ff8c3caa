"""The demo runner's instance settings: package data, the same file as the repository's.

``kalshi-pipeline demo`` gives a new local Dagster instance the settings shipped inside
the package (``kalshi_pipeline/dagster.yaml``), so an installed package behaves as a
checkout does. The repository root keeps ``dagster.yaml`` for users who copy it into
their ``DAGSTER_HOME``: the two must stay one file. The whole demo, run as a user runs it,
is in ``test_cli.py``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

import dagster as dg
import pytest

from kalshi_pipeline import demo
from kalshi_pipeline.cli import main
from kalshi_pipeline.paths import HOME_ENV

REPO = Path(__file__).resolve().parents[1]
PACKAGED = "kalshi_pipeline/dagster.yaml"


def test_the_packaged_instance_settings_are_the_repository_roots():
    packaged = resources.files("kalshi_pipeline").joinpath("dagster.yaml").read_text()

    assert packaged == (REPO / "dagster.yaml").read_text()
    assert "run_monitoring:" in packaged


def test_the_wheel_ships_the_instance_settings_and_no_runner_in_defs(tmp_path):
    # Built from a copy: setuptools writes build/ and egg-info next to pyproject.toml.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "kalshi_pipeline", source / "kalshi_pipeline", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*command, "-w", str(tmp_path / "wheel"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip

    [wheel] = (tmp_path / "wheel").glob("kalshi_pipeline-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.read(PACKAGED).decode() == (REPO / "dagster.yaml").read_text()
    assert "kalshi_pipeline/demo.py" in names
    assert "kalshi_pipeline/defs/demo.py" not in names
    assert "kalshi_pipeline/cli/__main__.py" in names


CLI = [sys.executable, "-m", "kalshi_pipeline.cli"]


def small_store(home: Path) -> Path:
    """A home whose store holds 3 two-class sessions of 6 markets: too few for a holdout
    market."""
    generate = ["generate", "--population", "two-class", "--sessions", "3", "--markets", "6"]
    generate += ["--seed", "0"]
    subprocess.run([*CLI, *generate, "--out", str(home / "sessions")], check=True, timeout=300)
    return home


def failed_demo(home: Path) -> tuple[subprocess.CompletedProcess, str]:
    """The demo run as a user runs it, which must fail with one line (exit 1) and no
    traceback, Dagster's or Python's, on the terminal; returns the run and its line."""
    drop = ("DAGSTER_HOME", "KALSHI_PIPELINE_HOME", "KALSHI_COLLECTOR_URL")
    env = {k: v for k, v in os.environ.items() if k not in drop}
    done = subprocess.run(
        [*CLI, "demo", "--home", str(home)], capture_output=True, text=True, env=env, timeout=600
    )
    assert done.returncode == 1, done.stderr
    shown = done.stdout + done.stderr
    assert "Traceback" not in shown and "Stack Trace" not in shown
    [line] = done.stderr.strip().splitlines()
    return done, line


def test_a_store_too_small_for_the_split_fails_before_training_in_one_line(tmp_path):
    """The demo on three sessions of six markets (no holdout market among them) stops at
    the split, before any phase trains: one line on the terminal and exit 1; Dagster's
    traceback of the failed step is in the run's log, not on the terminal."""
    home = small_store(tmp_path / "home")

    _, line = failed_demo(home)

    assert line.startswith("error: training run ") and line.endswith(")")
    assert "failed: the split has no holdout market: none of the " in line
    assert not (home / "artifacts" / "models").exists()  # no phase trained
    instance = dg.DagsterInstance.from_config(str(home / "dagster"))
    try:
        [run] = instance.get_runs(dg.RunsFilter(job_name="train_and_evaluate"))
        [failure] = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_FAILURE)
    finally:
        instance.dispose()
    assert run.run_id in line
    assert failure.dagster_event.step_key == "train_holdout_split"
    assert "SplitTooSmall" in failure.dagster_event.step_failure_data.error.to_string()


@pytest.mark.parametrize("dagster_home", ["missing", "relative", "a_file"])
def test_a_dagster_home_that_cannot_be_used_is_named_before_any_work(
    dagster_home, tmp_path, monkeypatch, capsys
):
    """Dagster wants an absolute path to an existing directory; the demo names anything
    else in one line (exit 2) before it simulates, ingests or trains."""
    (tmp_path / "a_file").write_text("")
    value = {
        "missing": str(tmp_path / "missing"),
        "relative": "relative/dagster",
        "a_file": str(tmp_path / "a_file"),
    }[dagster_home]
    monkeypatch.setenv("DAGSTER_HOME", value)
    monkeypatch.delenv("KALSHI_COLLECTOR_URL", raising=False)
    home = tmp_path / "home"

    assert main(["demo", "--home", str(home)]) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: DAGSTER_HOME={value!r} is not ")
    assert not (tmp_path / "missing").exists() and not (home / "sessions").exists()


def test_a_failed_ingest_is_one_line_without_dagsters_tracebacks(tmp_path):
    """A session whose stored copy is damaged fails its ingest: the demo names it in one
    line (exit 1) and trains nothing; Dagster's step-failure traceback stays in the log."""
    home = small_store(tmp_path / "home")
    deltas = home / "sessions" / "session-2" / "deltas.parquet"
    data = bytearray(deltas.read_bytes())
    data[len(data) // 2] ^= 0x10
    deltas.write_bytes(bytes(data))

    done, line = failed_demo(home)

    assert line.startswith("error: 1 of 3 sessions failed to ingest; training not started")
    assert f"{deltas} is corrupt" in line
    assert "[2/3] session 2: FAILED" in done.stdout
    assert not (home / "artifacts" / "models").exists()


class _HistoryUnreadable(RuntimeError):
    """Stands for the project's own errors (PromotionError and the like)."""


@dg.asset
def _reads_a_damaged_history():
    try:
        json.loads('{"models": [')
    except ValueError as exc:
        raise _HistoryUnreadable("the model history H is unreadable: cut short") from exc


def test_the_one_line_is_our_error_not_the_one_it_was_raised_from():
    """Dagster's wrapper is unwrapped to the project's error, and no further: the error
    ours was raised from (a JSONDecodeError) does not replace ours, which names the file."""
    result = dg.materialize([_reads_a_damaged_history], raise_on_error=False)
    assert demo._first_error(result).endswith(
        "_HistoryUnreadable: the model history H is unreadable: cut short"
    )


@pytest.mark.parametrize(
    ("settings", "said"),
    [
        ("storage:\n  postgres: [unclosed\n", "cannot be used: while parsing"),  # not YAML
        ("bogus_key: 1\n", "cannot be used: "),  # not Dagster's
        (
            "run_coordinator:\n  module: nope.nothing\n  class: X\n",
            "cannot be used: Failure condition: Couldn't import module nope.nothing",
        ),
        (
            "storage:\n  postgres:\n    postgres_url:\n      env: KALSHI_TEST_UNSET_URL\n",
            "read KALSHI_TEST_UNSET_URL from the environment, and it is not set",
        ),
    ],
)
def test_instance_settings_that_cannot_be_used_are_named_before_any_work(
    settings, said, tmp_path, monkeypatch, capsys
):
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    (dagster_home / "dagster.yaml").write_text(settings)
    monkeypatch.setenv("DAGSTER_HOME", str(dagster_home))
    monkeypatch.delenv("KALSHI_COLLECTOR_URL", raising=False)
    monkeypatch.delenv("KALSHI_TEST_UNSET_URL", raising=False)  # read from the environment
    home = tmp_path / "home"

    assert main(["demo", "--home", str(home)]) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: the Dagster instance settings {dagster_home / 'dagster.yaml'} ")
    assert said in line
    assert not (home / "sessions").exists()


def test_a_damaged_model_history_is_named_before_any_work(tmp_path, monkeypatch, capsys):
    """The demo ends with a promotion, which reads the model history: a damaged one is
    named before anything is simulated, ingested or trained."""
    home = tmp_path / "home"
    history = home / "artifacts" / "models" / "registry.json"
    history.parent.mkdir(parents=True)
    history.write_text('{"models": [{"model_path": "m", "st')
    monkeypatch.delenv("KALSHI_COLLECTOR_URL", raising=False)
    # The demo sets both for its jobs: monkeypatch holds their values to put them back.
    monkeypatch.setenv("DAGSTER_HOME", "")
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.setenv(HOME_ENV, str(home))

    assert main(["demo", "--home", str(home)]) == 1

    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: the model history {history} is unreadable: ")
    assert not (home / "sessions").exists()


def test_the_demo_says_it_runs_in_process_whatever_the_executor(tmp_path, monkeypatch, capsys):
    """KALSHI_EXECUTOR=celery is for runs the daemon launches; the demo runs its jobs in
    its own process and says so, rather than seem to use workers it never calls. (A
    damaged model history stops it right after, before any work.)"""
    home = tmp_path / "home"
    history = home / "artifacts" / "models" / "registry.json"
    history.parent.mkdir(parents=True)
    history.write_text("{")
    monkeypatch.delenv("KALSHI_COLLECTOR_URL", raising=False)
    monkeypatch.setenv("KALSHI_EXECUTOR", "celery")
    monkeypatch.setenv("KALSHI_CELERY_BACKEND", "db+postgresql+psycopg2://u@127.0.0.1/dagster")
    monkeypatch.setenv("DAGSTER_HOME", "")
    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.setenv(HOME_ENV, str(home))

    assert main(["demo", "--home", str(home)]) == 1

    assert capsys.readouterr().out.splitlines() == [
        "KALSHI_EXECUTOR=celery applies to runs that dagster dev and its daemon launch; the "
        "demo runs its jobs in this process"
    ]


@dg.asset(retry_policy=dg.RetryPolicy(max_retries=1))
def _times_out_every_time():
    raise _HistoryUnreadable("statement timeout (1e-06 s) expired while loading session 1")


def test_a_step_that_used_up_its_retries_is_named_by_its_last_error():
    """Dagster fails it as 'Exceeded max_retries of 1'; the line is the error itself."""
    result = dg.materialize([_times_out_every_time], raise_on_error=False)
    line = demo._first_error(result)
    assert line.endswith("statement timeout (1e-06 s) expired while loading session 1")
