"""Cross-session assets: difficulty scores, the split, the three phase models, the report.

Each asset reads its config, calls one step of :mod:`kalshi_pipeline.workflow` (the steps
``kalshi-pipeline train`` runs too) and attaches metadata.

They read the small per-view statistics of every session partition from the views files'
footers (never all view data at once); only the training and evaluation steps load the
views they use. Each training run writes under ``artifacts/models/run-<run id>/``, so a
retrain never overwrites the model it warm-starts or compares with.
"""

import base64
from dataclasses import replace
from pathlib import Path
from typing import TypedDict

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq

from kalshi_pipeline.defs.assets.data_assets import market_views
from kalshi_pipeline.defs.config import (
    FilterSettings,
    SplitSettings,
    TrainingSettings,
    training_of,
)
from kalshi_pipeline.defs.partitions import sessions
from kalshi_pipeline.defs.resources import PipelineResource
from kalshi_pipeline.market.split import Split, SplitName, needed_sides, split_views
from kalshi_pipeline.market.views import session_of_key
from kalshi_pipeline.pipeline_config import ExecutionChoice
from kalshi_pipeline.training.candidates import select_candidate
from kalshi_pipeline.training.jobs import PhaseJob, PhaseResult
from kalshi_pipeline.training.lineage import read_lineage
from kalshi_pipeline.training.report import PLOTS
from kalshi_pipeline.workflow import (
    describe_split,
    evaluate,
    phase_candidates,
    phase_job,
    progress_files,
    select_views,
    train_candidate,
    views_for,
)


@dg.asset(deps=[market_views], group_name="training", kinds={"parquet"})
def difficulty_scores(
    context: dg.AssetExecutionContext, pipeline: PipelineResource, config: FilterSettings
) -> pa.Table:
    """Difficulty and filter flags of every view of every ingested session (the
    selection of :func:`kalshi_pipeline.workflow.select_views`).

    A session is read when its ``market_views`` partition is materialised and its views
    file exists. Registered sessions that fail either test are left out, named in the
    ``sessions_without_views`` metadata and in a warning: a retrain never quietly runs on
    fewer sessions than were registered. A views file that is damaged, older than the
    views' digests, holds another session's views or was built from another raw copy of
    its session (another home's) fails the step, naming the file and the partition to
    materialise again (:class:`~kalshi_pipeline.market.views.ViewsDamaged`): it is never
    used, nor quietly left out."""
    registered = sorted(context.instance.get_dynamic_partitions(sessions.name), key=int)
    ingested = context.instance.get_materialized_partitions(market_views.key)
    used, without = [], {}
    for key in registered:
        path = pipeline.views_path(key)
        if key not in ingested:
            without[key] = "not ingested (its market_views partition is not materialised)"
        elif not path.exists():
            without[key] = f"ingested, but its views file {path} is missing"
        else:
            used.append(key)
    # Verified: each file holds its session's views, built from this home's raw copy.
    footers = {int(k): pipeline.session_views_footer(int(k)) for k in used}
    table = select_views([d for f in footers.values() for d in f.descriptions], config.to_domain())
    versions = {k: f.version for k, f in footers.items()}
    sessions_column = table.column("session_id").to_pylist()
    table = table.append_column(
        VERSION_COLUMN, pa.array([versions[s] for s in sessions_column], pa.string())
    )
    # One file per run: a scheduled retrain and a sensor's retrain may overlap.
    out = pipeline.artifacts / "difficulty_scores" / f"run-{context.run.run_id}.parquet"
    out.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, out)
    passing = sum(table.column("passes_filters").to_pylist())
    left_out = [f"session {k}: {why}" for k, why in without.items()]
    if left_out:
        context.log.warning(
            f"{len(left_out)} of {len(registered)} registered sessions have no views and are "
            "left out of training: " + "; ".join(left_out)
        )
    context.add_output_metadata(
        {
            # Not "path": the IO manager's own "path" (its pickle) would replace it.
            "scores_path": dg.MetadataValue.path(str(out)),
            "sessions": len(used),
            "session_ids": dg.MetadataValue.json([int(k) for k in used]),
            "views_versions": dg.MetadataValue.json({str(k): v for k, v in versions.items()}),
            "sessions_without_views": dg.MetadataValue.md(
                "\n".join(f"- {line}" for line in left_out) or "(none)"
            ),
            "views": table.num_rows,
            "passing_filters": passing,
            "dagster/row_count": table.num_rows,
        }
    )
    return table


