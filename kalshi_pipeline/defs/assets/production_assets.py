"""The model in production: ``production_model`` and its blocking check ``tested_champion``.

The asset calls :func:`kalshi_pipeline.workflow.promote`: the new phase-3 model (the
challenger) replaces the champion only if, on the *current* holdout views, their paired
per-market difference has a bootstrap interval whose lower end is above 0; the first
champion must beat always-HOLD that way (:mod:`kalshi_pipeline.training.promotion`).
Every candidate is recorded in ``artifacts/models/registry.json``
(:mod:`kalshi_pipeline.training.registry`; shown here as a Markdown table, and by
``kalshi-pipeline models``). This asset is the only writer of
production: the retrain sensor and the weekly schedule run ``train_and_evaluate``, whose
last step is this decision, so they never put an untested model into production.

Outcomes, and why:

* **promoted**: the check passes.
* **refused** (the challenger did not win, or too few holdout markets): the champion
  stays, which is the system working, so the run succeeds; the check fails with WARN
  severity (yellow in the UI) and its metadata says why: the interval, the number of
  markets, the champion compared with.
* **the comparison cannot run** (no holdout view, a challenger's model file that is gone
  or does not load): the asset fails, and with it the run, naming the model; the
  candidate is recorded as failed and production does not change.
* **the champion no longer loads** (its file deleted or damaged): it is recorded as
  ``lost`` (metadata ``lost_champion``, a warning in the run's log) and the challenger is
  judged against always-HOLD, as the first champion is.
* **production is not a tested model** (the registry's champion has no winning comparison
  on record, or more than one model is active: a history edited by hand): the check fails
  with ERROR severity and, being blocking, fails the step and the run.

:func:`promote` is the gate (it writes production only after a winning comparison, under
the registry's lock); the check reads the history back afterwards.
"""

from pathlib import Path

import dagster as dg

from kalshi_pipeline.defs.assets.model_assets import phase3_model
from kalshi_pipeline.defs.paper_metadata import champion_paper_metadata
from kalshi_pipeline.defs.resources import PipelineResource
from kalshi_pipeline.market.split import Split, SplitName
from kalshi_pipeline.paper.session_files import paper_dir
from kalshi_pipeline.pipeline_config import TrainingChoice
from kalshi_pipeline.training.promotion import Decision, Outcome, champion_problems
from kalshi_pipeline.training.registry import Registry, RegistryRecord, registry_path
from kalshi_pipeline.training.registry_display import describe_champion, history_markdown
from kalshi_pipeline.workflow import promote, views_for

CHECK = "tested_champion"
PRODUCTION_CHECKS = [
    dg.AssetCheckSpec(
        CHECK,
        asset="production_model",
        blocking=True,
        description="The model in production won its comparison on the holdout (lower end of "
        "the paired interval above 0). WARN when this run's challenger was refused (the "
        "champion stays); ERROR when production holds a model without a winning comparison.",
    )
]


@dg.asset(group_name="production", check_specs=PRODUCTION_CHECKS, kinds={"pytorch"})
def production_model(
    context: dg.AssetExecutionContext,
    pipeline: PipelineResource,
    train_holdout_split: Split,
    phase3_model: str,
):
    """The champion: the phase-3 model promoted if it beats the champion (or, first,
    always-HOLD) on the current holdout; the value is the champion's history record, a
    :class:`~kalshi_pipeline.training.registry.RegistryRecord` (``None`` while no model
    has won). The metadata shows the champion's paper record: per paper-traded session
    its P&L, markets and decisions (``paper_record``), and the totals."""
    registry = registry_path(pipeline.artifacts)
    holdout = views_for(train_holdout_split, SplitName.HOLDOUT, pipeline.session_views)
    context.log.info(
        f"comparing {phase3_model} with the champion (always-HOLD while there is none) on "
        f"{len(holdout)} holdout views"
    )
    decision = promote(
        Path(phase3_model),
        holdout,
        registry,
        profile=_training_profile(context),
        run=context.run.run_id,
    )
    if decision.lost is not None:
        context.log.warning(
            f"champion {decision.lost.id} ({decision.lost.model_path}) no longer loads: "
            "recorded as lost; the challenger was judged against always-HOLD"
        )
    history = Registry(registry).read()
    metadata = _decision_metadata(decision, history, phase3_model, registry)
    # The champion's paper trading so far: the sessions paper_trading summed up.
    champion_id = decision.champion.id if decision.champion is not None else None
    metadata.update(champion_paper_metadata(paper_dir(pipeline.artifacts), champion_id))
    yield dg.Output(decision.champion, metadata=metadata)
    yield _tested_champion(decision, history, metadata)


def _decision_metadata(
    decision: Decision, history: list[RegistryRecord], phase3_model: str, registry: Path
) -> dict:
    """What the decision shows in Dagster: the outcome and why, the champion, the history
    as a table and, when a comparison ran, its numbers."""
    metadata = {
        "decision": decision.status.value,
        "reason": decision.record.reason or "already the champion",
        "champion": describe_champion(decision.champion),
        "challenger": dg.MetadataValue.path(phase3_model),
        "history": dg.MetadataValue.md(history_markdown(history)),
        "registry": dg.MetadataValue.path(str(registry)),
    }
    if decision.champion is not None:
        metadata["champion_model"] = dg.MetadataValue.path(decision.champion.model_path)
    if decision.lost is not None:
        metadata["lost_champion"] = decision.lost.reason or ""
    comparison = decision.comparison
    if comparison is not None:
        metadata.update(
            against=comparison.against,
            markets=comparison.markets,
            mean_difference=comparison.mean_difference,
            interval_low=comparison.interval[0],
            interval_high=comparison.interval[1],
        )
    return metadata


# The decision's metadata the check repeats (those a comparison did not produce are absent).
_CHECK_KEYS = (
    "decision", "reason", "champion", "against", "markets", "interval_low", "interval_high",
)  # fmt: skip


def _tested_champion(
    decision: Decision, history: list[RegistryRecord], metadata: dict
) -> dg.AssetCheckResult:
    """ERROR when production holds an untested model; else WARN when the challenger was
    refused (the champion stays, which is the system working)."""
    problems = champion_problems(history)
    check_metadata = {k: metadata[k] for k in _CHECK_KEYS if k in metadata}
    if problems:
        return dg.AssetCheckResult(
            check_name=CHECK,
            passed=False,
            severity=dg.AssetCheckSeverity.ERROR,
            metadata={**check_metadata, "problems": dg.MetadataValue.md("\n".join(problems))},
        )
    refused = decision.status not in (Outcome.PROMOTED, Outcome.UNCHANGED)
    return dg.AssetCheckResult(
        check_name=CHECK,
        passed=not refused,
        severity=dg.AssetCheckSeverity.WARN,
        metadata=check_metadata,
    )


def _training_profile(context: dg.AssetExecutionContext) -> str:
    """The training profile the phase-3 model was made with: from the run config of the
    run that materialised it (this one, or an earlier one when only this asset runs)."""
    default = TrainingChoice().profile
    event = context.instance.get_latest_materialization_event(phase3_model.key)
    run = context.instance.get_run_by_id(event.run_id) if event is not None else context.run
    ops = (run.run_config or {}).get("ops", {}) if run is not None else {}
    return ((ops.get("phase3_model") or {}).get("config") or {}).get("profile", default)
