"""The report's first two lines: the model's result in one sentence, on the holdout and on
the walk-forward views.

Before any figure, a line says what matters most: that the model never trades, or ties
always-HOLD on every market, when it does; else model minus HOLD per market with its 95%
bootstrap interval and the share of markets the model makes money on. The second line
gives the same for the sessions recorded after every training session, or why there is
no such evaluation.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from kalshi_pipeline.env.execution import HOLD
from kalshi_pipeline.market.split import SplitName
from kalshi_pipeline.training.evaluation.policies import PolicyName
from kalshi_pipeline.training.evaluation.rollouts import Episode
from kalshi_pipeline.training.evaluation.statistics import bootstrap_interval
from kalshi_pipeline.training.evaluation.tables import PerMarketRow


def _primary_split(episodes: Sequence[Episode]) -> str | None:
    splits = sorted({e.split for e in episodes})
    return SplitName.HOLDOUT if SplitName.HOLDOUT in splits else (splits[0] if splits else None)


def headline(episodes: Sequence[Episode], rows: Sequence[PerMarketRow], seed: int = 0) -> str:
    """The report's first line: the model's result on the holdout (or the one split
    evaluated), or first of all that the model never trades or ties always-HOLD."""
    split = _primary_split(episodes)
    if split is None:
        return "Nothing was evaluated: no episode."
    return split_result(episodes, rows, split, seed)


def walk_forward(episodes: Sequence[Episode], rows: Sequence[PerMarketRow], seed: int = 0) -> str:
    """The report's second line: the model on the sessions recorded after every session it
    was trained on (the ``walk_forward`` split), or why there is no such evaluation."""
    views = {(e.session_id, e.view_key) for e in episodes if e.split == SplitName.WALK_FORWARD}
    if not views:
        return (
            "No walk-forward evaluation: no session was recorded after the training sessions "
            "(one session only, or walk_forward_sessions 0)."
        )
    sessions = ", ".join(str(s) for s in sorted({s for s, _ in views}))
    result = split_result(episodes, rows, SplitName.WALK_FORWARD, seed)
    return (
        f"Walk-forward, on the {len(views)} views of session(s) {sessions}, recorded after "
        f"every training session: {result}"
    )


def split_result(
    episodes: Sequence[Episode], rows: Sequence[PerMarketRow], split: str, seed: int
) -> str:
    """The model's result on ``split``: that it never trades or ties always-HOLD, else
    model minus HOLD with its interval and the share of markets it makes money on."""
    model = [e for e in episodes if e.policy == PolicyName.MODEL and e.split == split]
    where = "walk-forward views" if split == SplitName.WALK_FORWARD else split
    if not model:
        return f"No model was evaluated: baselines only, on the {where}."
    if sum(e.contracts_traded for e in model) == 0:
        actions = np.sum([e.action_counts for e in model], axis=0)
        held = actions[HOLD] / max(actions.sum(), 1)
        return (
            f"The model never trades on the {where}: not one order filled in its "
            f"{len(model)} episodes ({held:.0%} of its actions were HOLD), so it earns "
            f"exactly what always-HOLD earns."
        )
    differences = _paired(rows, PolicyName.MODEL, PolicyName.HOLD, split)
    if differences is not None and len(differences) and np.all(np.abs(differences) < 1e-12):
        return (
            f"The model ties always-HOLD on the {where}: model minus HOLD is 0 on every one "
            f"of its {len(differences)} markets."
        )
    model_rewards = np.array(
        [r.mean_reward for r in rows if r.policy == PolicyName.MODEL and r.split == split]
    )
    share = float(np.mean(model_rewards > 0))
    if differences is None or not len(differences):
        low, high = bootstrap_interval(model_rewards, seed)
        return (
            f"The model's mean reward on the {where}: {model_rewards.mean():+.3f} dollars per "
            f"market, 95% CI [{low:+.3f}, {high:+.3f}] over {len(model_rewards)} markets; "
            f"positive on {share:.0%} of them."
        )
    low, high = bootstrap_interval(differences, seed)
    return (
        f"Model minus always-HOLD on the {where}: {differences.mean():+.3f} dollars per "
        f"market, 95% CI [{low:+.3f}, {high:+.3f}] over {len(differences)} markets; the "
        f"model's average reward is positive on {share:.0%} of them."
    )


def _paired(rows: Sequence[PerMarketRow], policy: str, other: str, split: str) -> np.ndarray | None:
    """``policy`` minus ``other`` per market of ``split`` (None without ``other``)."""
    mine = {r.market_ticker: r.mean_reward for r in rows
            if r.policy == policy and r.split == split}  # fmt: skip
    theirs = {r.market_ticker: r.mean_reward for r in rows
              if r.policy == other and r.split == split}  # fmt: skip
    if not theirs:
        return None
    return np.array([mine[m] - theirs[m] for m in sorted(set(mine) & set(theirs))])
