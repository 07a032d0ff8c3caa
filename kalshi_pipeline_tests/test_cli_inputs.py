"""The training command's inputs, refused before any work: settings out of range (flags,
a hyperparameter file), paths it cannot use; and a budget that rounds up, said before
training."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.paths import HOME_ENV
from kalshi_pipeline.pipeline_config import ExecutionChoice, SplitConfig, TrainingChoice
from kalshi_pipeline.training.config_checks import InvalidConfig

SMALL = ["--profile", "smoke", "--candidates", "1", "--phases", "1"]


@pytest.fixture(scope="module")
def store(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("cli-inputs") / "store"
    args = ["generate", "--out", str(path), "--sessions", "2", "--markets", "8", "--seed", "2"]
    args += ["--population", "two-class"]  # a store the smoke training can split
    assert main(args) == 0
    return path


def error_line(capsys) -> str:
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and lines[0].endswith(")"), lines[0]
    return lines[0]


@pytest.mark.parametrize(
    ("recorded", "named"),
    [
        ({"learning_rate": float("nan")}, "learning_rate must be a finite number in (0, 1]"),
        ({"learning_rate": -0.001}, "learning_rate must be a finite number in (0, 1]"),
        ({"learning_rate": "fast"}, "learning_rate must be a finite number in (0, 1]"),
        ({"learning_rate": 1e30}, "learning_rate must be a finite number in (0, 1]"),
        ({"batch_size": 0}, "batch_size must be a whole number in [2, 2097152]"),
        ({"gamma": 2.0}, "gamma must be a finite number in (0, 1]"),
        ({"n_steps": 0}, "n_steps must be a whole number in [1, 2097152]"),
    ],
)
def test_a_bad_hyperparameter_file_is_named_with_its_key_and_exits_2(
    recorded, named, store, tmp_path, capsys
):
    tuned, out = tmp_path / "tuned.json", tmp_path / "out"
    tuned.write_text(json.dumps({"hyperparameters": recorded}))
    argv = ["train", "--store", str(store), "--out", str(out), "--hyperparams", str(tuned)]

    assert main([*argv, *SMALL]) == 2

    line = error_line(capsys)
    assert line.startswith(f"error: hyperparameter file {tuned}: {named}, got ")
    assert not out.exists()  # nothing trained, nothing written: --out stays free


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (
            ["--seed", "4294967296"],
            "argument --seed: 4294967296 is not a whole number in [0, 4294967295]",
        ),
        (
            ["--learning-rate", "1e30"],
            "argument --learning-rate: 1e+30 is not a finite number in (0, 1]",
        ),
        (
            ["--learning-rate", "nan"],
            "argument --learning-rate: nan is not a finite number in (0, 1]",
        ),
        (["--gamma", "2"], "argument --gamma: 2.0 is not a finite number in (0, 1]"),
    ],
)
def test_a_flag_out_of_range_is_a_usage_error(flags, named, store, tmp_path, capsys):
    out = tmp_path / "out"
    with pytest.raises(SystemExit) as exit_info:
        main(["train", "--store", str(store), "--out", str(out), *SMALL, *flags])

    assert exit_info.value.code == 2
    assert named in error_line(capsys)
    assert not out.exists()


@pytest.mark.parametrize(
    ("flag", "record", "key", "value"),
    [
        ("--seed", TrainingChoice, "seed", 2**32),
        ("--learning-rate", TrainingChoice, "learning_rate", 0.0),
        ("--gamma", TrainingChoice, "gamma", 1.5),
        ("--n-envs", TrainingChoice, "n_envs", 0),
        ("--validate-every", TrainingChoice, "validate_every", -1),
        ("--timesteps", TrainingChoice, "timesteps_per_phase", 0),
        ("--net-arch", TrainingChoice, "net_arch", (5000,)),
        ("--holdout-fraction", SplitConfig, "holdout_fraction", 1.0),
        ("--tight-spread-cents", SplitConfig, "tight_spread_cents", 0.0),
        ("--latency-ms", ExecutionChoice, "latency_ms", -1),
        ("--order-expiry-steps", ExecutionChoice, "order_expiry_steps", 0),
        ("--queue-power", ExecutionChoice, "queue_power", 0.0),
        ("--fee-multiplier", ExecutionChoice, "fee_multiplier", float("inf")),
    ],
)
def test_a_flag_refuses_what_the_config_refuses_in_the_same_words(
    flag, record, key, value, tmp_path, capsys
):
    """One range per setting (training.config_checks): the flag and the configuration
    (Dagster's run config, a stored config) say the same thing of the same value."""
    with pytest.raises(InvalidConfig) as raised:
        record(**{key: value})
    text = str(value[0] if isinstance(value, tuple) else value)
    with pytest.raises(SystemExit):
        main(["train", "--out", str(tmp_path / "out"), flag, text])
    wanted = re.fullmatch(rf"error: argument {flag}: \S+ is not (.+) \(see: .*", error_line(capsys))
    assert wanted is not None
    assert f" {wanted[1]}, got " in str(raised.value)


def test_a_seed_whose_last_candidate_overflows_is_refused(store, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["train", "--store", str(store), "--out", str(out), "--profile", "smoke"]

    assert main([*argv, "--seed", "4294967295", "--candidates", "2"]) == 2

    assert "training seed 4294967295 with 2 candidates trains seeds up to 4294967296" in (
        error_line(capsys)
    )
    assert not out.exists()


def test_a_budget_that_rounds_up_is_said_before_training(store, tmp_path, capsys):
    out = tmp_path / "out"
    argv = ["train", "--store", str(store), "--out", str(out), *SMALL]

    assert main([*argv, "--n-envs", "1", "--timesteps", "300", "--checkpoint-every", "256"]) == 0

    said = capsys.readouterr().out.splitlines()
    note = (
        "each phase trains 512 timesteps, not its budget of 300: budgets round up to whole "
        "rollouts of 256 timesteps (1 env x 256 steps)"
    )
    first_progress = next(i for i, line in enumerate(said) if line.startswith("phase 1:"))
    assert any(line.startswith(note) for line in said[:first_progress])
    assert said[first_progress].startswith("phase 1: 0/512 timesteps")
    lineage = json.loads((out / "models" / "phase1" / "model.json").read_text())
    assert lineage["timesteps"] <= 512  # the best checkpoint on validation, of 512


def cli(*argv: bytes, home: bytes | None = None) -> tuple[int, str]:
    """The command in a real process, given the bytes a shell passes (a test holds no
    string that is not UTF-8: pytest could not report it); its exit code and stderr."""
    env = {k.encode(): v.encode() for k, v in os.environ.items() if k != HOME_ENV}
    if home is not None:
        env[HOME_ENV.encode()] = home
    done = subprocess.run(
        [sys.executable.encode(), b"-m", b"kalshi_pipeline.cli", *argv],
        capture_output=True,
        env=env,
        timeout=300,
    )
    return done.returncode, done.stderr.decode("ascii", "backslashreplace").strip()


def test_a_non_utf8_out_is_named_before_any_work(store, tmp_path):
    """TensorBoard would fail on it once the first phase had started, naming no path."""
    out = os.fsencode(tmp_path) + b"/out\xff"
    argv = [b"train", b"--store", os.fsencode(store), b"--out", out, *map(str.encode, SMALL)]

    code, err = cli(*argv)

    assert (code, err) == (
        2,
        f"error: --out {tmp_path}/out\\xff holds a byte that is not UTF-8 "
        "(choose a path of UTF-8 characters: TensorBoard and the stores need one)",
    )
    assert not os.path.exists(out)


def test_a_non_utf8_home_is_named_by_its_variable(tmp_path):
    home = os.fsencode(tmp_path) + b"/home\xff"

    code, err = cli(b"demo", home=home)

    assert code == 2
    assert err.startswith(f"error: {HOME_ENV} {tmp_path}/home\\xff holds a byte that is not")
    assert not os.path.exists(home)


def test_a_non_utf8_hyperparameter_file_is_named(store, tmp_path):
    bad = os.fsencode(tmp_path) + b"/tuned\xff.json"
    argv = [b"train", b"--store", os.fsencode(store), b"--out", os.fsencode(tmp_path / "out")]

    code, err = cli(*argv, b"--hyperparams", bad)

    assert code == 2
    assert err.startswith(f"error: --hyperparams {tmp_path}/tuned\\xff.json holds a byte that")


def test_an_out_under_a_file_is_named(store, tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")

    assert main(["train", "--store", str(store), "--out", str(blocker / "out"), *SMALL]) == 1

    assert error_line(capsys) == (
        f"error: --out {blocker / 'out'} is under {blocker}, a file (give a path under a directory)"
    )


@pytest.mark.parametrize(
    ("variable", "value", "command"),
    [
        ("KALSHI_COLLECTOR_CONNECT_TIMEOUT_S", "-inf", ["models"]),
        ("KALSHI_SOURCE_RETRY_DELAY_SECONDS", "3600.5", ["models"]),
        ("KALSHI_TUNING_RETRY_SECONDS", "abc", ["generate", "--sessions", "1"]),
    ],
)
def test_every_setting_is_checked_whatever_the_command(
    variable, value, command, tmp_path, monkeypatch, capsys
):
    """A bad KALSHI_* value fails every command, not only those that read it: the README
    promises a bad value is named, and a setting ignored today is read by the next one."""
    monkeypatch.setenv(variable, value)
    argv = [*command, "--home", str(tmp_path)] if command == ["models"] else command
    if command[0] == "generate":
        argv = [*command, "--out", str(tmp_path / "store")]

    assert main(argv) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: {variable}={value!r} is not ")
    assert not (tmp_path / "store").exists()


def test_a_name_too_long_for_the_file_system_is_named_before_any_work(tmp_path, capsys):
    """A directory name over 255 bytes would fail when the first file under it is
    written, as 'unexpected OSError'; it is refused up front, naming the option."""
    out = tmp_path / ("x" * 256) / "out"

    assert main(["generate", "--sessions", "1", "--out", str(out)]) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith(f"error: --out {out} has a name of 256 bytes, more than the 255 a")
    assert line.endswith("(give shorter names)")


def test_a_celery_backend_that_is_not_a_database_fails_every_command(tmp_path, monkeypatch, capsys):
    """The backend rule is a setting's: `models`, which runs no step, refuses it too."""
    monkeypatch.setenv("KALSHI_EXECUTOR", "celery")
    monkeypatch.setenv("KALSHI_CELERY_BACKEND", "cache+memory://")

    assert main(["models", "--home", str(tmp_path)]) == 2

    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: KALSHI_CELERY_BACKEND must name a database as the Celery")
