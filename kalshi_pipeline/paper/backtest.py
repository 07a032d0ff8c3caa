"""The backtest of a paper-traded session: the env on the session's batch views, with
the models the paper trader used, recorded the same way (:mod:`.episodes`).

Paper trading and this backtest must agree bit for bit (:func:`~.records.compare`): the
live path built the same views (:mod:`kalshi_pipeline.market.streaming`), and the same
loop played them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.market.views import MarketSessionView
from kalshi_pipeline.paper.episodes import MarketEpisode
from kalshi_pipeline.paper.records import Records
from kalshi_pipeline.paper.trader import ChosenModel


def backtest(
    views: Iterable[MarketSessionView], config: EnvConfig, choose: Callable[[str], ChosenModel]
) -> Records:
    """Every view played to its end by the model ``choose`` gives for its market (in the
    model's env config when it has one, else ``config``)."""
    records = Records()
    for view in views:
        model = choose(view.market_ticker)
        played_in = model.config or config
        episode = MarketEpisode(view, played_in, model.name, model.path, model.policy)
        records.extend(episode.start())
        records.extend(episode.advance(final=True))
    return records
