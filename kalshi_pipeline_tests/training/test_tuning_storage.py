"""Faults of a study's storage: PostgreSQL that kills or refuses connections mid-study, a
trial whose process is stopped or killed, a damaged journal file. Real server, real
processes, real files."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from contextlib import closing
from pathlib import Path

import optuna
import psycopg2
import pytest
from optuna.trial import TrialState

from kalshi_pipeline.cli import main
from kalshi_pipeline.pipeline_config import TrainingChoice
from kalshi_pipeline.training.tuning import base_params, suggest, write_result
from kalshi_pipeline.training.tuning_storage import Study, TuningStorageError
from kalshi_pipeline_tests.conftest import MAINTENANCE_DB, postgres_server

TINY = {"profile": "smoke", "timesteps_per_phase": 1024}
PASSWORD = "s3cret-pw"  # trust auth ignores it; it must never be shown
# A trial that records its process and then waits: the process is stopped or killed.
WAITING_TRIAL = """
import sys, time
from kalshi_pipeline.training.tuning_storage import Study, mark_process
study = Study(name="s", storage=sys.argv[1], trials=1, heartbeat_seconds=1, grace_seconds=2)
def objective(trial):
    mark_process(trial)
    # Optuna's heartbeat thread writes its first beat when it is first scheduled: give it
    # two beats, so that a SIGSTOP after "running" never stops a trial with no heartbeat
    # (which no grace period can fail; seen once on a loaded machine).
    time.sleep(2)
    print("running", flush=True)
    time.sleep(600)
