"""The Gymnasium trading environment, its execution model, observation and view samplers.

Importing this package registers the environment with Gymnasium::

    import gymnasium
    import kalshi_pipeline.env  # noqa: F401  (registers the id)
    env = gymnasium.make("kalshi_pipeline/MarketAgnosticKalshi-v0", view=views)

or, without the import, with the module in front of the id:
``gymnasium.make("kalshi_pipeline.env:kalshi_pipeline/MarketAgnosticKalshi-v0", view=...)``.
"""

import gymnasium

from kalshi_pipeline.env.execution import ACTION_NAMES, BUY_NO, BUY_YES, HOLD, SELL_NO, SELL_YES
from kalshi_pipeline.env.observation import OBSERVATION_NAMES
from kalshi_pipeline.env.samplers import (
    BalancedSampler,
    CurriculumSampler,
    HybridSampler,
    SequentialSampler,
    ViewSampler,
)
from kalshi_pipeline.env.trading_env import EnvConfig, MarketAgnosticKalshiEnv

ENV_ID = "kalshi_pipeline/MarketAgnosticKalshi-v0"

if ENV_ID not in gymnasium.registry:
    gymnasium.register(
        id=ENV_ID, entry_point="kalshi_pipeline.env.trading_env:MarketAgnosticKalshiEnv"
    )

__all__ = [
    "ACTION_NAMES",
    "BUY_NO",
    "BUY_YES",
    "ENV_ID",
    "HOLD",
    "OBSERVATION_NAMES",
    "SELL_NO",
    "SELL_YES",
    "BalancedSampler",
    "CurriculumSampler",
    "EnvConfig",
    "HybridSampler",
    "MarketAgnosticKalshiEnv",
    "SequentialSampler",
    "ViewSampler",
]
