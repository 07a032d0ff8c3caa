"""The evaluation report: a directory with Markdown, CSV, JSON and PNG plots.

``write_report`` puts into ``out_dir``: ``report.md`` (what was evaluated, on which data,
aggregates with bootstrap intervals, model-vs-baseline differences, the generalisation
gap, the plan's success rates, and the plots), ``per_market.csv`` (every number of the
per-market table), ``episodes.csv`` (every episode, the rows everything else is computed
from), ``summary.json`` and three plots: ``reward_histogram.png``,
``learning_curve.png`` (from the phases' ``progress.csv``) and
``difficulty_vs_performance.png``. The Markdown names the model file and its lineage
(phase, sessions, views, config, seed, parent), so each number traces back to the model
and the data it came from.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from kalshi_pipeline.training.evaluation import Episode

PLOTS = ("reward_histogram.png", "learning_curve.png", "difficulty_vs_performance.png")


def write_report(
    out_dir: str | Path,
    episodes: Sequence[Episode],
    rows: Sequence[dict],
    summary: dict,
    *,
    model_path: Path | None,
    lineage: dict | None,
    difficulties: dict[str, float],
    progress_files: Sequence[Path] = (),
) -> Path:
    """Write the report directory; returns the path of ``report.md``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _write_csv(out / "episodes.csv", [asdict(e) for e in episodes])
    _write_csv(out / "per_market.csv", list(rows))
    (out / "summary.json").write_text(json.dumps(summary, indent=1, sort_keys=True))
    _reward_histogram(out / PLOTS[0], episodes)
    _learning_curve(out / PLOTS[1], progress_files)
    _difficulty_plot(out / PLOTS[2], episodes, difficulties)
    report = out / "report.md"
    report.write_text(_markdown(episodes, summary, model_path, lineage))
    return report


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        if not rows:
            return
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _markdown(episodes, summary, model_path, lineage) -> str:
    splits = sorted({e.split for e in episodes})
    lines = ["# Evaluation report", ""]
    if model_path is not None:
        lines += [f"Model: `{model_path}`", ""]
    if lineage:
        lines += [
            f"- phase {lineage['phase']}, {lineage['algorithm']}, "
            f"{lineage['timesteps']} timesteps, seed {lineage['seed']}",
            f"- trained on sessions {lineage['sessions']} ({len(lineage['views'])} views), "
            f"feature layout {lineage['feature_layout']} v{lineage['feature_layout_version']}",
            f"- parent model: `{lineage['parent_model']}`",
            f"- training views: {', '.join(lineage['views'])}",
            f"- config: `{json.dumps(lineage['config'], sort_keys=True)}`",
            "",
        ]
    for split in splits:
        views = sorted({(e.session_id, e.market_ticker) for e in episodes if e.split == split})
        sessions = sorted({s for s, _ in views})
        lines.append(
            f"- {split}: {len(views)} views from sessions {sessions}: "
            + ", ".join(f"{s}/{t}" for s, t in views)
        )
    lines += [
        "",
        "Every episode is in `episodes.csv`; per-market statistics in `per_market.csv`.",
        "",
        "## Aggregates (over markets, mean reward in dollars, 95% bootstrap interval)",
        "",
        "| policy / split | markets | mean reward | 95% CI | markets with positive reward |",
        "|---|---:|---:|---|---:|",
    ]
    for key, a in summary["aggregates"].items():
        low, high = a["mean_reward_ci95"]
        lines.append(
            f"| {key} | {a['markets']} | {a['mean_reward']:.3f} | [{low:.3f}, {high:.3f}] "
            f"| {a['positive_market_share']:.0%} |"
        )
    lines += [
        "",
        "## Model against baselines (paired by market)",
        "",
        "| comparison | markets | mean difference | 95% CI |",
        "|---|---:|---:|---|",
    ]
    for key, d in summary["differences"].items():
        low, high = d["ci95"]
        lines.append(
            f"| {key} | {d['markets']} | {d['mean_difference']:.3f} | [{low:.3f}, {high:.3f}] |"
        )
    gap = summary.get("generalisation_gap")
    lines += [
        "",
        f"Generalisation gap (model, train - holdout): "
        f"{'n/a' if gap is None else f'{gap:.3f}'} dollars per market.",
        "",
        "## Plots",
        "",
    ]
    lines += [f"![{name[:-4]}]({name})" for name in PLOTS]
    return "\n".join(lines) + "\n"


def _reward_histogram(path: Path, episodes: Sequence[Episode]) -> None:
    fig = Figure(figsize=(7, 4))  # no pyplot: no GUI backend, no global state
    ax = fig.subplots()
    holdout = [e for e in episodes if e.split == "holdout"] or list(episodes)
    for policy in sorted({e.policy for e in holdout}):
        rewards = [e.total_reward for e in holdout if e.policy == policy]
        ax.hist(rewards, bins=30, alpha=0.5, label=policy)
    ax.set_xlabel("episode reward (dollars)")
    ax.set_ylabel("episodes")
    ax.set_title("Holdout episode rewards")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _learning_curve(path: Path, progress_files: Sequence[Path]) -> None:
    fig = Figure(figsize=(7, 4))  # no pyplot: no GUI backend, no global state
    ax = fig.subplots()
    offset = 0
    for index, file in enumerate(progress_files):
        steps, rewards = _read_progress(file)
        if len(steps):
            ax.plot(steps + offset, rewards, label=f"phase {index + 1}")
            offset += int(steps.max())
    ax.set_xlabel("timesteps (phases one after another)")
    ax.set_ylabel("mean episode reward (dollars)")
    ax.set_title("Learning curve")
    if progress_files:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def _read_progress(path: Path) -> tuple[np.ndarray, np.ndarray]:
    steps, rewards = [], []
    try:
        with open(path) as fh:
            for row in csv.DictReader(fh):
                if row.get("rollout/ep_rew_mean") and row.get("time/total_timesteps"):
                    steps.append(float(row["time/total_timesteps"]))
                    rewards.append(float(row["rollout/ep_rew_mean"]))
    except FileNotFoundError:
        pass
    return np.array(steps), np.array(rewards)


def _difficulty_plot(path: Path, episodes: Sequence[Episode], difficulties: dict) -> None:
    fig = Figure(figsize=(7, 4))  # no pyplot: no GUI backend, no global state
    ax = fig.subplots()
    policy = "model" if any(e.policy == "model" for e in episodes) else "imbalance_rule"
    for split, marker in (("train", "o"), ("holdout", "x")):
        chosen = [e for e in episodes if e.policy == policy and e.split == split]
        ax.scatter(
            [difficulties.get(e.view_key, np.nan) for e in chosen],
            [e.total_reward for e in chosen],
            marker=marker,
            label=f"{policy} / {split}",
            alpha=0.7,
        )
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("difficulty")
    ax.set_ylabel("episode reward (dollars)")
    ax.set_title("Difficulty vs performance")
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