study.open().optimize(objective, n_trials=1)
"""
# A process that creates a trial and is killed before it names its process or sends a
# heartbeat (Optuna's ask(), as a trial's first step or a retried creation leaves it).
ASKED_TRIAL = """
import sys, time
from kalshi_pipeline.training.tuning_storage import Study
Study(name="s", storage=sys.argv[1], trials=1, heartbeat_seconds=1, grace_seconds=2).open().ask()
print("asked", flush=True)
time.sleep(600)
"""


@pytest.fixture(scope="module")
def store(tuning_store):
    return tuning_store


def tune_command(store, storage: str, home: Path, trials: int) -> list[str]:
    return [
        sys.executable, "-m", "kalshi_pipeline.cli", "tune", "--store", str(store.path),
        "--trials", str(trials), "--storage", storage, "--study", "s", "--home", str(home),
        "--profile", "smoke", "--timesteps", "1024",
        "--holdout-fraction", "0.3", "--validation-fraction", "0.3",
    ]  # fmt: skip


def with_password(url: str) -> str:
    return url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")


def admin(statement: str, *params) -> list[tuple]:
    with closing(psycopg2.connect(f"{postgres_server()}/{MAINTENANCE_DB}")) as conn:
        conn.autocommit = True
        with conn.cursor() as cur:
            cur.execute(statement, params)
            return cur.fetchall() if cur.description else []


def terminate_backends(database: str) -> int:
    rows = admin(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", database
    )
    return sum(ok for (ok,) in rows)


def complete_trials(url: str) -> int:
    try:
        with closing(psycopg2.connect(url)) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'")
            return cur.fetchone()[0]
    except psycopg2.Error:  # the tables are not there yet
        return 0


def error_lines(stderr: str) -> list[str]:
    """What the command said besides Optuna's log lines (``[I ...]``, ``[W ...]``: its
    progress, and warnings it may log under load)."""
    return [line for line in stderr.splitlines() if not line.startswith(("[I ", "[W "))]


def test_connections_killed_again_and_again_cost_the_study_nothing(store, study_db, tmp_path):
    """pg_terminate_backend every 0.2 s once the study has begun: no trial is lost."""
    database = study_db.rsplit("/", 1)[1]
    command = tune_command(store, with_password(study_db), tmp_path / "home", trials=3)
    tuner = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    while complete_trials(study_db) == 0 and tuner.poll() is None:
        time.sleep(0.2)
    killed = 0
    while tuner.poll() is None:
        killed += terminate_backends(database)
        time.sleep(0.2)
    out, err = tuner.communicate()

    assert killed > 0
    assert tuner.returncode == 0, err
    assert "Traceback" not in err and PASSWORD not in out + err
    assert "3 complete" in out
    study = optuna.load_study(study_name="s", storage=study_db.replace("://", "+psycopg2://"))
    assert [t.state for t in study.trials] == [TrialState.COMPLETE] * 3


def test_a_database_that_refuses_connections_mid_study_is_one_line_naming_it(
    store, study_db, tmp_path
):
    """After the first complete trial the database accepts no connection at all: the
    retries give up, and the command says so in one line, naming the storage."""
    database = study_db.rsplit("/", 1)[1]
    command = tune_command(store, with_password(study_db), tmp_path / "home", trials=50)
    environ = os.environ | {"KALSHI_TUNING_RETRY_SECONDS": "2"}  # 15 s by default
    tuner = subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=environ
    )
    try:
        while complete_trials(study_db) == 0 and tuner.poll() is None:
            time.sleep(0.2)
        admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        terminate_backends(database)
        out, err = tuner.communicate(timeout=300)
    finally:
        tuner.kill()
        admin(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')

    assert tuner.returncode == 1
    [line] = error_lines(err)
    assert line.startswith(f"error: lost the study's storage postgresql 127.0.0.1:5432/{database}")
    assert "not currently accepting connections" in line and "check that the server" in line
    assert "retried for 2 s" in line
    assert PASSWORD not in out + err


def _one_complete_trial(study: optuna.Study, base) -> None:
    study.enqueue_trial(base_params(base.hyperparameters))
    study.optimize(lambda trial: suggest(trial, base.hyperparameters) and 0.1, n_trials=1)


def test_a_trial_that_sends_no_heartbeat_is_failed_and_not_counted(study_db, tmp_path):
    """A trial's process is stopped (SIGSTOP: alive, but silent): in PostgreSQL its
    trial is failed once its heartbeat is older than the grace period."""
    waiting = subprocess.Popen(
        [sys.executable, "-c", WAITING_TRIAL, study_db], stdout=subprocess.PIPE, text=True
    )
    try:
        assert waiting.stdout.readline() == "running\n"
        os.kill(waiting.pid, signal.SIGSTOP)
        where = Study(name="s", storage=study_db, trials=0, heartbeat_seconds=1, grace_seconds=2)
        said: list[str] = []
        for _ in range(100):  # the grace period is 2 s; the server's clock decides
            study = where.open(say=said.append)
            if study.trials[0].state != TrialState.RUNNING:
                break
            time.sleep(0.2)
    finally:
        waiting.kill()
        waiting.wait()

    [trial] = study.trials
    assert trial.state == TrialState.FAIL
    assert said == [f"trial 0 of process {trial.user_attrs['process']}: no heartbeat for 2 s, "
                    "marked failed"]  # fmt: skip
    base = TrainingChoice(**TINY).resolve()
    _one_complete_trial(study, base)
    result = write_result(study, base, tmp_path / "r.json", where, profile="smoke")
    assert (result.study.trials, result.study.complete, result.study.failed) == (2, 1, 1)
    assert result.study.running == 0


def test_a_killed_trial_in_a_journal_is_failed_and_not_counted(tmp_path):
    """A journal has no heartbeat: a trial whose process was SIGKILLed is failed when the
    study is next opened, because its process is gone."""
    journal = tmp_path / "studies.journal"
    waiting = subprocess.Popen(
        [sys.executable, "-c", WAITING_TRIAL, str(journal)], stdout=subprocess.PIPE, text=True
    )
    assert waiting.stdout.readline() == "running\n"
    waiting.send_signal(signal.SIGKILL)
    waiting.wait()

    where = Study(name="s", storage=str(journal), trials=0)
    said: list[str] = []
    study = where.open(say=said.append)
    [trial] = study.trials
    assert trial.state == TrialState.FAIL
    assert trial.user_attrs["failed_because"] == "its process is gone"
    assert said == [f"trial 0 of process {trial.user_attrs['process']}: its process is gone, "
                    "marked failed"]  # fmt: skip
    base = TrainingChoice(**TINY).resolve()
    _one_complete_trial(study, base)
    result = write_result(study, base, tmp_path / "r.json", where, profile="smoke")
    assert (result.study.trials, result.study.complete, result.study.failed) == (2, 1, 1)


@pytest.mark.parametrize("kind", ["postgresql", "journal"])
def test_a_trial_killed_before_it_names_its_process_is_failed(kind, request, tmp_path):
    """SIGKILLed right after Optuna created its trial: no process named, no heartbeat
    (which Optuna's stale-trial query needs). Left alone for the grace period, then
    failed when the study is opened."""
    storage = request.getfixturevalue("study_db") if kind == "postgresql" else None
    storage = storage or str(tmp_path / "studies.journal")
    asking = subprocess.Popen(
        [sys.executable, "-c", ASKED_TRIAL, storage], stdout=subprocess.PIPE, text=True
    )
    assert asking.stdout.readline() == "asked\n"
    asking.send_signal(signal.SIGKILL)
    asking.wait()

    study = Study(name="s", storage=storage, trials=0).open()  # the grace period: 180 s
    assert [t.state for t in study.trials] == [TrialState.RUNNING]
    where = Study(name="s", storage=storage, trials=0, heartbeat_seconds=1, grace_seconds=1)
    said: list[str] = []
    for _ in range(100):  # the grace period is 1 s after the trial's start
        study = where.open(say=said.append)
        if study.trials[0].state != TrialState.RUNNING:
            break
        time.sleep(0.2)

    [trial] = study.trials
    assert trial.state == TrialState.FAIL and "process" not in trial.user_attrs
    assert trial.user_attrs["failed_because"] == "it names no process 1 s after it started"
    assert said == ["trial 0: it names no process 1 s after it started, marked failed"]
    base = TrainingChoice(**TINY).resolve()
    _one_complete_trial(study, base)
    result = write_result(study, base, tmp_path / "r.json", where, profile="smoke")
    assert (result.study.complete, result.study.failed, result.study.running) == (1, 1, 0)


def test_a_live_trial_of_another_process_is_left_running(tmp_path):
    journal = tmp_path / "studies.journal"
    waiting = subprocess.Popen(
        [sys.executable, "-c", WAITING_TRIAL, str(journal)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert waiting.stdout.readline() == "running\n"
        study = Study(name="s", storage=str(journal), trials=0).open()
    finally:
        waiting.kill()
        waiting.wait()
    assert [t.state for t in study.trials] == [TrialState.RUNNING]


def _journal_of_two_trials(path: Path) -> bytes:
    study = Study(name="s", storage=str(path), trials=0).open()
    study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=2)
    return path.read_bytes()


@pytest.mark.parametrize(
    "damage, line",
    [
        (lambda records: records[:-7], "last"),  # cut inside the last record
        (lambda records: records[:-7] + b'{"op_code":0}\n', "last"),  # then appended to
        (lambda records: records.replace(b"{", b"\x00\xff", 1), 1),  # not UTF-8
        (lambda records: records + b"[1, 2]\n", "after"),  # JSON, but no record
    ],
)
def test_a_damaged_journal_is_named_at_its_line_with_what_to_do(tmp_path, damage, line):
    journal = tmp_path / "studies.journal"
    records = _journal_of_two_trials(journal)
    journal.write_bytes(damage(records))
    total = len(damage(records).rstrip(b"\n").split(b"\n"))
    number = {"last": total, "after": total}.get(line, line)

    with pytest.raises(TuningStorageError) as raised:
        Study(name="s", storage=str(journal), trials=1).open()
    message = str(raised.value)
    assert f"journal {journal} is damaged at line {number} of {total}" in message
    assert "move it away" in message
    if number > 1:
        assert f"head -n {number - 1} {journal}" in message


def test_a_journal_damaged_while_the_study_is_open_is_named(tmp_path):
    journal = tmp_path / "studies.journal"
    _journal_of_two_trials(journal)
    study = Study(name="s", storage=str(journal), trials=0).open()
    with journal.open("ab") as f:  # another process's record torn, then one appended
        f.write(b'{"op_code":5,"worker_id":"x"\n{"op_code":0}\n')

    with pytest.raises(TuningStorageError, match=f"journal {journal} is damaged at line"):
        study.optimize(lambda trial: trial.suggest_float("x", 0, 1), n_trials=1)


def test_the_command_names_a_damaged_journal_in_one_line(store, tmp_path, capsys):
    journal = tmp_path / "studies.journal"
    journal.write_bytes(_journal_of_two_trials(journal)[:-7])
    command = tune_command(store, str(journal), tmp_path / "home", trials=1)[3:]

    assert main(command) == 1
    lines = error_lines(capsys.readouterr().err)
    assert len(lines) == 1, lines
    [line] = lines
    assert line.startswith(f"error: the study's journal {journal} is damaged at line")
    assert line.endswith(f"mv {journal}.new {journal})")


def test_a_directory_given_as_the_journal_is_named(tmp_path):
    with pytest.raises(TuningStorageError) as raised:
        Study(name="s", storage=str(tmp_path), trials=1).open()
    assert f"at {tmp_path}: IsADirectoryError" in str(raised.value)
    assert str(raised.value).endswith("(give the path of a journal file, or a storage URL)")


def test_a_storage_no_database_driver_knows_is_named_with_what_to_give():
    """A URL of a kind Optuna cannot use (redis://) is named by its scheme, host and path,
    never its password, with the storages it can use."""
    study = Study(name="s", storage="redis://user:secret@127.0.0.1:6379/0", trials=1)
    with pytest.raises(TuningStorageError) as raised:
        study.open(optuna.pruners.NopPruner())
    message = str(raised.value)
    assert message.startswith("cannot open study 's' at redis://127.0.0.1:6379/0: ")
    assert message.endswith(
        "(give the path of a journal file, or a postgresql:// or sqlite:/// URL)"
    )
    assert "secret" not in message and "user" not in message


def test_the_command_shows_a_storage_url_without_credentials_whole(store, tmp_path, capsys):
    """Only a URL that may hold a password is masked in the command's errors: one without
    a user part is the only name the storage has."""
    argv = ["tune", "--store", str(store.path), "--home", str(tmp_path), "--trials", "1"]
    assert main([*argv, "--storage", "redis://127.0.0.1:6379/0"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert line.startswith("error: cannot open study 'default' at redis://127.0.0.1:6379/0: ")
    assert main([*argv, "--storage", "redis://user:s3cret@127.0.0.1:6379/0"]) == 1
    [line] = capsys.readouterr().err.strip().splitlines()
    assert "s3cret" not in line and "user" not in line


def test_a_sqlite_study_in_a_directory_not_made_yet_opens(tmp_path):
    """As a journal's: the directory of a sqlite:/// file is made, not retried as a
    server that is down."""
    study = Study(name="s", storage=f"sqlite:///{tmp_path}/not/made/yet.db", trials=1)
    assert study.open(optuna.pruners.NopPruner()).trials == []
    assert (tmp_path / "not" / "made" / "yet.db").is_file()


def test_optunas_lines_go_to_the_stderr_of_the_command_running_now(monkeypatch):
    """The handler the first ``tune`` of a process installs writes to whatever stderr is
    current: a later command (tests run many in one process) never writes to a closed one,
    which logging would answer with a page of "Logging error" on stderr."""
    import io
    import logging

    import optuna

    from kalshi_pipeline.cli.commands import quiet_optuna_tracebacks

    root = optuna.logging.get_logger("optuna")
    before = list(root.handlers)
    first = io.StringIO()
    monkeypatch.setattr(sys, "stderr", first)
    try:
        quiet_optuna_tracebacks(debug=False)
        first.close()
        second = io.StringIO()
        monkeypatch.setattr(sys, "stderr", second)
        quiet_optuna_tracebacks(debug=False)
        root.info("a trial finished")
        assert second.getvalue().endswith("a trial finished\n")
        assert "Logging error" not in second.getvalue()
    finally:
        for handler in root.handlers:
            if handler not in before:
                root.removeHandler(handler)
        logging.getLogger("optuna").handlers[:] = before
