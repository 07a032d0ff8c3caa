"""The pipeline's steps, typed, and its one configuration: what the CLI and Dagster share.

``kalshi-pipeline train`` (:func:`run`) and the Dagster assets (``kalshi_pipeline.defs``)
call the same steps with the same :class:`PipelineConfig`, so the same data, config and
seed give the same split and the same model either way::

    view descriptions --select_views--> selection (Arrow table: one row per view,
                                         one boolean column per filter, the reasons)
                      --split_views---> Split (train, validation, holdout view keys)
    training views    --train_phase---> PhaseResult (phases 1, 2, 3, each from the last)
    model + views     --evaluate------> the report directory

A view is known everywhere by its key (:func:`kalshi_pipeline.market.views.view_key`,
``"<session>/<ticker>"``); training views are always taken in key order (session, then
ticker), which is what makes both paths train on the same sequence of episodes.

Every default lives once, in these dataclasses; "unset" is always ``None`` (the
profile's value). The Dagster ``Config`` classes are made from them
(:mod:`kalshi_pipeline.defs.config`) and the CLI's arguments map onto them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import pyarrow as pa

from kalshi_pipeline.env.trading_env import EnvConfig
from kalshi_pipeline.market.difficulty import FilterConfig, score_views
from kalshi_pipeline.market.features import FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION
from kalshi_pipeline.market.split import DEFAULT_SALT, split_markets, validation_markets
from kalshi_pipeline.market.views import (
    MarketSessionView,
    build_market_views,
    session_of_key,
    view_key,
)
from kalshi_pipeline.training import candidates, promotion, tuning
from kalshi_pipeline.training import phases as training_phases
from kalshi_pipeline.training.candidates import train_candidates
from kalshi_pipeline.training.config import (
    PROFILES,
    TrainingConfig,
    profile,
    read_hyperparameters,
)
from kalshi_pipeline.training.evaluation import (
    baseline_policies,
    evaluate_policies,
    per_market_table,
    round_trip_fees_cents,
    summarise,
    wins_needed,
)
from kalshi_pipeline.training.phases import (
    ALGORITHM_CLASSES,
    PhaseResult,
    check_fingerprint,
    read_lineage,
    training_fingerprint,
)
from kalshi_pipeline.training.promotion import Decision
from kalshi_pipeline.training.report import write_report

PHASES = (1, 2, 3)
# The round trip's fees of one default order at 50 cents, where they are highest: a
# market whose spread is wider costs more to cross than the fees at every price, so it is
# not liquid enough to trade by the report's measure (round_trip_fees_cents).
TIGHT_SPREAD_CENTS = round_trip_fees_cents(50, EnvConfig().order_size)


# -- configuration -----------------------------------------------------------------------
@dataclass(frozen=True)
class SplitConfig:
    """How markets are split between training, validation and holdout
    (:mod:`kalshi_pipeline.market.split`), and which sessions are kept for the
    walk-forward evaluation. Validation picks among training's best checkpoints and seed
    candidates; the holdout and the walk-forward sessions are read only by the report
    (and the holdout by the promotion check)."""

    holdout_fraction: float = 0.2
    validation_fraction: float = 0.2  # of the markets outside the holdout
    salt: str = DEFAULT_SALT
    # The latest sessions, kept out of training and validation for the walk-forward
    # evaluation (only while an earlier session is left to train on).
    walk_forward_sessions: int = 1
    # Tight markets (their views' average spread under ``tight_spread_cents``) and wide
    # ones each validate at least this many markets, while as many are left to train on:
    # a signal that pays on tight markets only shows beyond noise on validation only if
    # validation holds enough of them (Split.describe, docs/training.md).
    min_validation_per_kind: int = 4
    tight_spread_cents: float = TIGHT_SPREAD_CENTS

    def __post_init__(self) -> None:
        for name in ("holdout_fraction", "validation_fraction"):
            if not 0 <= getattr(self, name) < 1:
                raise ValueError(f"{name} must be in [0, 1), got {getattr(self, name)!r}")
        if not self.tight_spread_cents > 0:
            raise ValueError(f"tight_spread_cents must be above 0, got {self.tight_spread_cents!r}")
        if self.min_validation_per_kind < 0:
            raise ValueError(
                f"min_validation_per_kind must be 0 or more, got {self.min_validation_per_kind!r}"
            )
        if self.walk_forward_sessions < 0:
            raise ValueError(
                f"walk_forward_sessions must be 0 or more, got {self.walk_forward_sessions!r}"
            )


@dataclass(frozen=True)
class TrainingChoice:
    """A named training profile and what is changed from it (``None``: the profile's).

    ``timesteps_per_phase`` sets all three phases' budgets; the hyperparameters
    (``learning_rate``, ``gamma``, ``net_arch``) change the profile's PPO/A2C settings;
    ``validate_every`` is the timesteps between evaluations on the validation views (0: at
    every checkpoint); ``candidates`` is how many seeds each phase trains (from ``seed``
    on), the best on the validation views kept
    (:mod:`kalshi_pipeline.training.candidates`).
    """

    profile: str = "default"
    timesteps_per_phase: int | None = None
    algorithm: str | None = None
    seed: int | None = None
    learning_rate: float | None = None
    gamma: float | None = None
    n_envs: int | None = None
    net_arch: tuple[int, ...] | None = None
    checkpoint_every: int | None = None
    validate_every: int | None = None
    candidates: int | None = None
    # A file of ``kalshi-pipeline tune``: its hyperparameters replace the profile's (the
    # fields above still change them).
    hyperparams: str | None = None

    def __post_init__(self) -> None:
        if self.profile not in PROFILES:
            raise ValueError(f"profile {self.profile!r} is not one of {sorted(PROFILES)}")
        positive = (
            "timesteps_per_phase", "learning_rate", "n_envs", "checkpoint_every", "candidates",
        )  # fmt: skip
        for name in positive:
            value = getattr(self, name)
            if value is not None and not value > 0:
                raise ValueError(f"training {name} must be positive, got {value!r}")
        for name in ("seed", "validate_every"):
            value = getattr(self, name)
            if value is not None and value < 0:
                raise ValueError(f"training {name} must be 0 or more, got {value!r}")
        if self.gamma is not None and not 0 < self.gamma <= 1:
            raise ValueError(f"training gamma must be in (0, 1], got {self.gamma!r}")
        if self.net_arch is not None and (not self.net_arch or min(self.net_arch) < 1):
            raise ValueError(
                f"training net_arch must be positive layer sizes, got {self.net_arch!r}"
            )

    def resolve(self, env: EnvConfig | None = None) -> TrainingConfig:
        """The profile with the set fields changed (and ``env``, if given)."""
        base = PROFILES[self.profile]
        hyper = {
            name: value
            for name in ("learning_rate", "gamma", "net_arch")
            if (value := getattr(self, name)) is not None
        }
        changes = {
            name: value
            for name in ("n_envs", "checkpoint_every", "validate_every", "candidates")
            if (value := getattr(self, name)) is not None
        }
        tuned = read_hyperparameters(self.hyperparams) if self.hyperparams else None
        if hyper or tuned:
            changes["hyperparameters"] = replace(tuned or base.hyperparameters, **hyper)
        if env is not None:
            changes["env"] = env
        return profile(
            self.profile,
            timesteps_per_phase=self.timesteps_per_phase,
            algorithm=self.algorithm,
            seed=self.seed,
            **changes,
        )


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a training run is configured by: filters, split, training, env
    (``None``: the profile's)."""

    filters: FilterConfig = field(default_factory=FilterConfig)
    split: SplitConfig = field(default_factory=SplitConfig)
    training: TrainingChoice = field(default_factory=TrainingChoice)
    env: EnvConfig | None = None

    def training_config(self) -> TrainingConfig:
        return self.training.resolve(self.env)


# The demo: the whole graph in a few minutes on two cores.
DEMO = PipelineConfig(training=TrainingChoice(profile="demo"))


# -- the steps -------------------------------------------------------------------------
def select_views(descriptions: Iterable[Mapping], filters: FilterConfig) -> pa.Table:
    """One row per view (by key): its statistics, difficulty, one boolean column per
    filter, ``passes_filters`` and the reasons
    (:func:`kalshi_pipeline.market.difficulty.score_views`)."""
    table = score_views(descriptions, filters)
    keys = [
        view_key(s, t)
        for s, t in zip(
            table.column("session_id").to_pylist(),
            table.column("market_ticker").to_pylist(),
            strict=True,
        )
    ]
    return table.add_column(0, "view_key", pa.array(keys, pa.string()))


@dataclass(frozen=True)
class Split:
    """The views that pass the filters, by key: training, validation and holdout
    (market-grouped: a market's views are all on one side), and the walk-forward views.

    The walk-forward views are every view of the latest sessions (by session id, the
    collector's order of recording): training and validation take their markets' views
    of the earlier sessions only, so the model is also judged on sessions recorded after
    every session it was trained on. The holdout is its markets' views of all sessions.
    """

    train: tuple[str, ...]
    holdout: tuple[str, ...]
    difficulty: Mapping[str, float]  # of every view in the split
    train_markets: int
    holdout_markets: int
    validation: tuple[str, ...] = ()
    validation_markets: int = 0
    validation_tight_markets: int = 0  # of them, those of tight spread (market_kinds)
    walk_forward: tuple[str, ...] = ()

    def difficulties(self, views: Sequence[MarketSessionView]) -> list[float]:
        """The difficulty of each of ``views``, in order (the curriculum's input)."""
        return [self.difficulty[v.key] for v in views]

    @property
    def sessions(self) -> list[int]:
        """The sessions of the training views."""
        return sorted({session_of_key(k) for k in self.train})

    def describe(self) -> str:
        """One line for the start of a run: the markets on each side, and what selection
        asks of a model on the validation markets (:func:`wins_needed`): a model whose
        gains are confined to tight markets cannot show beyond noise with fewer tight
        validation markets than that, which the line then says."""
        forward = len({session_of_key(k) for k in self.walk_forward})
        line = (
            f"split: {self.train_markets} training, {self.validation_markets} validation "
            f"({self.validation_tight_markets} of tight spread) and {self.holdout_markets} "
            f"holdout markets; {forward} walk-forward session"
            f"{'' if forward == 1 else 's'}"
        )
        if not self.validation_markets:
            return line + "; no validation: each phase's output is its last checkpoint"
        wins = wins_needed(self.validation_markets)
        if wins is None:
            return line
        line += (
            f"; to beat always-HOLD beyond noise, a model must win on at least {wins} of the "
            f"{self.validation_markets} validation markets ({wins / self.validation_markets:.0%}"
            f"), more if it loses on any"
        )
        if self.validation_tight_markets < wins:
            line += (
                f"; with {self.validation_tight_markets} of tight spread, a model that gains "
                f"on tight markets only cannot"
            )
        return line


def split_views(selection: pa.Table, config: SplitConfig) -> Split:
    """Split the views that pass the filters by market: a market's views are all on one
    side, and its holdout side never changes as sessions arrive
    (:mod:`kalshi_pipeline.market.split`)."""
    rows = [r for r in selection.to_pylist() if r["passes_filters"]]
    train_markets, holdout_markets = split_markets(
        (r["market_ticker"] for r in rows), config.holdout_fraction, config.salt
    )
    ordered = sorted(rows, key=lambda r: (r["session_id"], r["market_ticker"]))
    sessions = sorted({r["session_id"] for r in rows})
    forward = config.walk_forward_sessions
    # Nothing earlier to train on: no walk-forward evaluation.
    later = set(sessions[-forward:]) if 0 < forward < len(sessions) else set()
    kinds = market_kinds(
        (r for r in rows if r["session_id"] not in later), config.tight_spread_cents
    )
    # Markets seen only in walk-forward sessions have no view to train or validate on.
    earlier = [t for t in train_markets if t in kinds]
    validating = validation_markets(
        earlier, config.validation_fraction, config.salt, kinds, config.min_validation_per_kind,
    )  # fmt: skip
    held, checked = set(holdout_markets), set(validating)

    def sides(row: dict) -> set[str]:
        ticker, forward = row["market_ticker"], row["session_id"] in later
        if ticker in held:
            return {"holdout", "walk_forward"} if forward else {"holdout"}
        if forward:
            return {"walk_forward"}
        return {"validation" if ticker in checked else "train"}

    keys = {
        name: tuple(r["view_key"] for r in ordered if name in sides(r))
        for name in ("train", "validation", "holdout", "walk_forward")
    }
    return Split(
        **keys,
        difficulty={r["view_key"]: r["difficulty"] for r in ordered},
        train_markets=len(earlier) - len(validating),
        holdout_markets=len(holdout_markets),
        validation_markets=len(validating),
        validation_tight_markets=sum(kinds[t] == "tight" for t in validating),
    )


def market_kinds(rows: Iterable[dict], tight_spread_cents: float) -> dict[str, str]:
    """Each market of ``rows`` (views' statistics) by kind: ``"tight"`` when the mean of
    its views' average spreads is under ``tight_spread_cents``, else ``"wide"`` (a NaN
    mean too; the filters keep such views out of the split)."""
    spreads: dict[str, list[float]] = {}
    for row in rows:
        spreads.setdefault(row["market_ticker"], []).append(row["avg_spread"])
    return {
        ticker: "tight" if sum(values) / len(values) < tight_spread_cents else "wide"
        for ticker, values in spreads.items()
    }


def views_for(
    keys: Sequence[str], session_views: Callable[[int], Sequence[MarketSessionView]]
) -> list[MarketSessionView]:
    """The views of ``keys``, in that order; ``session_views(id)`` gives a session's views
    (read from its views file, or held in memory)."""
    wanted: dict[int, set[str]] = {}
    for key in keys:
        wanted.setdefault(session_of_key(key), set()).add(key)
    found = {
        v.key: v
        for session_id in sorted(wanted)
        for v in session_views(session_id)
        if v.key in wanted[session_id]
    }
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
    if not views:
        raise ValueError("no training view passes the filters: nothing to train on")
    return train_candidates(
        phase, views, split.difficulties(views), training, out_dir, parent,
        on_progress=on_progress, validation=validation,
    )  # fmt: skip


def phase_candidates(
    phase: int,
    views: Sequence[MarketSessionView],
    training: TrainingConfig,
    out_dir: Path,
    parent: Path | None,
    validation: Sequence[MarketSessionView],
) -> list[int]:
    """The seeds of a phase's candidates, after the checks :func:`train_phase` makes
    first (:func:`kalshi_pipeline.training.candidates.prepare_phase`): for an
    orchestrator that trains each candidate as a step of its own."""
    if not views:
        raise ValueError("no training view passes the filters: nothing to train on")
    candidates.prepare_phase(phase, views, training, out_dir, parent, validation)
    return candidates.candidate_seeds(training)


def train_candidate(
    seed: int,
    phase: int,
    views: Sequence[MarketSessionView],
    split: Split,
    training: TrainingConfig,
    out_dir: Path,
    parent: Path | None,
    validation: Sequence[MarketSessionView],
    on_progress: Callable[[str], None] | None = None,
) -> PhaseResult:
    """One seed candidate of a phase (:func:`phase_candidates`); then
    :func:`select_candidate` over all of them."""
    return candidates.train_candidate(
        seed, phase, views, split.difficulties(views), training, out_dir, parent, validation,
        on_progress,
    )  # fmt: skip


select_candidate = candidates.select_candidate


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
) -> Path:
    """The model against the baselines on training, holdout and walk-forward views (those
    of sessions recorded after every training session): the report's path.
    ``on_progress`` gets a line every few seconds while the episodes play.

    A phase-3 model's parent (its phase-2 model) is evaluated too, so the report states
    the plan's target share after phase 2 as well as after phase 3.
    """
    lineage = read_lineage(model_path)
    layout = (lineage["feature_layout"], lineage["feature_layout_version"])
    if layout != (FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION):
        raise ValueError(f"model {model_path} was trained on feature layout {layout}")
    model = ALGORITHM_CLASSES[lineage["algorithm"]].load(model_path, device="cpu")
    parent = lineage["parent_model"]
    phase2 = (
        ALGORITHM_CLASSES[lineage["algorithm"]].load(parent, device="cpu")
        if lineage["phase"] == 3 and parent and Path(parent).exists()
        else None
    )
    episodes = evaluate_policies(
        baseline_policies(model, phase2_model=phase2),
        {"train": train, "holdout": holdout, "walk_forward": walk_forward},
        training.env,
        training.seed,
        on_progress,
    )
    rows = per_market_table(episodes)
    return write_report(
        out_dir, episodes, rows, summarise(rows, training.seed), model_path=model_path,
        lineage=lineage, difficulties=dict(split.difficulty), progress_files=progress_files,
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
    the Dagster assets, in one process. Returns the report's path (after phase 3)."""
    out = Path(out_dir)
    models = out / "models"
    split, session_views = load_split(source, config)
    if on_progress is not None:
        on_progress(split.describe())
    train = views_for(split.train, session_views)
    training = config.training_config()
    # Every phase directory the run reuses: the ones it trains and the parents they
    # warm-start from. Checked before any phase writes, so a refusal changes nothing.
    validation = views_for(split.validation, session_views)
    fingerprint = training_fingerprint(train, training, validation)
    for phase in range(1, max(phases) + 1):
        check_fingerprint(models / f"phase{phase}", fingerprint)
    result = None
    for phase in phases:
        parent = models / f"phase{phase - 1}" / training_phases.MODEL_FILE if phase > 1 else None
        result = train_phase(
            phase, train, split, training, models, parent,
            on_progress=on_progress, validation=validation,
        )  # fmt: skip
    if result is None or result.phase != 3:
        return None
    holdout = views_for(split.holdout, session_views)
    return evaluate(
        result.model_path, training, train, holdout, split, out / "report",
        progress_files(models), views_for(split.walk_forward, session_views), on_progress,
    )  # fmt: skip


def load_split(
    source, config: PipelineConfig
) -> tuple[Split, Callable[[int], list[MarketSessionView]]]:
    """The split of ``source``'s views, and a session's views by id (held in memory).
    Raises if no view is left to train on."""
    views = load_views(source)
    by_session: dict[int, list[MarketSessionView]] = {}
    for view in views:
        by_session.setdefault(view.session_id, []).append(view)
    split = split_views(select_views([v.describe() for v in views], config.filters), config.split)
    if not split.train:
        raise ValueError(
            f"none of the {len(views)} views in {source!r} passes the filters and is outside "
            f"the holdout and the walk-forward sessions: nothing to train on (more or longer "
            f"sessions, or a smaller holdout fraction)"
        )
    return split, by_session.__getitem__


# -- tuning --------------------------------------------------------------------------------
@dataclass(frozen=True)
class TuningChoice:
    """A tuning study (:mod:`kalshi_pipeline.training.tuning`): its name, the trials this
    process runs, where the study is kept (``None``: a journal file in the pipeline home)
    and the training each trial runs (a profile, its budget, one seed)."""

    study: str = "default"
    trials: int = 10
    storage: str | None = None
    profile: str = "default"
    timesteps_per_phase: int | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if self.trials < 1:
            raise ValueError(f"tuning trials must be 1 or more, got {self.trials!r}")
        if not self.study or "/" in self.study:
            raise ValueError(f"a study name is a plain non-empty name, got {self.study!r}")

    def pipeline(self, base: PipelineConfig = PipelineConfig()) -> PipelineConfig:
        training = TrainingChoice(self.profile, self.timesteps_per_phase, seed=self.seed)
        return replace(base, training=training)


def tune(
    split: Split,
    session_views: Callable[[int], Sequence[MarketSessionView]],
    config: PipelineConfig,
    choice: TuningChoice,
    home_storage: Path,
    work_dir: Path,
    out_file: Path,
    on_progress: Callable[[str], None] | None = None,
    pruner=None,
    *,
    sampler_seed: int | None = None,
) -> dict:
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
    session_views: Callable[[int], Sequence[MarketSessionView]],
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
    train = views_for(split.train, session_views)
    study = tuning_study(choice, home_storage, sampler_seed)
    tuning.tune(
        train, split.difficulties(train),
        views_for(split.validation, session_views), config.training_config(), study,
        work_dir, on_progress, pruner,
    )  # fmt: skip


def tuning_study(
    choice: TuningChoice, home_storage: Path, sampler_seed: int | None = None
) -> tuning.Study:
    """The study ``choice`` names: in ``choice.storage``, else the journal ``home_storage``;
    its sampler seeded ``sampler_seed`` (default ``choice.seed``)."""
    seed = choice.seed if sampler_seed is None else sampler_seed
    return tuning.Study(choice.study, choice.storage or str(home_storage), choice.trials, seed)


def tuning_result(
    config: PipelineConfig, choice: TuningChoice, home_storage: Path, out_file: Path
) -> dict:
    """The best trial of the study so far, written as a hyperparameter file: its contents."""
    study = tuning_study(choice, home_storage)
    return tuning.write_result(
        study.open(), config.training_config(), out_file, study,
        profile=config.training.profile,
    )  # fmt: skip


# -- promotion ---------------------------------------------------------------------------
def promote(
    model_path: Path,
    holdout: Sequence[MarketSessionView],
    registry: Path,
    *,
    profile: str | None = None,
    run: str = "",
) -> Decision:
    """The model against the champion (or, with none yet, always-HOLD) on the *current*
    holdout views: promoted if the paired per-market interval's lower end is above 0,
    else refused; either way recorded in the model history at ``registry``
    (:mod:`kalshi_pipeline.training.promotion`). Raises ``PromotionError`` if the
    comparison cannot run (no holdout view, a model that does not load)."""
    return promotion.promote(
        promotion.Registry(registry), model_path, holdout, profile=profile, run=run
    )