@dg.asset(group_name="training")
def train_holdout_split(
    context: dg.AssetExecutionContext, difficulty_scores: pa.Table, config: SplitSettings
) -> Split:
    """Market-grouped, hash-based split of the views that pass the filters.

    Every side training reads must hold a view (training; validation unless its fraction
    is 0; the holdout, which the report and the promotion compare on): else this step
    fails with :class:`~kalshi_pipeline.market.split.SplitTooSmall`, naming the empty side
    and what to add, before any phase trains. The tuning job shares this split, so it is
    refused too: what it tunes could never be evaluated or promoted on that store."""
    rules = config.to_domain()
    split = split_views(difficulty_scores, rules, needs=needed_sides(rules))
    split = replace(split, views_versions=_views_versions(difficulty_scores))
    context.add_output_metadata(
        {
            "train_markets": split.train_markets,
            "holdout_markets": split.holdout_markets,
            "train_views": len(split.train),
            "holdout_views": len(split.holdout),
            "validation_markets": split.validation_markets,
            "validation_tight_markets": split.validation_tight_markets,
            "validation_views": len(split.validation),
            "walk_forward_views": len(split.walk_forward),
            "walk_forward_sessions": dg.MetadataValue.json(
                sorted({session_of_key(k) for k in split.walk_forward})
            ),
            "holdout_fraction": config.holdout_fraction,
            "validation_fraction": config.validation_fraction,
        }
    )
    context.log.info(describe_split(split))
    return split


VERSION_COLUMN = "views_version"  # of difficulty_scores: each view's file's version


def _views_versions(scores: pa.Table) -> dict[int, str]:
    """Each session's views version in ``difficulty_scores`` (none in a table written
    before the scores carried them: nothing is pinned then)."""
    if VERSION_COLUMN not in scores.column_names:
        return {}
    sessions, versions = scores.column("session_id"), scores.column(VERSION_COLUMN)
    return dict(zip(sessions.to_pylist(), versions.to_pylist(), strict=True))


def _scored_sessions(context: dg.AssetExecutionContext) -> list[int]:
    """The sessions ``difficulty_scores`` read for this training: its materialisation in
    this run, else its latest. Unlike a model's lineage ("sessions": those of its training
    views) this includes sessions with no view in training, so the retrain sensor does not
    count them as new forever."""
    events = [
        e.asset_materialization
        for e in context.instance.all_logs(
            context.run.run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION
        )
        if e.asset_materialization is not None
        and e.asset_materialization.asset_key == difficulty_scores.key
    ]
    if not events:
        latest = context.instance.get_latest_materialization_event(difficulty_scores.key)
        events = [latest.asset_materialization] if latest and latest.asset_materialization else []
    value = events[-1].metadata.get("session_ids") if events else None
    return list(value.value) if value is not None else []


def _phase_job(
    phase: int,
    pipeline: PipelineResource,
    split: Split,
    settings: TrainingSettings,
    run_id: str,
    parent: str,
) -> PhaseJob:
    """The phase to train: the split's training and validation views, the config, into
    the run's models directory."""
    return phase_job(
        phase,
        views_for(split, SplitName.TRAIN, pipeline.session_views),
        split,
        training_of(settings),
        _models_dir(pipeline, run_id),
        _parent_path(parent),
        views_for(split, SplitName.VALIDATION, pipeline.session_views),
    )


