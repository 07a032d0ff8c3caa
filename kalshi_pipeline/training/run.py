"""Train and evaluate from a session source, outside Dagster (the ``train`` command).

Builds the views of every complete session, filters them (:class:`FilterConfig`), splits
markets into train and holdout (:mod:`kalshi_pipeline.market.split`), trains the three
phases and writes the evaluation report of the phase-3 model. The Dagster assets run the
same steps one asset at a time. Models already in the output directory are reused only if
they were trained on the same views with the same config (:func:`check_fingerprint`),
the phases before the first one asked for included, since later phases warm-start from
them.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from kalshi_pipeline.market.difficulty import FilterConfig, score_views
from kalshi_pipeline.market.features import FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION
from kalshi_pipeline.market.split import split_markets
from kalshi_pipeline.market.views import MarketSessionView, build_market_views
from kalshi_pipeline.training.config import TrainingConfig
from kalshi_pipeline.training.evaluation import (
    baseline_policies,
    evaluate_policies,
    per_market_table,
    summarise,
)
from kalshi_pipeline.training.phases import (
    ALGORITHM_CLASSES,
    check_fingerprint,
    read_lineage,
    train_phases,
    training_fingerprint,
)
from kalshi_pipeline.training.report import write_report


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


def prepare(
    views: Sequence[MarketSessionView], filters: FilterConfig, holdout_fraction: float
) -> tuple[list[MarketSessionView], list[MarketSessionView], dict[str, float]]:
    """(train views, holdout views, difficulty per view key) of the views passing filters."""
    table = score_views([v.describe() for v in views], filters).to_pylist()
    by_key = {f"{r['session_id']}/{r['market_ticker']}": r for r in table}
    kept = [v for v in views if by_key[v.key]["passes_filters"]]
    _, holdout = split_markets((v.market_ticker for v in kept), holdout_fraction)
    holdout_set = set(holdout)
    difficulty = {key: row["difficulty"] for key, row in by_key.items()}
    train = [v for v in kept if v.market_ticker not in holdout_set]
    return train, [v for v in kept if v.market_ticker in holdout_set], difficulty


def evaluate_model(
    model_path: Path,
    config: TrainingConfig,
    train: Sequence[MarketSessionView],
    holdout: Sequence[MarketSessionView],
    difficulty: dict[str, float],
    out_dir: Path,
    progress_files: Sequence[Path] = (),
) -> Path:
    """Evaluate a saved model next to the baselines and write the report directory."""
    lineage = read_lineage(model_path)
    layout = (lineage["feature_layout"], lineage["feature_layout_version"])
    if layout != (FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION):
        raise ValueError(f"model {model_path} was trained on feature layout {layout}")
    model = ALGORITHM_CLASSES[lineage["algorithm"]].load(model_path, device="cpu")
    episodes = evaluate_policies(
        baseline_policies(model), {"train": train, "holdout": holdout}, config.env, config.seed
    )
    rows = per_market_table(episodes)
    summary = summarise(rows, config.seed)
    return write_report(
        out_dir, episodes, rows, summary, model_path=model_path, lineage=lineage,
        difficulties=difficulty, progress_files=progress_files,
    )  # fmt: skip


def train_and_evaluate(
    source,
    out_dir: str | Path,
    config: TrainingConfig,
    *,
    filters: FilterConfig | None = None,
    holdout_fraction: float = 0.2,
    phases: Sequence[int] = (1, 2, 3),
    progress: bool = False,
) -> Path | None:
    """The whole training job on ``source``; returns the report path (after phase 3)."""
    out = Path(out_dir)
    views = load_views(source)
    train, holdout, difficulty = prepare(views, filters or FilterConfig(), holdout_fraction)
    if not train:
        raise ValueError(
            f"none of the {len(views)} views in {source!r} passes the filters and is outside "
            f"the holdout: nothing to train on (more or longer sessions, or a smaller "
            f"holdout fraction)"
        )
    difficulties = [difficulty[v.key] for v in train]
    # Every phase directory the run reuses: the ones it trains and the parents they
    # warm-start from. Checked before any phase writes, so a refusal changes nothing.
    fingerprint = training_fingerprint(train, config)
    for phase in range(1, max(phases) + 1):
        check_fingerprint(out / "models" / f"phase{phase}", fingerprint)
    results = train_phases(
        train, difficulties, config, out / "models", progress=progress, phases=phases
    )
    if results[-1].phase != 3:
        return None
    progress_files = [out / "models" / f"phase{p}" / "progress.csv" for p in (1, 2, 3)]
    return evaluate_model(
        results[-1].model_path, config, train, holdout, difficulty, out / "report", progress_files
    )
