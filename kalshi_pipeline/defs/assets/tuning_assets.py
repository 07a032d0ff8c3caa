"""``tuned_hyperparameters``: an Optuna study on the current split, in a job of its own.

Tuning costs many trainings, so it is not part of every retrain: run the
``tune_hyperparameters`` job when the data has changed enough to matter, then give the
file it writes to training (``hyperparams`` in the training config of
``train_and_evaluate``, or ``kalshi-pipeline train --hyperparams``). Trials use only the
training and validation views of ``train_holdout_split``; the holdout is never read.

The asset is a graph of steps the executor can place on different workers:
``tuning_trials`` opens (or creates) the study and lists the trials, ``tuning_trial`` runs
one trial (one step per trial, each with its own sampler seed: ``seed`` + its index), and
``tuning_result_file`` writes the best trial of the study as the hyperparameter file. Every
trial step reads and writes the one study, so its storage must be reachable from every
worker: the default journal file in the pipeline home does on one machine or a shared
volume; a PostgreSQL URL (``storage``, a database of the study's own: not the Dagster
instance's) does anywhere, and also lets ``kalshi-pipeline tune`` processes add trials to
the same study. Run config is shown in the UI: keep the
password out of the URL (libpq reads ``PGPASSWORD`` or ``~/.pgpass``).

A trial whose worker died is failed when the study is next opened (its process is gone,
or, in PostgreSQL, it sent no heartbeat for three minutes) and counts as failed in the
result's metadata, never as complete; the step's retry runs a new trial
(:mod:`kalshi_pipeline.training.tuning_storage`).
"""

from dataclasses import replace
from pathlib import Path

import dagster as dg

from kalshi_pipeline.defs.config import TuningSettings, tuning_pipeline
from kalshi_pipeline.defs.resources import PipelineResource
from kalshi_pipeline.market.split import Split
from kalshi_pipeline.paths import hyperparameters_file, tuning_dir
from kalshi_pipeline.workflow import tune_trials, tuning_result, tuning_study


def _journal(pipeline: PipelineResource) -> Path:
    """The study's storage when the settings name none: a journal file in the home."""
    return tuning_dir(pipeline.home_path) / "studies.journal"


@dg.op(out=dg.DynamicOut(int))
def tuning_trials(
    context: dg.OpExecutionContext, pipeline: PipelineResource, config: TuningSettings
):
    """Open the study (created here, once, rather than raced by the trials) and list the
    trials to run."""
    choice = config.to_domain()
    study = tuning_study(choice, _journal(pipeline))
    so_far = len(study.open(say=context.log.info).trials)  # dead trials failed, said why
    context.log.info(f"study {choice.study!r} at {study.shown()}: {so_far} trials so far")
    for index in range(choice.trials):
        yield dg.DynamicOutput(index, mapping_key=f"trial_{index}")


# A trial's worker can die: the step runs again, as a new trial of the study.
TRIAL_RETRIES = dg.RetryPolicy(max_retries=2, delay=1)


@dg.op(retry_policy=TRIAL_RETRIES)
def tuning_trial(
    context: dg.OpExecutionContext,
    pipeline: PipelineResource,
    train_holdout_split: Split,
    index: int,
    config: TuningSettings,
) -> int:
    """One trial: three phases on the training views, scored on the validation views."""
    choice = config.to_domain()
    work_dir = tuning_dir(pipeline.home_path) / choice.study
    tune_trials(
        train_holdout_split, pipeline.session_views, tuning_pipeline(config),
        replace(choice, trials=1), _journal(pipeline), work_dir, context.log.info,
        sampler_seed=choice.seed + index,
    )  # fmt: skip
    return index


@dg.op
def tuning_result_file(
    context: dg.OpExecutionContext,
    pipeline: PipelineResource,
    trials: list[int],
    config: TuningSettings,
) -> str:
    """The best trial of the study as a file training accepts."""
    choice = config.to_domain()
    out = hyperparameters_file(pipeline.home_path, choice.study)
    result = tuning_result(tuning_pipeline(config), choice, _journal(pipeline), out)
    best, study, as_set = result.best, result.study, result.profile_as_set
    compared = {} if as_set is None else {"profile_as_set_objective": as_set.objective}
    best_json = best.to_json()
    context.add_output_metadata(
        compared
        | {
            "hyperparameters_file": dg.MetadataValue.path(str(out)),
            "objective": best.objective,
            "model_minus_hold": best.model_minus_hold,
            "ci95": dg.MetadataValue.json(best_json["ci95"]),
            "best_trial": best.trial,
            "params": dg.MetadataValue.json(best_json["params"]),
            "hyperparameters": dg.MetadataValue.json(result.hyperparameters.to_json()),
            "trials": study.trials,
            "trials_this_run": len(trials),
            "complete": study.complete,
            "pruned": study.pruned,
            "failed": study.failed,
            "running": study.running,
            "storage": study.storage,
        }
    )
    return str(out)


_STEPS = ("tuning_trials", "tuning_trial", "tuning_result_file")


@dg.graph_asset(
    group_name="tuning",
    kinds={"optuna"},
    config=dg.ConfigMapping(
        config_fn=lambda values: {step: {"config": values} for step in _STEPS},
        config_schema=TuningSettings.to_config_schema(),
    ),
)
def tuned_hyperparameters(train_holdout_split: Split):
    """The best hyperparameters of an Optuna study (the objective: the lower end of the
    validation interval of model minus HOLD), as a file training accepts; one step per
    trial."""
    done = tuning_trials().map(lambda index: tuning_trial(train_holdout_split, index))
    return tuning_result_file(done.collect())
