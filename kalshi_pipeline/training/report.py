"""The evaluation report: a directory with Markdown, CSV, JSON and PNG plots.

``write_report`` puts into ``out_dir``: ``report.md``, ``per_market.csv`` (every number
of the per-market table, every policy and split), ``episodes.csv`` (every episode, the
rows everything else is computed from), ``summary.json`` (:func:`summarise`'s aggregates
and differences plus :func:`analyse`'s findings) and the plots in :data:`PLOTS`.

``report.md`` puts results first and lineage last:

1. its first line: the model's result on the holdout, or that it never trades or ties
   always-HOLD; then the same on the walk-forward views (every view of the sessions
   recorded after every training session), or why there are none;
2. the plan's target shares (phase 3 always; phase 2 when that model was evaluated),
   over all markets and over the markets liquid enough to trade;
3. aggregates over markets and the paired model-vs-baseline differences, with 95% BCa
   bootstrap intervals, and the generalisation gap;
4. the action distribution, trades, turnover and fees per policy;
5. results by market type and by difficulty band;
6. Spearman correlations of reward with episode length, coverage and difficulty;
7. the per-market table of the model on the holdout;
8. the plots;
9. what was evaluated: the model file, its lineage and the views.

The plots read at a glance: per-market mean reward per policy, side by side (a box and
every market as a point, so no policy hides another); the action distribution; the
learning curve; and difficulty against model minus always-HOLD per market. No pyplot:
plots are made on :class:`matplotlib.figure.Figure`, so importing or running this never
changes matplotlib's process-wide state.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np
from matplotlib.figure import Figure

from kalshi_pipeline.env.execution import ACTION_NAMES
from kalshi_pipeline.training.evaluation import Episode, analyse

PLOTS = (
    "policy_rewards.png",
    "action_distribution.png",
    "learning_curve.png",
    "difficulty_vs_model_minus_hold.png",
)
_POLICY_ORDER = ("model", "phase2", "imbalance_rule", "random", "hold")


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
    """Write the report directory; returns the path of ``report.md``. The findings on top
    of ``summary`` are computed here (:func:`analyse`, with ``summary``'s seed), so the
    report is the same for the same episodes and seed."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    full = {**summary, **analyse(episodes, rows, difficulties, summary.get("seed", 0))}
    _write_csv(out / "episodes.csv", [asdict(e) for e in episodes])
    _write_csv(out / "per_market.csv", list(rows))
    (out / "summary.json").write_text(json.dumps(full, indent=1, sort_keys=True))
    _policy_rewards(out / PLOTS[0], rows, full.get("seed", 0))
    _action_plot(out / PLOTS[1], full["actions"])
    _learning_curve(out / PLOTS[2], progress_files)
    _difficulty_plot(out / PLOTS[3], episodes, rows, difficulties)
    report = out / "report.md"
    report.write_text(_markdown(episodes, rows, full, model_path, lineage))
    return report


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as fh:
        if not rows:
            return
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def _policies(names) -> list[str]:
    """Policies in report order: the model first, always-HOLD last, others between."""
    names = set(names)
    first = [p for p in _POLICY_ORDER[:-1] if p in names]
    last = ["hold"] if "hold" in names else []
    return first + sorted(names - set(first) - set(last)) + last


def _splits(names) -> list[str]:
    """Holdout first: it is the result; train shows the generalisation gap."""
    return sorted(names, key=lambda s: (s != "holdout", s))


def _money(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _interval(bounds) -> str:
    if bounds is None:
        return "n/a"
    low, high = bounds
    return f"[{_money(low)}, {_money(high)}]"


def _share(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _markdown(episodes, rows, summary, model_path, lineage) -> str:
    lines = [f"# Evaluation report: {summary['headline']}", "", summary["walk_forward"], ""]
    lines += _targets(summary["targets"])
    lines += _aggregates(summary)
    lines += _actions(summary["actions"])
    lines += _groups("## By market type", "market type", summary["by_market_type"])
    lines += _groups(
        "## By difficulty band",
        "difficulty band",
        summary["by_difficulty_band"],
        note="Markets ranked by the mean difficulty of their views within each split and cut "
        "into quintiles of equal size (fewer bands when there are fewer markets), Q1 the "
        "easiest; the band's difficulty range in brackets.",
    )
    lines += _spearman(summary["spearman"])
    lines += _per_market(rows)
    lines += ["## Plots", ""]
    lines += [f"![{name[:-4]}]({name})" for name in PLOTS]
    lines += [""] + _lineage(episodes, model_path, lineage)
    return "\n".join(lines) + "\n"


def _targets(targets: dict) -> list[str]:
    lines = [
        "## The plan's targets",
        "",
        "The share of markets whose mean reward is positive (95% bootstrap interval), over "
        "all markets and over those liquid enough to trade: a market's average spread is "
        "below the fees of a round trip of one order at its average mid "
        "(`2 * taker_fee(order_size, mid) / order_size` cents per contract), so the spread "
        "is the smaller part of what a round trip costs.",
        "",
        "| phase / split | target | markets | positive | 95% CI | met | liquid markets "
        "| liquid positive | 95% CI | met |",
        "|---|---:|---:|---:|---|---|---:|---:|---|---|",
    ]
    for name in ("phase3", "phase2"):
        entry = targets[name]
        if not entry["measured"]:
            lines.append(
                f"| phase {entry['phase']} | {entry['target']:.0%} | not measured: no "
                f"phase-{entry['phase']} model was evaluated | | | | | | | |"
            )
            continue
        for split in _splits(entry["splits"]):
            s = entry["splits"][split]
            lines.append(
                f"| phase {entry['phase']} / {split} | {entry['target']:.0%} | {s['markets']} "
                f"| {_share(s['positive_share'])} | {_share_interval(s['positive_share_ci95'])} "
                f"| {_met(s['met'])} | {s['liquid_markets']} "
                f"| {_share(s['liquid_positive_share'])} "
                f"| {_share_interval(s['liquid_positive_share_ci95'])} | {_met(s['liquid_met'])} |"
            )
    return lines + [""]


def _share_interval(bounds) -> str:
    return "n/a" if bounds is None else f"[{bounds[0]:.0%}, {bounds[1]:.0%}]"


def _met(met) -> str:
    return "n/a" if met is None else ("yes" if met else "no")


def _aggregates(summary: dict) -> list[str]:
    lines = [
        "## Aggregates (over markets, mean reward in dollars, 95% bootstrap interval)",
        "",
        f"Intervals: {summary.get('intervals', '95% bootstrap')}; constant data give the "
        "zero-width interval at its value, and where BCa is undefined the percentile "
        "interval is used.",
        "",
        "| policy / split | markets | mean reward | 95% CI | markets with positive reward |",
        "|---|---:|---:|---|---:|",
    ]
    for key, a in summary["aggregates"].items():
        lines.append(
            f"| {key} | {a['markets']} | {_money(a['mean_reward'])} "
            f"| {_interval(a['mean_reward_ci95'])} | {a['positive_market_share']:.0%} |"
        )
    lines += [
        "",
        "## Model against baselines (paired by market)",
        "",
        "| comparison | markets | mean difference | 95% CI |",
        "|---|---:|---:|---|",
    ]
    for key, d in summary["differences"].items():
        lines.append(
            f"| {key} | {d['markets']} | {_money(d['mean_difference'])} | {_interval(d['ci95'])} |"
        )
    gap = summary.get("generalisation_gap")
    return lines + [
        "",
        f"Generalisation gap (model, train - holdout): "
        f"{'n/a' if gap is None else f'{gap:.3f}'} dollars per market.",
        "",
    ]


def _actions(actions: dict) -> list[str]:
    names = " | ".join(ACTION_NAMES)
    lines = [
        "## Action distribution",
        "",
        "Share of steps given to each action; per episode: trades (steps with a fill), "
        "contracts traded (the turnover) and fees in dollars.",
        "",
        f"| policy / split | {names} | trades | contracts | fees | episodes with a fill |",
        "|---|" + "---:|" * (len(ACTION_NAMES) + 4),
    ]
    for key in _ordered_keys(actions):
        a = actions[key]
        shares = " | ".join(f"{a['action_share'][n]:.1%}" for n in ACTION_NAMES)
        lines.append(
            f"| {key} | {shares} | {a['trades_per_episode']:.1f} "
            f"| {a['contracts_per_episode']:.1f} | {a['fees_per_episode']:.3f} "
            f"| {a['episodes_with_a_fill']:.0%} |"
        )
    return lines + [""]


def _ordered_keys(table: dict) -> list[str]:
    """``policy/split`` keys, holdout first, then in report policy order."""
    pairs = [k.split("/", 1) for k in table]
    order = {p: i for i, p in enumerate(_policies({p for p, _ in pairs}))}
    splits = {s: i for i, s in enumerate(_splits({s for _, s in pairs}))}
    return [f"{p}/{s}" for p, s in sorted(pairs, key=lambda x: (splits[x[1]], order[x[0]]))]


def _groups(heading: str, label: str, groups: dict, note: str = "") -> list[str]:
    lines = [heading, ""]
    if note:
        lines += [note, ""]
    if not groups:
        return lines + ["Nothing to group (no difficulty known).", ""]
    policies = _policies({p for split in groups.values() for g in split.values()
                          for p in g["mean_reward"]})  # fmt: skip
    lines += [
        "Mean over markets of each policy's mean reward (dollars); model - HOLD paired by "
        "market; the share of markets where the model's mean reward is positive.",
        "",
        f"| split | {label} | markets | "
        + " | ".join(policies)
        + " | model - HOLD | model positive |",
        "|---|---|---:|" + "---:|" * (len(policies) + 2),
    ]
    for split in _splits(groups):
        for group, g in sorted(groups[split].items()):
            means = " | ".join(_money(g["mean_reward"].get(p)) for p in policies)
            lines.append(
                f"| {split} | {group} | {g['markets']} | {means} "
                f"| {_money(g.get('model_minus_hold'))} "
                f"| {_share(g['positive_share'].get('model'))} |"
            )
    return lines + [""]


def _spearman(table: dict) -> list[str]:
    lines = [
        "## Spearman correlations of reward",
        "",
        "Rank correlation of each episode's reward with its length, its view's market "
        "coverage and difficulty (rho, p-value in brackets); n/a where undefined (under 3 "
        "episodes, or a constant series such as always-HOLD's reward).",
        "",
        "| policy / split | episodes | length | coverage | difficulty |",
        "|---|---:|---|---|---|",
    ]
    for key in _ordered_keys(table):
        t = table[key]
        cells = " | ".join(_rho(t[name]) for name in ("length", "coverage", "difficulty"))
        lines.append(f"| {key} | {t['length']['n']} | {cells} |")
    return lines + [""]


def _rho(result: dict) -> str:
    if result["rho"] is None:
        return "n/a"
    return f"{result['rho']:+.2f} (p {result['p_value']:.2g}, n {result['n']})"


def _per_market(rows: Sequence[dict]) -> list[str]:
    names = {r["policy"] for r in rows}
    policy = "model" if "model" in names else next(iter(_policies(names)), None)
    splits = _splits({r["split"] for r in rows})
    if policy is None:
        return []
    split = splits[0]
    chosen = [r for r in rows if r["policy"] == policy and r["split"] == split]
    lines = [
        f"## Per market: {policy} on {split}",
        "",
        "Rewards, values, drawdown and fees in dollars; trades, contracts and length per "
        "episode; drawdown is the deepest in any episode. Every policy and split is in "
        "`per_market.csv`.",
        "",
        "| market | type | episodes | mean | std | min | max | length | success "
        "| final value | max drawdown | trades | contracts | fees | liquid |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    for r in chosen:
        lines.append(
            f"| {r['market_ticker']} | {r['market_type']} | {r['episodes']} "
            f"| {_money(r['mean_reward'])} | {_money(r['std_reward'])} "
            f"| {_money(r['min_reward'])} | {_money(r['max_reward'])} | {r['mean_length']:.0f} "
            f"| {r['success_rate']:.0%} | {r['mean_final_value_cents'] / 100:.2f} "
            f"| {_money(r['max_drawdown'])} | {r['mean_trades']:.1f} "
            f"| {r['mean_contracts_traded']:.1f} | {_money(r['mean_fees'])} "
            f"| {'yes' if r['liquid'] else 'no'} |"
        )
    return lines + [""]


def _lineage(episodes, model_path, lineage) -> list[str]:
    lines = ["## What was evaluated", ""]
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
    for split in _splits({e.split for e in episodes}):
        views = sorted({(e.session_id, e.view_key) for e in episodes if e.split == split})
        sessions = sorted({s for s, _ in views})
        lines.append(
            f"- {split}: {len(views)} views from sessions {sessions}: "
            + ", ".join(key for _, key in views)
        )
    return lines + [
        "",
        "Every episode is in `episodes.csv`; per-market statistics in `per_market.csv`; "
        "every figure above in `summary.json`.",
    ]


# -- plots -----------------------------------------------------------------------------------
def _policy_rewards(path: Path, rows: Sequence[dict], seed: int) -> None:
    """Per split, per policy side by side: a box of the per-market mean rewards and every
    market as a point (jittered sideways, seeded), so no policy hides another."""
    splits = _splits({r["split"] for r in rows}) or ["holdout"]
    policies = _policies({r["policy"] for r in rows})
    fig = Figure(figsize=(4 + 1.2 * len(policies) * len(splits), 4.5))  # no pyplot
    axes = np.atleast_1d(fig.subplots(1, len(splits), sharey=True, squeeze=False)[0])
    rng = np.random.default_rng(seed)
    for ax, split in zip(axes, splits, strict=True):
        data = [
            [r["mean_reward"] for r in rows if r["split"] == split and r["policy"] == p]
            for p in policies
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


def _action_plot(path: Path, actions: dict) -> None:
    """Stacked bars: each policy's share of steps per action."""
    keys = _ordered_keys(actions)
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


def _difficulty_plot(
    path: Path, episodes: Sequence[Episode], rows: Sequence[dict], difficulties: dict
) -> None:
    """Per market: its mean view difficulty against the model's (or, without a model,
    the imbalance rule's) mean reward minus always-HOLD's."""
    names = {r["policy"] for r in rows}
    policy = "model" if "model" in names else "imbalance_rule"
    keys: dict[tuple[str, str], list[str]] = {}
    for e in episodes:
        keys.setdefault((e.split, e.market_ticker), []).append(e.view_key)
    reward = {(r["split"], r["market_ticker"], r["policy"]): r["mean_reward"] for r in rows}
    fig = Figure(figsize=(7, 4))  # no pyplot: no GUI backend, no global state
    ax = fig.subplots()
    for split, marker in (("train", "o"), ("holdout", "x"), ("walk_forward", "^")):
        points = []
        for (s, market), views in sorted(keys.items()):
            mine = reward.get((s, market, policy))
            known = [difficulties[v] for v in views if v in difficulties]
            if s != split or mine is None or not known:
                continue
            points.append((np.mean(known), mine - reward.get((s, market, "hold"), 0.0)))
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
