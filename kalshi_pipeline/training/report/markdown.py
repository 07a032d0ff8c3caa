"""``report.md``: results first, lineage last, every figure the one in ``summary.json``.

1. its first line: the model's result on the holdout, or that it never trades or ties
   always-HOLD; then the execution it was measured under (taker or maker, and a maker's
   latency, queue model and fees: :mod:`.execution`), with the settings set for this
   evaluation that are not the model's own; then the result on the walk-forward views
   (every view of the sessions recorded after every training session), or why there
   are none;
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
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

from kalshi_pipeline.env.execution import ACTION_NAMES
from kalshi_pipeline.training.evaluation import (
    Episode,
    EvaluationSummary,
    PerMarketRow,
    PolicyName,
    difference_key,
    policy_split_key,
)
from kalshi_pipeline.training.lineage import Lineage
from kalshi_pipeline.training.report.order import (
    ordered_policies,
    ordered_splits,
    policy_split_keys,
)
from kalshi_pipeline.training.report.plots import PLOTS


def report_markdown(
    episodes: Sequence[Episode],
    rows: Sequence[PerMarketRow],
    summary: EvaluationSummary,
    findings: Mapping,
    model_path: Path | None,
    lineage: Lineage | None,
    execution: Sequence[str] = (),
) -> tuple[str, str]:
    """``report.md`` in two parts: its results (sections 1 to 7) and the rest (the plots
    and what was evaluated); the file is the two joined. ``findings`` is
    :func:`~kalshi_pipeline.training.evaluation.analyse`'s; ``execution`` the lines on
    the execution settings, under the first."""
    lines = [f"# Evaluation report: {findings['headline']}", ""]
    lines += [*execution, ""] if execution else []
    lines += [findings["walk_forward"], ""]
    lines += _targets(findings["targets"])
    lines += _aggregates(summary)
    keys = policy_split_keys(episodes)
    lines += _actions(findings["actions"], keys)
    lines += _groups("## By market type", "market type", findings["by_market_type"])
    lines += _groups(
        "## By difficulty band",
        "difficulty band",
        findings["by_difficulty_band"],
        note="Markets ranked by the mean difficulty of their views within each split and cut "
        "into quintiles of equal size (fewer bands when there are fewer markets), Q1 the "
        "easiest; the band's difficulty range in brackets.",
    )
    lines += _spearman(findings["spearman"], keys)
    lines += _per_market(rows)
    rest = ["## Plots", ""]
    rest += [f"![{name[:-4]}]({name})" for name in PLOTS]
    rest += [""] + _lineage(episodes, model_path, lineage)
    return "\n".join(lines) + "\n", "\n".join(rest) + "\n"


def _money(value) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.3f}"


def _interval(bounds) -> str:
    if bounds is None:
        return "n/a"
    low, high = bounds
    return f"[{_money(low)}, {_money(high)}]"


def _share(value) -> str:
    return "n/a" if value is None else f"{value:.0%}"


def _share_interval(bounds) -> str:
    return "n/a" if bounds is None else f"[{bounds[0]:.0%}, {bounds[1]:.0%}]"


def _met(met) -> str:
    return "n/a" if met is None else ("yes" if met else "no")


def _targets(targets: Mapping) -> list[str]:
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
        for split in ordered_splits(entry["splits"]):
            s = entry["splits"][split]
            lines.append(
                f"| phase {entry['phase']} / {split} | {entry['target']:.0%} | {s['markets']} "
                f"| {_share(s['positive_share'])} | {_share_interval(s['positive_share_ci95'])} "
                f"| {_met(s['met'])} | {s['liquid_markets']} "
                f"| {_share(s['liquid_positive_share'])} "
                f"| {_share_interval(s['liquid_positive_share_ci95'])} | {_met(s['liquid_met'])} |"
            )
    return lines + [""]


def _aggregates(summary: EvaluationSummary) -> list[str]:
    lines = [
        "## Aggregates (over markets, mean reward in dollars, 95% bootstrap interval)",
        "",
        f"Intervals: {summary.intervals}; constant data give the "
        "zero-width interval at its value, and where BCa is undefined the percentile "
        "interval is used.",
        "",
        "| policy / split | markets | mean reward | 95% CI | markets with positive reward |",
        "|---|---:|---:|---|---:|",
    ]
    for (policy, split), a in summary.aggregates.items():
        lines.append(
            f"| {policy_split_key(policy, split)} | {a.markets} | {_money(a.mean_reward)} "
            f"| {_interval(a.mean_reward_ci95)} | {a.positive_market_share:.0%} |"
        )
    lines += [
        "",
        "## Model against baselines (paired by market)",
        "",
        "| comparison | markets | mean difference | 95% CI |",
        "|---|---:|---:|---|",
    ]
    for (baseline, split), d in summary.differences.items():
        lines.append(
            f"| {difference_key(baseline, split)} | {d.markets} | {_money(d.mean_difference)} "
            f"| {_interval(d.ci95)} |"
        )
    gap = summary.generalisation_gap
    return lines + [
        "",
        f"Generalisation gap (model, train - holdout): "
        f"{'n/a' if gap is None else f'{gap:.3f}'} dollars per market.",
        "",
    ]


def _actions(actions: Mapping[str, dict], keys: Sequence[str]) -> list[str]:
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
    for key in keys:
        a = actions[key]
        shares = " | ".join(f"{a['action_share'][n]:.1%}" for n in ACTION_NAMES)
        lines.append(
            f"| {key} | {shares} | {a['trades_per_episode']:.1f} "
            f"| {a['contracts_per_episode']:.1f} | {a['fees_per_episode']:.3f} "
            f"| {a['episodes_with_a_fill']:.0%} |"
        )
    return lines + [""]


def _groups(heading: str, label: str, groups: Mapping, note: str = "") -> list[str]:
    lines = [heading, ""]
    if note:
        lines += [note, ""]
    if not groups:
        return lines + ["Nothing to group (no difficulty known).", ""]
    policies = ordered_policies({p for split in groups.values() for g in split.values()
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
    for split in ordered_splits(groups):
        for group, g in sorted(groups[split].items()):
            means = " | ".join(_money(g["mean_reward"].get(p)) for p in policies)
            lines.append(
                f"| {split} | {group} | {g['markets']} | {means} "
                f"| {_money(g.get('model_minus_hold'))} "
                f"| {_share(g['positive_share'].get(PolicyName.MODEL))} |"
            )
    return lines + [""]


def _spearman(table: Mapping[str, dict], keys: Sequence[str]) -> list[str]:
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
    for key in keys:
        t = table[key]
        cells = " | ".join(_rho(t[name]) for name in ("length", "coverage", "difficulty"))
        lines.append(f"| {key} | {t['length']['n']} | {cells} |")
    return lines + [""]


def _rho(result: Mapping) -> str:
    if result["rho"] is None:
        return "n/a"
    return f"{result['rho']:+.2f} (p {result['p_value']:.2g}, n {result['n']})"


def _per_market(rows: Sequence[PerMarketRow]) -> list[str]:
    names = {r.policy for r in rows}
    policy = (
        PolicyName.MODEL if PolicyName.MODEL in names else next(iter(ordered_policies(names)), None)
    )
    if policy is None:
        return []
    split = ordered_splits({r.split for r in rows})[0]
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
    for r in rows:
        if r.policy != policy or r.split != split:
            continue
        lines.append(
            f"| {r.market_ticker} | {r.market_type} | {r.episodes} "
            f"| {_money(r.mean_reward)} | {_money(r.std_reward)} "
            f"| {_money(r.min_reward)} | {_money(r.max_reward)} | {r.mean_length:.0f} "
            f"| {r.success_rate:.0%} | {r.mean_final_value_cents / 100:.2f} "
            f"| {_money(r.max_drawdown)} | {r.mean_trades:.1f} "
            f"| {r.mean_contracts_traded:.1f} | {_money(r.mean_fees)} "
            f"| {'yes' if r.liquid else 'no'} |"
        )
    return lines + [""]


def _lineage(
    episodes: Sequence[Episode], model_path: Path | None, lineage: Lineage | None
) -> list[str]:
    lines = ["## What was evaluated", ""]
    if model_path is not None:
        lines += [f"Model: `{model_path}`", ""]
    if lineage:
        lines += [
            f"- phase {lineage.phase}, {lineage.algorithm}, "
            f"{lineage.timesteps} timesteps, seed {lineage.seed}",
            f"- trained on sessions {list(lineage.sessions)} ({len(lineage.views)} views), "
            f"feature layout {lineage.feature_layout} v{lineage.feature_layout_version}",
            f"- parent model: `{lineage.parent_model}`",
            f"- training views: {', '.join(lineage.views)}",
            f"- config: `{json.dumps(lineage.config, sort_keys=True)}`",
            "",
        ]
    for split in ordered_splits({e.split for e in episodes}):
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
