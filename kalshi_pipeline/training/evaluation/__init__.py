"""Deterministic evaluation of a model next to baselines, per market, with bootstrap CIs.

Every policy plays one episode on every view it is given, deterministically
(:mod:`.policies`: the model, random, always-HOLD, the imbalance rule and, in maker mode,
the quote rule;
:mod:`.rollouts`: playing them into :class:`Episode` records). :mod:`.tables` turns the
episodes into one :class:`PerMarketRow` per (policy, split, market) and an
:class:`EvaluationSummary` over markets (each market counts once) with the 95% BCa
bootstrap intervals of :mod:`.statistics`; :mod:`.headline` and :mod:`.analysis` give
what the report states on top. The names used elsewhere are re-exported here.
"""

from kalshi_pipeline.training.evaluation.analysis import (
    action_distribution,
    analyse,
    difficulty_bands,
    grouped,
    spearman_table,
    target_shares,
)
from kalshi_pipeline.training.evaluation.headline import headline
from kalshi_pipeline.training.evaluation.policies import (
    MAKER,
    PolicyFactory,
    PolicyName,
    baseline_policies,
    hold_policy,
    imbalance_policy,
    model_policy,
    quote_policy,
    random_policy,
)
from kalshi_pipeline.training.evaluation.rollouts import (
    Episode,
    evaluate_policies,
    rollout,
    round_trip_fees_cents,
)
from kalshi_pipeline.training.evaluation.statistics import (
    CONFIDENCE,
    bootstrap_interval,
    spearman,
    wins_needed,
)
from kalshi_pipeline.training.evaluation.tables import (
    EvaluationSummary,
    PerMarketRow,
    difference_key,
    market_type,
    per_market_table,
    policy_split_key,
    summarise,
)

__all__ = [
    "CONFIDENCE",
    "MAKER",
    "Episode",
    "EvaluationSummary",
    "PerMarketRow",
    "PolicyFactory",
    "PolicyName",
    "action_distribution",
    "analyse",
    "baseline_policies",
    "bootstrap_interval",
    "difference_key",
    "difficulty_bands",
    "evaluate_policies",
    "grouped",
    "headline",
    "hold_policy",
    "imbalance_policy",
    "market_type",
    "model_policy",
    "per_market_table",
    "policy_split_key",
    "quote_policy",
    "random_policy",
    "rollout",
    "round_trip_fees_cents",
    "spearman",
    "spearman_table",
    "summarise",
    "target_shares",
    "wins_needed",
]
