"""``tuned_hyperparameters``: an Optuna study on the current split, in a job of its own.

Tuning costs many trainings, so it is not part of every retrain: run the
``tune_hyperparameters`` job when the data has changed enough to matter, then give the
file it writes to training (``hyperparams`` in the training config of
``train_and_evaluate``, or ``kalshi-pipeline train --hyperparams``). Trials use only the
training and validation views of ``train_holdout_split``; the holdout is never read.

The study's storage defaults to a journal file in the pipeline home; a PostgreSQL URL
(``storage``) lets several runs or ``kalshi-pipeline tune`` processes share one study.
Run config is shown in the UI: keep the password out of the URL (libpq reads
``PGPASSWORD`` or ``~/.pgpass``).
"""

import dagster as dg

from kalshi_pipeline.defs.config import TuningSettings
from kalshi_pipeline.defs.resources import PipelineResource
from kalshi_pipeline.paths import hyperparameters_file, tuning_dir
from kalshi_pipeline.workflow import Split, tune


@dg.asset(group_name="tuning", kinds={"optuna"})
def tuned_hyperparameters(
    context: dg.AssetExecutionContext,
    pipeline: PipelineResource,
    train_holdout_split: Split,
    config: TuningSettings,
) -> str:
    """The best hyperparameters of an Optuna study (the objective: the lower end of the
    validation interval of model minus HOLD), as a file training accepts."""
    choice = config.to_domain()
    home = pipeline.home_path
    out = hyperparameters_file(home, choice.study)
    result = tune(
        train_holdout_split, pipeline.session_views, choice.pipeline(), choice,
        tuning_dir(home) / "studies.journal", tuning_dir(home) / choice.study, out,
        context.log.info,
    )  # fmt: skip
    best, study = result["best"], result["study"]
    context.add_output_metadata(
        {
            "hyperparameters_file": dg.MetadataValue.path(str(out)),
            "objective": best["objective"],
            "model_minus_hold": best["model_minus_hold"],
            "ci95": dg.MetadataValue.json(best["ci95"]),
            "best_trial": best["trial"],
            "params": dg.MetadataValue.json(best["params"]),
            "hyperparameters": dg.MetadataValue.json(result["hyperparameters"]),
            "trials": study["trials"],
            "complete": study["complete"],
            "pruned": study["pruned"],
            "storage": study["storage"],
        }
    )
    return str(out)
