"""Tuning with Optuna: a small study on a journal file and on the real PostgreSQL server
(two processes sharing one study), pruning on the periodic validation, and the
hyperparameter file that training reads."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from contextlib import closing
from dataclasses import replace
from pathlib import Path

import optuna
import psycopg2
import pytest
import sqlalchemy as sa
from stable_baselines3.common.save_util import json_to_data
from stable_baselines3.common.vec_env import SubprocVecEnv

from kalshi_pipeline.cli import main
from kalshi_pipeline.market.split import SplitName
from kalshi_pipeline.pipeline_config import (
    ExecutionChoice,
    PipelineConfig,
    SplitConfig,
    TrainingChoice,
    TuningChoice,
)
from kalshi_pipeline.training import phases, tuning
from kalshi_pipeline.training.config import AlgorithmConfig, profile, read_hyperparameters
from kalshi_pipeline.training.files import read_csv_rows
from kalshi_pipeline.training.tuning import (
    base_params,
    default_pruner,
    pruning_step,
    suggest,
    write_result,
)
from kalshi_pipeline.training.tuning_result import TuningResult
from kalshi_pipeline.training.tuning_storage import Study, TuningStorageError, _lost_creation_race
from kalshi_pipeline.workflow import (
    load_split,
    run,
    tune,
    tune_trials,
    views_for,
)

SPLIT = SplitConfig(holdout_fraction=0.3, validation_fraction=0.3)
TINY = {"profile": "smoke", "timesteps_per_phase": 1024}


@pytest.fixture(scope="module")
def store(tuning_store):
    return tuning_store


def small_study(
    store, where: Path, trials=3, seed=0, **options
) -> tuple[TuningResult, optuna.Study]:
    choice = TuningChoice(study="small", trials=trials, seed=seed, **TINY)
    config = choice.pipeline(PipelineConfig(split=SPLIT))
    split, session_views = load_split(store, config)
    journal = where / "studies.journal"
    result = tune(
        split, session_views, config, choice, journal, where / "trials",
        where / "small.json", **options,
    )  # fmt: skip
    study = Study(name="small", storage=str(journal), trials=0)
    return result, study.open(optuna.pruners.NopPruner())


def test_a_small_study_writes_the_best_trials_hyperparameters(store, tmp_path):
    # The sampler's seed 9 starts the second trial at 21% HOLD: it trades, and loses.
    said: list[str] = []
    result, study = small_study(store, tmp_path, seed=9, on_progress=said.append)
    # The profile's rollout (8 envs x 256 steps) is larger than the budget: it is said.
    assert "trial 0: each phase trains 2,048 timesteps, not its budget of 1,024" in "\n".join(said)

    assert len(study.trials) == 3
    assert all(t.state == optuna.trial.TrialState.COMPLETE for t in study.trials)
    best = study.best_trial
    assert result.best.trial == best.number and result.best.objective == best.value
    # The objective is the lower end of the validation interval of model minus HOLD, not
    # its mean (they differ for the trial that trades).
    traded = study.trials[1]
    low, high = traded.user_attrs["ci95"]
    assert traded.value == low < traded.user_attrs["model_minus_hold"] < high
    assert best.value == best.user_attrs["ci95"][0] <= best.user_attrs["model_minus_hold"]
    written = read_hyperparameters(tmp_path / "small.json")
    base = TrainingChoice(**TINY).resolve().hyperparameters
    # The first trial is the profile as set, and the file scores it beside the best.
    first, *searched = study.trials
    assert first.params == base_params(base) and first.user_attrs["profile"]
    assert result.profile_as_set.trial == first.number
    # At this budget the others never trade and tie at 0 above the loser; the first best is
    # the profile: the file is the profile exactly (its parameters give the action
    # probabilities rounded).
    assert traded.value < 0 == first.value == study.trials[2].value
    assert best.number == first.number and written == base
    assert result.profile_as_set.objective == first.value <= best.value
    assert all(t.params != first.params for t in searched)  # the search moved away from it
    # Each validation of each phase was reported for pruning, at cumulative timesteps.
    assert sorted(best.intermediate_values) == [1024, 2048, 3072]
    # A second run adds trials to the same study.
    again, study = small_study(store, tmp_path, trials=1, seed=9)
    assert len(study.trials) == again.study.trials == 4


def test_the_file_keeps_the_profile_on_a_tie_and_takes_a_better_trial(tmp_path):
    base = TrainingChoice(**TINY).resolve()
    study = optuna.create_study(direction="maximize")
    searched = base_params(base.hyperparameters) | {"gamma": 0.99, "net_arch": "32x32"}
    study.enqueue_trial(searched)
    study.enqueue_trial(base_params(base.hyperparameters), user_attrs={"profile": True})
    scores = iter([0.0, 0.0, 0.2])

    def objective(trial):
        suggest(trial, base.hyperparameters)
        return next(scores)

    study.optimize(objective, n_trials=2)  # the profile ties the earlier trial 0
    where = Study(name="ties", storage=str(tmp_path / "j"), trials=0)
    result = write_result(study, base, tmp_path / "a.json", where, profile="smoke")
    assert study.best_trial.number == 0 and result.best.trial == 1
    assert read_hyperparameters(tmp_path / "a.json") == base.hyperparameters  # exactly

    study.optimize(objective, n_trials=1)  # a searched trial above the profile
    result = write_result(study, base, tmp_path / "b.json", where, profile="smoke")
    best = study.trials[2]
    assert result.best.trial == 2 and result.profile_as_set.trial == 1
    written = read_hyperparameters(tmp_path / "b.json")
    assert written == suggest(optuna.trial.FixedTrial(best.params), base.hyperparameters)


def test_the_file_says_which_execution_settings_the_study_was_tuned_in(tmp_path):
    """Hyperparameters found for a maker may not suit a taker: the file names the
    execution settings its trials trained with."""
    chosen = PipelineConfig(
        training=TrainingChoice(**TINY),
        execution=ExecutionChoice(execution="maker", latency_ms=0, series_fees=("KXA:quadratic",)),
    )
    base = chosen.training_config()
    study = optuna.create_study(direction="maximize")
    study.enqueue_trial(base_params(base.hyperparameters), user_attrs={"profile": True})
    study.optimize(lambda trial: suggest(trial, base.hyperparameters) and 0.0, n_trials=1)
    where = Study(name="maker", storage=str(tmp_path / "j"), trials=0)

    result = write_result(study, base, tmp_path / "maker.json", where, profile="smoke")

    written = json.loads((tmp_path / "maker.json").read_text())["study"]["execution"]
    assert written["execution"] == "maker" and written["latency_ms"] == 0
    assert written["series_fees"] == ["KXA:quadratic"]
    assert result.study.execution == written
    assert TuningResult.from_json(json.loads((tmp_path / "maker.json").read_text())) == result


# A trial that names its process, runs the profile's hyperparameters first (as tune does)
# and waits: its process is killed.
PROFILE_TRIAL = """
import sys, time
from kalshi_pipeline.training import tuning
from kalshi_pipeline.training.config import profile
study = tuning.Study(name="p", storage=sys.argv[1], trials=1).open()
tuning._enqueue_profile(study, profile("smoke").hyperparameters)
def objective(trial):
    tuning.mark_process(trial)
    print("running", flush=True)
    time.sleep(600)
