"""The report's plots, one PNG each, read at a glance.

Per-market mean reward per policy, side by side (a box and every market as a point, so
no policy hides another); the action distribution; the learning curve of the phases one
after another; and difficulty against model minus always-HOLD per market. No pyplot:
plots are made on :class:`matplotlib.figure.Figure`, so importing or running this never
changes matplotlib's process-wide state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from kalshi_pipeline.env.execution import ACTION_NAMES
from kalshi_pipeline.market.split import SplitName
from kalshi_pipeline.training.evaluation import Episode, PerMarketRow, PolicyName
from kalshi_pipeline.training.files import read_csv_rows
from kalshi_pipeline.training.report.order import ordered_policies, ordered_splits

PLOTS = (
    "policy_rewards.png",
    "action_distribution.png",
    "learning_curve.png",
    "difficulty_vs_model_minus_hold.png",
)


def policy_rewards(path: Path, rows: Sequence[PerMarketRow], seed: int) -> None:
    """Per split, per policy side by side: a box of the per-market mean rewards and every
    market as a point (jittered sideways, seeded), so no policy hides another."""
    splits = ordered_splits({r.split for r in rows}) or [SplitName.HOLDOUT]
    policies = ordered_policies({r.policy for r in rows})
    fig = Figure(figsize=(4 + 1.2 * len(policies) * len(splits), 4.5))  # no pyplot
    axes = np.atleast_1d(fig.subplots(1, len(splits), sharey=True, squeeze=False)[0])
    rng = np.random.default_rng(seed)
    for ax, split in zip(axes, splits, strict=True):
        data = [
            [r.mean_reward for r in rows if r.split == split and r.policy == p] for p in policies
        ]
        if any(data):
            ax.boxplot(data, showfliers=False, widths=0.5)
            ax.set_xticks(range(1, len(policies) + 1), policies, rotation=20)
        for i, values in enumerate(data, start=1):
            ax.scatter(i + rng.uniform(-0.15, 0.15, len(values)), values, s=12, alpha=0.6)
        ax.axhline(0, color="grey", linewidth=0.8)
        ax.set_title(f"{split}: mean reward per market")
    axes[0].set_ylabel("dollars per episode")
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def action_plot(path: Path, actions: Mapping[str, dict], keys: Sequence[str]) -> None:
    """Stacked bars: each policy's share of steps per action; ``keys`` name the bars of
    ``actions``, top first."""
    fig = Figure(figsize=(7, 1.5 + 0.4 * max(len(keys), 1)))  # no pyplot
    ax = fig.subplots()
    left = np.zeros(len(keys))
    for name in ACTION_NAMES:
        shares = np.array([actions[k]["action_share"][name] for k in keys])
        ax.barh(keys, shares, left=left, label=name)
        left += shares
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("share of steps")
    ax.set_title("Action distribution")
    ax.legend(ncols=len(ACTION_NAMES), fontsize="small", loc="lower center",
              bbox_to_anchor=(0.5, 1.08))  # fmt: skip
    fig.tight_layout()
    fig.savefig(path, dpi=90)


def learning_curve(path: Path, progress_files: Sequence[Path]) -> None:
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
    rows = [
        row
        for row in read_csv_rows(path)
        if row.get("rollout/ep_rew_mean") and row.get("time/total_timesteps")
    ]
    steps = [float(row["time/total_timesteps"]) for row in rows]
    rewards = [float(row["rollout/ep_rew_mean"]) for row in rows]
    return np.array(steps), np.array(rewards)


def difficulty_plot(
    path: Path,
    episodes: Sequence[Episode],
    rows: Sequence[PerMarketRow],
    difficulties: Mapping[str, float],
) -> None:
    """Per market: its mean view difficulty against the model's (or, without a model,
    the imbalance rule's) mean reward minus always-HOLD's."""
    names = {r.policy for r in rows}
    policy = PolicyName.MODEL if PolicyName.MODEL in names else PolicyName.IMBALANCE_RULE
    keys: dict[tuple[str, str], list[str]] = {}
    for e in episodes:
        keys.setdefault((e.split, e.market_ticker), []).append(e.view_key)
    reward = {(r.split, r.market_ticker, r.policy): r.mean_reward for r in rows}
    fig = Figure(figsize=(7, 4))  # no pyplot: no GUI backend, no global state
    ax = fig.subplots()
    markers = ((SplitName.TRAIN, "o"), (SplitName.HOLDOUT, "x"), (SplitName.WALK_FORWARD, "^"))
    for split, marker in markers:
        points = []
        for (s, market), views in sorted(keys.items()):
            mine = reward.get((s, market, policy))
            known = [difficulties[v] for v in views if v in difficulties]
            if s != split or mine is None or not known:
                continue
            points.append((np.mean(known), mine - reward.get((s, market, PolicyName.HOLD), 0.0)))
        if points:
            x, y = zip(*points, strict=True)
            ax.scatter(x, y, marker=marker, label=f"{split} ({len(points)} markets)", alpha=0.7)
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("difficulty (mean over the market's views)")
    ax.set_ylabel(f"{policy} - HOLD, mean reward (dollars)")
    ax.set_title("Difficulty vs model minus always-HOLD, per market")
    if ax.collections:
        ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=90)