def phase_model(phase: int) -> dg.AssetsDefinition:
    """``phase<N>_model``: a graph of steps the executor can place on different workers
    (processes here, Celery workers in the scale-out deployment): ``phase<N>_candidates``
    checks and lists the seeds, ``phase<N>_candidate`` trains one seed (one step per
    seed), ``phase<N>_select`` keeps the best on validation. The asset's config is one
    ``TrainingSettings``, handed to each step."""
    name = f"phase{phase}"
    candidates, candidate, select = (
        _candidates_op(phase), _candidate_op(phase), _select_op(phase)
    )  # fmt: skip

    def graph(train_holdout_split: Split, **parent):
        trained = candidates(train_holdout_split, **parent).map(
            lambda seed: candidate(train_holdout_split, seed, **parent)
        )
        return select(train_holdout_split, trained.collect(), **parent)

    parent_input = {"parent": dg.AssetIn(f"phase{phase - 1}_model")} if phase > 1 else {}
    return dg.graph_asset(
        name=f"{name}_model",
        group_name="training",
        kinds={"pytorch"},
        config=_settings_for_each_step(name),
        ins={"train_holdout_split": dg.AssetIn("train_holdout_split"), **parent_input},
        description=PHASE_DESCRIPTIONS[phase],
    )(graph if phase == 1 else _with_parent(graph))


def _settings_for_each_step(name: str) -> dg.ConfigMapping:
    """The asset's one ``TrainingSettings``, handed to each of its three steps."""
    steps = (f"{name}_candidates", f"{name}_candidate", f"{name}_select")
    return dg.ConfigMapping(
        config_fn=lambda values: {step: {"config": values} for step in steps},
        config_schema=TrainingSettings.to_config_schema(),
    )


def _models_dir(pipeline: PipelineResource, run_id: str) -> Path:
    """Where a run's phase models go: one directory per run under the artifacts."""
    return pipeline.artifacts / "models" / f"run-{run_id}"


def _parent_path(parent: str) -> Path | None:
    """The parent model's path as the step's input carries it ("" for phase 1)."""
    return Path(parent) if parent else None


def _candidates_op(phase: int) -> dg.OpDefinition:
    """``phase<N>_candidates``: the phase's checks, then one output per seed. A budget
    that rounds up to whole rollouts is said first, as a warning (what the CLI's ``train``
    prints: :meth:`~kalshi_pipeline.training.config.TrainingConfig.budget_note`)."""

    @dg.op(name=f"phase{phase}_candidates", out=dg.DynamicOut(int))
    def candidates(
        context: dg.OpExecutionContext,
        pipeline: PipelineResource,
        train_holdout_split: Split,
        config: TrainingSettings,
        parent: str = "",
    ):
        # What is trained when a budget rounds up, said first, where Dagster shows it.
        if note := training_of(config).budget_note():
            context.log.warning(f"phase {phase}: {note}")
        job = _phase_job(phase, pipeline, train_holdout_split, config, context.run.run_id, parent)
        seeds = phase_candidates(job)
        for seed in seeds:
            yield dg.DynamicOutput(seed, mapping_key=f"seed_{seed}")

    return candidates


class TrainedCandidate(TypedDict):
    """A ``phase<N>_candidate`` step's output (plain data: Dagster pickles it between
    steps): the seed and its :class:`PhaseResult` as JSON."""

    seed: int
    result: dict


def _candidate_op(phase: int) -> dg.OpDefinition:
    """``phase<N>_candidate``: one seed's candidate, its progress in the run's log."""

    @dg.op(name=f"phase{phase}_candidate", retry_policy=CANDIDATE_RETRIES)
    def candidate(
        context: dg.OpExecutionContext,
        pipeline: PipelineResource,
        train_holdout_split: Split,
        seed: int,
        config: TrainingSettings,
        parent: str = "",
    ) -> dict:  # a TrainedCandidate (Dagster cannot type-check a TypedDict)
        job = _phase_job(phase, pipeline, train_holdout_split, config, context.run.run_id, parent)
        result = train_candidate(job, seed, lambda line: context.log.info(f"seed {seed}, {line}"))
        return TrainedCandidate(seed=seed, result=result.to_json())

    return candidate


