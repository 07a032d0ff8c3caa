"""The paper trader: a session's rows in, each market's decisions and simulated fills out.

:class:`PaperTrader` feeds a session's new rows (a commit at a time) to the live path
(:class:`~kalshi_pipeline.market.streaming.SessionStream`: the batch cleaning, books and
features, run on what arrived), appends each market's new steps to its
:class:`~.live_view.LiveView`, and plays them in the env with the model
(:class:`~.episodes.MarketEpisode`): the backtest's loop on a view that grows. Nothing
is sent to any exchange: fills are the env's simulation, under the execution settings
the model was trained with.

Which model plays a market is asked once, when its first step arrives (``choose``): a
champion promoted mid-session plays the markets that start after it, and every record
names its model. Nothing here touches a database; :mod:`.follow` reads the collector and
writes the records.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import pyarrow as pa

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.market.streaming import SessionStream
from kalshi_pipeline.paper.episodes import MarketEpisode
from kalshi_pipeline.paper.live_view import LiveView
from kalshi_pipeline.paper.records import Records
from kalshi_pipeline.sources.raw import SessionInfo
from kalshi_pipeline.training.evaluation.policies import Policy

# How a market's record ends when the live cleaning rejected the market (the reason follows).
REJECTED_BY_CLEANING = "rejected by cleaning"


@dataclass(frozen=True)
class ChosenModel:
    """A model to play a market: its name in the records, its file, and its policy;
    ``config``, when given, is the env config it plays in (the one it was trained with),
    else the trader's."""

    name: str
    path: str
    policy: Policy
    config: EnvConfig | None = None


class PaperTrader:
    """Paper trading of one session (see the module docstring). ``choose(ticker)`` gives
    the model for a market whose first step just arrived; ``config`` is the env's."""

    def __init__(
        self, info: SessionInfo, config: EnvConfig, choose: Callable[[str], ChosenModel]
    ) -> None:
        self.info = info
        self.config = config
        self.choose = choose
        self.stream = SessionStream(info)
        self.episodes: dict[str, MarketEpisode] = {}
        self.closed = False

    @property
    def session_id(self) -> int:
        return self.info.session_id

    def add(self, snapshots: pa.Table, deltas: pa.Table, trades: pa.Table | None) -> Records:
        """The records of the rows of one commit (or several, in order)."""
        records = Records()
        for chunk in self.stream.add(snapshots, deltas, trades):
            episode = self.episodes.get(chunk.ticker)
            if episode is None:
                view = LiveView(self.session_id, chunk.ticker)
                view.append(chunk)
                model = self.choose(chunk.ticker)
                config = model.config or self.config
                episode = MarketEpisode(view, config, model.name, model.path, model.policy)
                self.episodes[chunk.ticker] = episode
                records.extend(episode.start())
            else:
                episode.view.append(chunk)
            records.extend(episode.advance())
        for ticker, reason in self.stream.rejected.items():
            episode = self.episodes.get(ticker)
            if episode is not None and not episode.done:
                records.extend(episode.stop(f"{REJECTED_BY_CLEANING}: {reason}"))
        return records

    def close(self) -> Records:
        """The session closed: every market's last action is played."""
        self.stream.finish()
        records = Records()
        for episode in self.episodes.values():
            records.extend(episode.advance(final=True))
        self.closed = True
        return records