study.optimize(objective, n_trials=1)
"""


def test_the_profiles_trial_runs_again_only_when_its_process_died(store, tmp_path):
    """Its process SIGKILLed, the profile's trial is run again by the next tune; failing
    by an error of its own (here: its work directory is a file), it is not."""
    journal = str(tmp_path / "studies.journal")
    killed = subprocess.Popen(
        [sys.executable, "-c", PROFILE_TRIAL, journal], stdout=subprocess.PIPE, text=True
    )
    assert killed.stdout.readline() == "running\n"
    killed.kill()
    killed.wait()
    choice = TuningChoice(study="p", trials=1, **TINY)
    config = choice.pipeline(PipelineConfig(split=SPLIT))
    split, session_views = load_split(store, config)
    not_a_directory = tmp_path / "trials"
    not_a_directory.write_text("")

    for _ in range(2):
        with pytest.raises(OSError):
            tune_trials(split, session_views, config, choice, Path(journal), not_a_directory)

    where = tuning.Study(name="p", storage=journal, trials=1)
    study = where.open()
    dead, again, searched = study.trials
    assert dead.user_attrs["failed_because"] == "its process is gone"
    assert dead.user_attrs["profile"] and again.user_attrs["profile"]
    assert again.user_attrs["failed_because"].startswith(("FileExistsError", "NotADirectoryError"))
    assert "profile" not in searched.user_attrs
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.FAIL] * 3


def test_the_profiles_trial_is_tried_at_most_three_times(tmp_path):
    """Trials that died before they named their process (created, then left): the
    profile runs again after each, three times in all."""
    base = profile("smoke").hyperparameters
    where = tuning.Study(name="p", storage=str(tmp_path / "j"), trials=1, grace_seconds=0)
    for _ in range(4):
        study = where.open()  # fails the trial asked before
        tuning._enqueue_profile(study, base)
        if study.get_trials(states=(optuna.trial.TrialState.WAITING,)):
            study.ask()
    study = where.open()
    assert [t.user_attrs.get("profile") for t in study.trials] == [True] * 3
    assert all(
        t.user_attrs["failed_because"].startswith("it names no process") for t in study.trials
    )


def test_the_default_pruner_waits_for_two_trials_and_the_first_phase():
    config = TrainingChoice(**TINY).resolve()
    study = optuna.create_study(direction="maximize", pruner=default_pruner(config))
    phase1, phase2 = pruning_step(config, 1, 1024), pruning_step(config, 2, 1024)

    def trial_scoring(value: float) -> optuna.Trial:
        trial = study.ask()
        trial.report(value, phase1)
        trial.report(value, phase2)
        return trial

    first = trial_scoring(2.0)
    assert not first.should_prune()  # nothing to compare with
    study.tell(first, 2.0)
    second = trial_scoring(-5.0)
    assert not second.should_prune()  # one complete trial is not yet a median
    study.tell(second, -5.0)
    # The median of the complete trials at phase 2: -1.5, then 1.0.
    for value, pruned in ((1.0, False), (-6.0, True)):
        trial = study.ask()
        trial.report(-9.0, phase1)
        assert not trial.should_prune()  # phase 1 is never pruned
        trial.report(value, phase2)
        assert trial.should_prune() == pruned, value
        study.tell(trial, state=optuna.trial.TrialState.PRUNED if pruned else None,
                   values=None if pruned else value)  # fmt: skip


def test_a_trial_below_the_pruners_bar_stops_after_its_first_phase(store, tmp_path):
    # Every report after phase 1 is below this threshold: each trial is pruned there.
    pruner = optuna.pruners.ThresholdPruner(lower=1e9, n_warmup_steps=1025)
    with pytest.raises(ValueError, match="no complete trial"):
        small_study(store, tmp_path, trials=2, pruner=pruner)

    study = Study(name="small", storage=str(tmp_path / "studies.journal"), trials=0).open(pruner)
    assert [t.state for t in study.trials] == [optuna.trial.TrialState.PRUNED] * 2
    for trial in study.trials:
        assert sorted(trial.intermediate_values) == [1024, 2048]  # pruned at phase 2's end
        assert not (tmp_path / "trials" / f"trial-{trial.number}" / "phase3").exists()


def test_a_pruned_trial_stops_learning_and_closes_its_envs(store, tmp_path, monkeypatch):
    """Pruned mid-phase (validation every 256 timesteps, rollouts of 512): the pruning
    callback stops learn() at its next step, the phase saves no model, and its
    SubprocVecEnv is closed, its worker processes gone, when the trial is reported
    pruned."""
    split, session_views = load_split(store, PipelineConfig(split=SPLIT))
    train = views_for(split, SplitName.TRAIN, session_views)
    validation = views_for(split, SplitName.VALIDATION, session_views)
    config = replace(
        profile("smoke", timesteps_per_phase=1024),
        n_envs=2, subprocess_envs=True, validate_every=256,
    )  # fmt: skip
    envs = []

    def recorded(*args, **kwargs):
        envs.append(phases_make_vec_env(*args, **kwargs))
        return envs[-1]

    phases_make_vec_env = phases.make_vec_env
    monkeypatch.setattr(phases, "make_vec_env", recorded)
    # Phase 1 (steps up to 1024) is never pruned; phase 2's first report is.
    pruner = optuna.pruners.ThresholdPruner(lower=1e9, n_warmup_steps=1025)
    where = tuning.Study(name="pruned", storage=str(tmp_path / "studies.journal"), trials=1)

    study = tuning.tune(
        train, split.difficulties(train), validation, config, where, tmp_path / "trials",
        pruner=pruner,
    )  # fmt: skip

    (trial,) = study.trials  # the profile as set: n_steps 256 in the search space
    assert trial.state == optuna.trial.TrialState.PRUNED
    assert sorted(trial.intermediate_values) == [512, 1024, 1024 + 512]
    assert len(envs) == 2 and all(isinstance(e, SubprocVecEnv) for e in envs)
    for env in envs:
        assert env.closed
        assert not any(process.is_alive() for process in env.processes)
    phase2 = tmp_path / "trials" / f"trial-{trial.number}" / "phase2"
    assert (phase2 / "fingerprint.json").exists() and not (phase2 / "model.zip").exists()
    scored = [int(row["timesteps"]) for row in read_csv_rows(phase2 / "validation.csv")]
    assert 512 in scored and max(scored) < 1024  # stopped after the pruned report
    assert not phase2.with_name("phase3").exists()


def test_train_reads_the_hyperparameter_file(store, tmp_path):
    hyper = AlgorithmConfig(
        learning_rate=1.5e-4, n_steps=128, batch_size=64, n_epochs=2, gamma=0.98,
        net_arch=(16, 8), initial_action_probabilities=(0.6, 0.15, 0.05, 0.15, 0.05),
    )  # fmt: skip
    path = tmp_path / "tuned.json"
    path.write_text(json.dumps({"format": 1, "hyperparameters": hyper.__dict__}))
    config = PipelineConfig(split=SPLIT, training=TrainingChoice(**TINY, hyperparams=str(path)))
    assert config.training_config().hyperparameters == hyper

    run(store, tmp_path / "out", config, phases=(1,))

    model = tmp_path / "out" / "models" / "phase1" / "model.zip"
    with zipfile.ZipFile(model) as archive:
        saved = json_to_data(archive.read("data").decode())
    assert (saved["n_steps"], saved["gamma"], saved["n_epochs"]) == (128, 0.98, 2)
    assert saved["policy_kwargs"]["net_arch"] == [16, 8]
    # A flag still changes what the file says.
    changed = TrainingChoice(**TINY, hyperparams=str(path), gamma=0.9).resolve()
    assert changed.hyperparameters.gamma == 0.9 and changed.hyperparameters.n_steps == 128


@pytest.mark.parametrize(
    ("content", "says"),
    [
        (None, "does not exist"),
        ("{not json", "is not one kalshi-pipeline tune wrote"),
        ('{"hyperparameters": {"learning_rat": 0.1}}', "unknown hyperparameters ['learning_rat']"),
        ('{"hyperparameters": {"initial_action_probabilities": [1, 2]}}', "5 positive numbers"),
    ],
)
def test_a_bad_hyperparameter_file_is_an_error_naming_it(store, tmp_path, capsys, content, says):
    path = tmp_path / "tuned.json"
    if content is not None:
        path.write_text(content)
    code = main(["train", "--store", str(store.path), "--out", str(tmp_path / "o"),
                 "--hyperparams", str(path)])  # fmt: skip
    err = capsys.readouterr().err
    assert code != 0 and str(path) in err and says in err


def test_two_processes_share_one_study_in_postgresql(store, collector_db, tmp_path):
    storage = collector_db  # postgresql://: the psycopg2 driver is chosen for it
    command = [
        sys.executable, "-m", "kalshi_pipeline.cli", "tune", "--store", str(store.path),
        "--trials", "2", "--storage", storage, "--study", "shared", "--profile", "smoke",
        "--timesteps", "1024", "--holdout-fraction", "0.3", "--validation-fraction", "0.3",
    ]  # fmt: skip
    workers = [
        subprocess.Popen(
            command + ["--home", str(tmp_path / f"home-{i}"), "--sampler-seed", str(i)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )  # fmt: skip
        for i in (1, 2)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    assert [w.returncode for w in workers] == [0, 0], outputs

    study = optuna.load_study(
        study_name="shared", storage=storage.replace("postgresql://", "postgresql+psycopg2://")
    )
    assert len(study.trials) == 4
    assert sorted(t.number for t in study.trials) == [0, 1, 2, 3]
    processes = {t.user_attrs["process"] for t in study.trials}
    assert len(processes) == 2  # both processes ran trials of the one study
    finished = {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert all(t.state in finished for t in study.trials)
    # The profile's trial ran once (or, had both processes enqueued it at one moment, once
    # in each). Each process's sampler has its own seed: their first random trials differ.
    as_set = [t for t in study.trials if t.user_attrs.get("profile")]
    assert 1 <= len(as_set) <= 2
    first = [
        min(
            (t for t in study.trials if t.user_attrs["process"] == p and t not in as_set),
            key=lambda t: t.number,
        )
        for p in processes
    ]
    assert first[0].params != first[1].params
    # The file names the storage without credentials; each process wrote the best it saw.
    written = json.loads((tmp_path / "home-1/artifacts/hyperparameters/shared.json").read_text())
    assert written["study"]["storage"].startswith("postgresql 127.0.0.1:5432/")


def test_a_database_another_application_versions_is_refused_naming_why(collector_db):
    """Optuna and Dagster both keep their schema version in ``alembic_version``: a study
    pointed at Dagster's database fails with a hint, not only Optuna's version message."""
    with closing(psycopg2.connect(collector_db)) as conn, conn.cursor() as cur:
        cur.execute("CREATE TABLE alembic_version (version_num varchar(32) PRIMARY KEY)")
        cur.execute("INSERT INTO alembic_version VALUES ('29a8e9d74220')")  # not Optuna's
        conn.commit()

    with pytest.raises(TuningStorageError, match="a database of its own") as error:
        Study(name="s", storage=collector_db, trials=1).open()
    assert "postgres@" not in str(error.value)


def test_losing_the_race_to_create_a_table_is_retried_and_other_errors_are_not(collector_db):
    """The server's own errors: a table created first by another process is a race lost
    (``Study.open`` retries), a missing table is not."""
    engine = sa.create_engine(collector_db.replace("postgresql://", "postgresql+psycopg2://"))
    errors = []
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE studies (study_id int)"))
    for statement in ("CREATE TABLE studies (study_id int)", "SELECT * FROM no_such_table"):
        with pytest.raises(sa.exc.ProgrammingError) as raised, engine.begin() as connection:
            connection.execute(sa.text(statement))
        errors.append(raised.value)
    engine.dispose()

    assert [_lost_creation_race(e) for e in errors] == [True, False]
