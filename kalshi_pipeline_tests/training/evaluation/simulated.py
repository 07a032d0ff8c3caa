"""Views of simulated sessions: what the evaluation's and the report's tests play on."""

from __future__ import annotations

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session


def simulated_views() -> list:
    """Views of two simulated sessions, short ones included (evaluation plays them all)."""
    return [
        view
        for session_id in (1, 2)
        for view in build_market_views(
            simulate_session(session_id, seed=session_id, config=SimulatorConfig(markets=6))
        )
    ]