def _select_op(phase: int) -> dg.OpDefinition:
    """``phase<N>_select``: the best candidate on validation, the phase's model."""

    @dg.op(name=f"phase{phase}_select")
    def select(
        context: dg.OpExecutionContext,
        pipeline: PipelineResource,
        train_holdout_split: Split,
        trained: list[dict],  # of TrainedCandidate
        config: TrainingSettings,
        parent: str = "",
    ) -> str:
        training = training_of(config)
        out = _models_dir(pipeline, context.run.run_id)
        done: list[TrainedCandidate] = trained
        results = {t["seed"]: PhaseResult.from_json(t["result"]) for t in done}
        result = select_candidate(phase, training, out, _parent_path(parent), results)
        context.add_output_metadata(_model_metadata(context, result))
        return str(result.model_path)

    return select


def _model_metadata(context: dg.OpExecutionContext, result: PhaseResult) -> dict:
    """A phase model's metadata: where it is, and its lineage."""
    lineage = read_lineage(result.model_path)
    return {
        "model_path": dg.MetadataValue.path(str(result.model_path)),
        "timesteps": result.timesteps,
        "sessions": dg.MetadataValue.json(list(lineage.sessions)),
        "scored_sessions": dg.MetadataValue.json(_scored_sessions(context)),
        "views": len(lineage.views),
        "parent_model": lineage.parent_model or "",
        "seed": lineage.seed,
        "config": dg.MetadataValue.json(dict(lineage.config)),
        "feature_layout": f"{lineage.feature_layout} v{lineage.feature_layout_version}",
        # Seed candidates: every one's validation score, and why the winner won.
        "candidates": dg.MetadataValue.json([c.to_json() for c in lineage.candidates or ()]),
        "selection": lineage.selection or "one seed",
    }


def _with_parent(graph):
    def with_parent(train_holdout_split: Split, parent: str):
        return graph(train_holdout_split, parent=parent)

    return with_parent


PHASE_DESCRIPTIONS = {
    1: "Phase 1: balanced over all training views; the best of its seed candidates.",
    2: "Phase 2: curriculum by difficulty, warm-started from phase 1.",
    3: "Phase 3: balanced plus extra episodes where phase 2 does worst, from phase 2.",
}
# A candidate's worker can die (a killed process, a lost machine): the step runs again,
# resuming from the candidate's checkpoints.
CANDIDATE_RETRIES = dg.RetryPolicy(max_retries=2, delay=1)
phase1_model = phase_model(1)
phase2_model = phase_model(2)
phase3_model = phase_model(3)


@dg.asset(group_name="evaluation", kinds={"markdown"})
def evaluation_report(
    context: dg.AssetExecutionContext,
    pipeline: PipelineResource,
    train_holdout_split: Split,
    phase3_model: str,
    config: TrainingSettings,
) -> str:
    """The phase-3 model against random, always-HOLD and the imbalance rule (and in maker
    mode the quote rule), played in the model's own execution settings (its lineage's);
    execution settings in this asset's config that differ from them override them, and
    the report says so."""
    split = train_holdout_split
    model = Path(phase3_model)
    out = pipeline.artifacts / "reports" / f"run-{context.run.run_id}"
    report = evaluate(
        model,
        training_of(config),
        views_for(split, SplitName.TRAIN, pipeline.session_views),
        views_for(split, SplitName.HOLDOUT, pipeline.session_views),
        split,
        out,
        progress_files(model.parent.parent),
        views_for(split, SplitName.WALK_FORWARD, pipeline.session_views),
        on_progress=context.log.info,
        execution=config.domain_of(ExecutionChoice),
    )
    images = "\n\n".join(
        f"![{name}](data:image/png;base64,{base64.b64encode((out / name).read_bytes()).decode()})"
        for name in PLOTS
    )
    context.add_output_metadata(
        {
            "report": dg.MetadataValue.path(str(report.path)),
            "model": dg.MetadataValue.path(phase3_model),
            "summary": dg.MetadataValue.md(report.results_markdown),
            "plots": dg.MetadataValue.md(images),
            "generalisation_gap": report.summary.generalisation_gap or 0.0,
        }
    )
    return str(report.path)
