"""The pipeline's steps, typed: what the CLI and Dagster share.

``kalshi-pipeline train`` (:func:`run`) and the Dagster assets (``kalshi_pipeline.defs``)
call the same steps with the same
:class:`~kalshi_pipeline.pipeline_config.PipelineConfig`, so the same data, config and
seed give the same split and the same model either way::

    view descriptions --select_views--> selection (Arrow table: one row per view,
                                         one boolean column per filter, the reasons)
                      --split_views---> Split (train, validation, holdout view keys)
    training views    --train_phase---> PhaseResult (phases 1, 2, 3, each from the last)
    model + views     --evaluate------> the report directory

A view is known everywhere by its key (:func:`kalshi_pipeline.market.views.view_key`,
``"<session>/<ticker>"``); training views are always taken in key order (session, then
ticker), which is what makes both paths train on the same sequence of episodes.

The split itself (:func:`~kalshi_pipeline.market.split.split_views`, :class:`Split`) is
market code; what it means for selection is said here, by :func:`describe_split`, since
only this layer knows how selection judges a model (``wins_needed``, training layer).
The configuration (every default, once) is :mod:`kalshi_pipeline.pipeline_config`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import pyarrow as pa

from kalshi_pipeline.market.difficulty import FilterConfig, score_views
from kalshi_pipeline.market.split import Split, SplitName, needed_sides, split_views
from kalshi_pipeline.market.views import (
    MarketSessionView,
    build_market_views,
    session_of_key,
    view_key,
)
from kalshi_pipeline.pipeline_config import PipelineConfig, TuningChoice
from kalshi_pipeline.training import candidates, promotion, tuning
from kalshi_pipeline.training.algorithms import MODEL_FILE
from kalshi_pipeline.training.candidates import train_candidates
from kalshi_pipeline.training.config import TrainingConfig
from kalshi_pipeline.training.evaluation import (
    MAKER,
    baseline_policies,
    evaluate_policies,
    per_market_table,
    summarise,
    wins_needed,
)
from kalshi_pipeline.training.execution_choice import ExecutionChoice
from kalshi_pipeline.training.fingerprint import check_fingerprint, training_fingerprint
from kalshi_pipeline.training.jobs import PhaseJob, PhaseResult
from kalshi_pipeline.training.model_loading import load_with_parent
from kalshi_pipeline.training.promotion import Decision
from kalshi_pipeline.training.registry import Registry
from kalshi_pipeline.training.report import WrittenReport, write_report
from kalshi_pipeline.training.tuning_result import TuningResult

PHASES = (1, 2, 3)


def select_views(descriptions: Iterable[Mapping], filters: FilterConfig) -> pa.Table:
    """One row per view (by key): its statistics, difficulty, one boolean column per
    filter, ``passes_filters`` and the reasons
    (:func:`kalshi_pipeline.market.difficulty.score_views`)."""
    table = score_views(descriptions, filters)
    sessions, tickers = (table.column(c).to_pylist() for c in ("session_id", "market_ticker"))
    keys = [view_key(s, t) for s, t in zip(sessions, tickers, strict=True)]
    return table.add_column(0, "view_key", pa.array(keys, pa.string()))


def describe_split(split: Split) -> str:
    """One line for the start of a run: the markets on each side, and what selection
    asks of a model on the validation markets (:func:`wins_needed`): a model whose
    gains are confined to tight markets cannot show beyond noise with fewer tight
    validation markets than that, which the line then says."""
    forward = len({session_of_key(k) for k in split.walk_forward})
    line = (
        f"split: {split.train_markets} training, {split.validation_markets} validation "
        f"({split.validation_tight_markets} of tight spread) and {split.holdout_markets} "
        f"holdout markets; {forward} walk-forward session"
        f"{'' if forward == 1 else 's'}"
    )
    if not split.validation_markets:
        return line + "; no validation: each phase's output is its last checkpoint"
    wins = wins_needed(split.validation_markets)
    if wins is None:
        return line
    line += (
        f"; to beat always-HOLD beyond noise, a model must win on at least {wins} of the "
        f"{split.validation_markets} validation markets ({wins / split.validation_markets:.0%}"
        f"), more if it loses on any"
    )
    if split.validation_tight_markets < wins:
        line += (
            f"; with {split.validation_tight_markets} of tight spread, a model that gains "
            f"on tight markets only cannot"
        )
    return line


def views_for(
    split: Split, side: SplitName, session_views: Callable[..., Sequence[MarketSessionView]]
) -> list[MarketSessionView]:
    """The views of one side of ``split``, in its order; ``session_views(id)`` gives a
    session's views (from its views file, whose reader refuses another session's, or held
    in memory). The split's ``views_versions`` pin sessions: each is read as
    ``session_views(id, version)``, at the version the split was made from or an error
    saying it changed (:class:`~kalshi_pipeline.market.views.ViewsChanged`, or the
    caller's own), so a run never mixes two versions of a session ingested again."""
    keys: Sequence[str] = getattr(split, side.value)
    wanted: dict[int, set[str]] = {}
    for key in keys:
        wanted.setdefault(session_of_key(key), set()).add(key)
    found = {}
    for session_id in sorted(wanted):
        pinned = split.views_versions.get(session_id)
        views = session_views(session_id) if pinned is None else session_views(session_id, pinned)
        found.update((v.key, v) for v in views if v.key in wanted[session_id])
    missing = [k for k in keys if k not in found]
    if missing:
        raise KeyError(f"{len(missing)} views of the split are gone, e.g. {missing[0]}")
    return [found[k] for k in keys]


def train_phase(
    phase: int,
    views: Sequence[MarketSessionView],
    split: Split,
    training: TrainingConfig,
    out_dir: Path,
    parent: Path | None,
    *,
    on_progress: Callable[[str], None] | None = None,
    validation: Sequence[MarketSessionView] = (),
) -> PhaseResult:
    """One phase into ``<out_dir>/phase<N>/`` (:mod:`kalshi_pipeline.training.phases`);
    ``on_progress`` gets a line on its progress every few seconds (per seed candidate).
    With ``validation`` views, the phase's output is its best checkpoint on them (the last
    is kept too), and with several seed candidates the best candidate's
    (:mod:`kalshi_pipeline.training.candidates`)."""
    job = phase_job(phase, views, split, training, out_dir, parent, validation)
    return train_candidates(job, on_progress=on_progress)


def phase_job(
    phase: int,
    views: Sequence[MarketSessionView],
    split: Split,
    training: TrainingConfig,
    out_dir: Path,
    parent: Path | None,
    validation: Sequence[MarketSessionView],
) -> PhaseJob:
    """The phase to train: ``views`` in key order with their difficulties from ``split``
    (the curriculum's input), into ``<out_dir>/phase<N>/``. Raises if there is no view."""
    if not views:
        raise ValueError("no training view passes the filters: nothing to train on")
    return PhaseJob(
        phase=phase,
        views=views,
        difficulties=split.difficulties(views),
        config=training,
        out_dir=Path(out_dir),
        parent=parent,
        validation=validation,
    )


def phase_candidates(job: PhaseJob) -> list[int]:
    """The seeds of a phase's candidates, after the checks :func:`train_phase` makes
    first (:func:`kalshi_pipeline.training.candidates.prepare_phase`): for an
    orchestrator that trains each candidate as a step of its own."""
    candidates.prepare_phase(job)
    return candidates.candidate_seeds(job.config)


def train_candidate(
    job: PhaseJob, seed: int, on_progress: Callable[[str], None] | None = None
) -> PhaseResult:
    """One seed candidate of a phase (:func:`phase_candidates`); then
    :func:`kalshi_pipeline.training.candidates.select_candidate` over all of them."""
    return candidates.train_candidate(job, seed, on_progress)


def evaluate(
    model_path: Path,
    training: TrainingConfig,
    train: Sequence[MarketSessionView],
    holdout: Sequence[MarketSessionView],
    split: Split,
    out_dir: Path,
    progress_files: Sequence[Path] = (),
    walk_forward: Sequence[MarketSessionView] = (),
    on_progress: Callable[[str], None] | None = None,
    execution: ExecutionChoice | None = None,
) -> WrittenReport:
    """The model against the baselines on training, holdout and walk-forward views (those
    of sessions recorded after every training session): the report as written.
    ``on_progress`` gets a line every few seconds while the episodes play.

    Every policy plays in the model's own env config (its lineage's: the execution mode
    it was trained for), with the settings ``execution`` gives changed (the report then
    says which); ``training`` gives the seed. In maker mode the quote rule is among the
    baselines. A phase-3 model's parent (its phase-2 model) is evaluated too, so the
    report states the plan's target share after phase 2 as well as after phase 3.
    """
    lineage, model, phase2 = load_with_parent(model_path)
    env = lineage.env_config() if execution is None else execution.apply(lineage.env_config())
    episodes = evaluate_policies(
        baseline_policies(model, phase2_model=phase2, quote_rule=env.execution == MAKER),
        {SplitName.TRAIN: train, SplitName.HOLDOUT: holdout, SplitName.WALK_FORWARD: walk_forward},
        env,
        training.seed,
        on_progress,
    )
    rows = per_market_table(episodes)
    return write_report(
        out_dir, episodes, rows, summarise(rows, training.seed), model_path=model_path,
        lineage=lineage, difficulties=dict(split.difficulty), progress_files=progress_files,
        env=env,
    )  # fmt: skip


def progress_files(models_dir: Path) -> list[Path]:
    """The phases' learning curves (``progress.csv``), for the report."""
    return [models_dir / f"phase{p}" / "progress.csv" for p in PHASES]


# -- the whole job outside Dagster -----------------------------------------------------------
def load_views(source, session_ids: Sequence[int] | None = None) -> list[MarketSessionView]:
    """Views of every complete session of ``source`` (or of ``session_ids``).

    A source without a complete session is an error naming it: training on nothing would
    only fail later, further from the cause.
    """
    listed = source.list_sessions()
    infos = [i for i in listed if i.is_complete]
    if session_ids is not None:
        infos = [i for i in infos if i.session_id in set(session_ids)]
    if not infos:
        active = f" ({len(listed)} still recording)" if listed else ""
        raise ValueError(f"{source!r} holds no complete session{active}: nothing to train on")
    return [v for info in infos for v in build_market_views(source.load_session(info.session_id))]


def run(
    source,
    out_dir: str | Path,
    config: PipelineConfig,
    *,
    phases: Sequence[int] = PHASES,
    on_progress: Callable[[str], None] | None = None,
) -> Path | None:
    """The whole training job on ``source`` (``kalshi-pipeline train``): the same steps as
    the Dagster assets, in one process. Returns the report's path (after phase 3). A split
    with an empty side the run reads is refused before any training (:func:`load_split`)."""
    out = Path(out_dir)
    models = out / "models"
    split, session_views = load_split(source, config, evaluate=3 in phases)
    if on_progress is not None:
        on_progress(describe_split(split))
    train = views_for(split, SplitName.TRAIN, session_views)
    training = config.training_config()
    # Every phase directory the run reuses: the ones it trains and the parents they
    # warm-start from. Checked before any phase writes, so a refusal changes nothing.
    validation = views_for(split, SplitName.VALIDATION, session_views)
    fingerprint = training_fingerprint(train, training, validation)
    for phase in range(1, max(phases) + 1):
        check_fingerprint(models / f"phase{phase}", fingerprint)
    result = None
    for phase in phases:
        parent = models / f"phase{phase - 1}" / MODEL_FILE if phase > 1 else None
        result = train_phase(
            phase, train, split, training, models, parent,
            on_progress=on_progress, validation=validation,
        )  # fmt: skip
    if result is None or result.phase != 3:
        return None
    holdout = views_for(split, SplitName.HOLDOUT, session_views)
    walk_forward = views_for(split, SplitName.WALK_FORWARD, session_views)
    report = evaluate(
        result.model_path, training, train, holdout, split, out / "report",
        progress_files(models), walk_forward, on_progress,
    )  # fmt: skip
    return report.path


def load_split(
    source, config: PipelineConfig, *, evaluate: bool = False
) -> tuple[Split, Callable[[int], list[MarketSessionView]]]:
    """The split of ``source``'s views, and a session's views by id (held in memory): built
    from the sessions as loaded (a Parquet store verifies each against its digest), never
    read from a views file. Raises :class:`~kalshi_pipeline.market.split.SplitTooSmall` if
    a side the run reads is empty (``needed_sides``; the holdout only if ``evaluate``)."""
    views = load_views(source)
    by_session: dict[int, list[MarketSessionView]] = {}
    for view in views:
        by_session.setdefault(view.session_id, []).append(view)
    selection = select_views([v.describe() for v in views], config.filters)
    needs = needed_sides(config.split, evaluate=evaluate)
    return split_views(selection, config.split, needs=needs), by_session.__getitem__


# -- tuning --------------------------------------------------------------------------------
def tune(
    split: Split,
    session_views: Callable[..., Sequence[MarketSessionView]],
    config: PipelineConfig,
    choice: TuningChoice,
    home_storage: Path,
    work_dir: Path,
    out_file: Path,
    on_progress: Callable[[str], None] | None = None,
    pruner=None,
    *,
    sampler_seed: int | None = None,
) -> TuningResult:
    """Run ``choice.trials`` trials on the training views, scored on the validation views
    (never the holdout), and write the best as a hyperparameter file: its contents.
    ``home_storage`` is the journal file used when ``choice.storage`` is unset;
    ``pruner`` replaces the default ``MedianPruner``; ``sampler_seed`` as in
    :func:`tune_trials`."""
    tune_trials(
        split, session_views, config, choice, home_storage, work_dir, on_progress, pruner,
        sampler_seed=sampler_seed,
    )  # fmt: skip
    return tuning_result(config, choice, home_storage, out_file)


def tune_trials(
    split: Split,
    session_views: Callable[..., Sequence[MarketSessionView]],
    config: PipelineConfig,
    choice: TuningChoice,
    home_storage: Path,
    work_dir: Path,
    on_progress: Callable[[str], None] | None = None,
    pruner=None,
    *,
    sampler_seed: int | None = None,
) -> None:
    """The trials of :func:`tune` alone: ``choice.trials`` more trials of the study.

    Several calls (processes, Dagster steps) may run at once on one study; give each its
    own ``sampler_seed`` (default ``choice.seed``), or their first, random trials would
    all suggest the same hyperparameters."""
    train = views_for(split, SplitName.TRAIN, session_views)
    validation = views_for(split, SplitName.VALIDATION, session_views)
    study = tuning_study(choice, home_storage, sampler_seed)
    tuning.tune(
        train, split.difficulties(train), validation, config.training_config(), study,
        work_dir, on_progress, pruner,
    )  # fmt: skip


def tuning_study(
    choice: TuningChoice, home_storage: Path, sampler_seed: int | None = None
) -> tuning.Study:
    """The study ``choice`` names: in ``choice.storage``, else the journal ``home_storage``;
    its sampler seeded ``sampler_seed`` (default ``choice.seed``)."""
    seed = choice.seed if sampler_seed is None else sampler_seed
    return tuning.Study(
        name=choice.study,
        storage=choice.storage or str(home_storage),
        trials=choice.trials,
        seed=seed,
    )


def tuning_result(
    config: PipelineConfig, choice: TuningChoice, home_storage: Path, out_file: Path
) -> TuningResult:
    """The best trial of the study so far, written as a hyperparameter file: its contents."""
    study = tuning_study(choice, home_storage)
    return tuning.write_result(
        study.open(), config.training_config(), out_file, study,
        profile=config.training.profile,
    )  # fmt: skip


# -- promotion ---------------------------------------------------------------------------
def promote(
    model_path: Path, holdout: Sequence[MarketSessionView], registry: Path, *,
    profile: str | None = None, run: str = "",
) -> Decision:  # fmt: skip
    """The model against the champion (or, with none yet, always-HOLD) on the *current*
    holdout views: promoted if the paired per-market interval's lower end is above 0,
    else refused; either way recorded in the model history at ``registry``
    (:mod:`kalshi_pipeline.training.promotion`). Raises ``PromotionError`` if the
    comparison cannot run (no holdout view, a model that does not load)."""
    return promotion.promote(Registry(registry), model_path, holdout, profile=profile, run=run)
