"""Errors Dagster wraps are shown as the project's own: the definitions' loading
(``ComponentTreeException``) and a step's user code (``DagsterExecutionStepExecutionError``)
are unwrapped to the root cause, whose type decides the line and the exit code."""

from __future__ import annotations

import errno
import os
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest
from dagster._core.errors import DagsterExecutionStepExecutionError, user_code_error_boundary

import kalshi_pipeline.defs
from kalshi_pipeline.cli.errors import CommandError, explain, root_cause
from kalshi_pipeline.sources.settings import SettingError
from kalshi_pipeline.training.tuning_storage import TuningStorageError

BAD_EXECUTORS = [
    ({"KALSHI_EXECUTOR": "bogus"}, "KALSHI_EXECUTOR='bogus' is not one of"),
    ({"KALSHI_EXECUTOR": "celery"}, "KALSHI_CELERY_BACKEND must name a database"),
    (
        {"KALSHI_EXECUTOR": "celery", "KALSHI_CELERY_BACKEND": "rpc://"},
        "KALSHI_CELERY_BACKEND must name a database",
    ),
]


def test_the_demo_names_a_bad_executor_setting_in_one_line(tmp_path):
    """The command as a user runs it (the other settings: in process, below)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KALSHI_", "DAGSTER_"))}
    demo = subprocess.run(
        [sys.executable, "-m", "kalshi_pipeline.cli", "demo", "--home", str(tmp_path / "h")],
        env=env | {"KALSHI_EXECUTOR": "bogus"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert demo.returncode == 2, demo.stderr
    [line] = demo.stderr.splitlines()
    assert line.startswith("error: KALSHI_EXECUTOR='bogus' is not one of multiprocess, celery")


def _load_definitions() -> BaseException:
    with pytest.raises(Exception) as raised:
        dg.load_from_defs_folder(path_within_project=Path(kalshi_pipeline.defs.__file__).parent)
    return raised.value


@pytest.mark.parametrize("settings, says", BAD_EXECUTORS)
def test_an_error_loading_the_definitions_is_explained_by_its_root_cause(
    monkeypatch, settings, says
):
    monkeypatch.delenv("KALSHI_CELERY_BACKEND", raising=False)
    for name, value in settings.items():
        monkeypatch.setenv(name, value)
    wrapped = _load_definitions()

    assert type(wrapped).__name__ == "ComponentTreeException"
    assert isinstance(root_cause(wrapped), SettingError)
    line, code = explain(wrapped, None)
    assert line.startswith(f"error: {says}") and code == 2
    assert "Dagster" not in line and "ComponentTree" not in line


@pytest.mark.parametrize(
    "error, code",
    [
        (SettingError("KALSHI_RETRAIN_AFTER_SESSIONS must be 1 to 100000, got '0'"), 2),
        (TuningStorageError("lost the study's storage postgresql h:5432/d (...)"), 1),
        (CommandError("no session store at /x", "make one"), 1),
    ],
)
def test_an_error_in_a_step_is_explained_by_its_own_type(error, code):
    """Dagster's wrapper of a step's error (its ``user_exception``), raised again by a
    Dagster error of its own (``raise ... from``): the line is the step's error's."""
    with (
        pytest.raises(DagsterExecutionStepExecutionError) as step,
        user_code_error_boundary(
            DagsterExecutionStepExecutionError,
            lambda: "Error occurred while executing op",
            step_key="s",
            op_def_name="o",
            op_name="o",
        ),
    ):
        raise error
    try:
        raise dg.DagsterInvariantViolationError("the run failed") from step.value
    except dg.DagsterError as outer:
        wrapped = outer

    assert root_cause(wrapped) is error
    line, exit_code = explain(wrapped, None)
    assert line.startswith(f"error: {str(error).split(' (')[0]}") and exit_code == code


def test_a_dagster_error_carrying_nothing_is_its_own_root_cause():
    error = dg.DagsterInvalidDefinitionError("no such job")
    assert root_cause(error) is error
    assert explain(error, None)[0].startswith("error: unexpected DagsterInvalidDefinitionError")


def test_our_own_error_is_never_unwrapped():
    try:
        raise CommandError("the store is not readable", "check it") from SettingError("x")
    except CommandError as ours:
        assert root_cause(ours) is ours


@pytest.mark.parametrize(
    ("error", "line"),
    [
        (
            OSError(errno.ENAMETOOLONG, "File name too long", "/out/xxx"),
            "error: File name too long: /out/xxx (check the path)",
        ),
        (
            OSError(errno.ENOSPC, "No space left on device", "/out/model.zip"),
            "error: No space left on device: /out/model.zip (free some disk space)",
        ),
        (OSError(errno.EIO, "Input/output error"), "error: Input/output error (check the path)"),
    ],
)
def test_any_error_of_the_system_is_one_line_naming_its_path(error, line):
    assert explain(error, None) == (line, 1)


_LOG_AN_INTERRUPT_AND_AN_ERROR = """
import logging, sys
from kalshi_pipeline.runtime import log_errors
log_errors(debug=sys.argv[1] == "debug")
pool = logging.getLogger("sqlalchemy.pool.impl.NullPool")
for error in (KeyboardInterrupt(), OSError("disk gone")):
    try:
        raise error
    except BaseException:
        pool.error("Exception closing connection", exc_info=True)
"""


@pytest.mark.parametrize("debug", [False, True])
def test_an_interrupt_a_library_logs_on_its_way_out_is_said_once_by_the_command(debug):
    """SIGINT stopping SQLAlchemy's close of a connection made it log the interrupt with
    its traceback before the command's own line; only ``--debug`` shows that now, and
    any other error a library logs is still shown."""
    args = [sys.executable, "-c", _LOG_AN_INTERRUPT_AND_AN_ERROR, "debug" if debug else "quiet"]
    err = subprocess.run(args, capture_output=True, text=True, check=True).stderr

    assert err.count("ERROR sqlalchemy.pool.impl.NullPool: Exception closing connection") == (
        2 if debug else 1
    )
    assert "OSError: disk gone" in err
    assert ("KeyboardInterrupt" in err) == debug
