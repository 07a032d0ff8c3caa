"""Which model plays each market a follower starts: a fixed model file, or the champion
of the home's model history as it stands when the market's first step arrives.

:class:`ModelSource` answers the paper trader's question (``choose(ticker)``) and makes
the trader of each followed session (:meth:`ModelSource.trader`, :mod:`.follow`'s
``make_trader``). The champion is asked for each new market, cheaply: the history is
read again only when its file changed (its modification time, size or inode: the
registry replaces the file whole), and a model is loaded once. So a champion promoted
mid-session plays the markets that start after it, and the ones already started keep
theirs. Each model plays in the env config of its lineage (:mod:`.model_choice`), so its
fills follow its own execution mode; while no model has won a promotion, always-HOLD
plays, under the default env config. Markets already played before a restart are pinned
to the model their record names.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from pathlib import Path

from kalshi_pipeline.paper.model_choice import (
    PlayedModel,
    always_hold,
    load_played,
    model_name,
    recorded_models,
    registry_ids,
)
from kalshi_pipeline.paper.records import MarketRecord, Records
from kalshi_pipeline.paper.trader import ChosenModel, PaperTrader
from kalshi_pipeline.sources.raw import SessionInfo
from kalshi_pipeline.training.registry import Registry


class ModelSource:
    """The model for new markets: ``model_path``'s (fixed), or else the champion of the
    history at ``registry_path``. Exactly one of the two is given. A fixed model is
    named by its absolute path: the records name the file, and whatever reads them later
    (a resumed follower, the session's backtest) may run in another directory."""

    def __init__(self, *, model_path: Path | None = None, registry_path: Path | None = None):
        if (model_path is None) == (registry_path is None):
            raise ValueError("a model source is a model file or a model history, not both")
        self.model_path = None if model_path is None else Path(model_path).absolute()
        self.registry_path = registry_path
        self._loaded: dict[str, PlayedModel] = {}  # by model file
        self._seen: tuple | None = None  # the history file's identity when last read
        self._champion: PlayedModel | None = None

    def current(self) -> PlayedModel:
        """The model a market starting now plays."""
        if self.model_path is not None:
            path = str(self.model_path)
            return self._load(path, path)  # named by its file in the records
        seen = _file_identity(self.registry_path)
        if self._champion is None or seen != self._seen:
            record = Registry(self.registry_path).champion()
            self._champion = (
                always_hold() if record is None
                else self._load(record.model_path, model_name(record.id))
            )  # fmt: skip
            self._seen = seen
        return self._champion

    def trader(self, info: SessionInfo, started: Mapping[str, MarketRecord]) -> PaperTrader:
        """A trader for ``info``'s session; markets in ``started`` (already played before
        a restart) are played by the model their record names."""
        ids = registry_ids(self.registry_path) if self.registry_path is not None else {}
        pinned = recorded_models(Records(markets=list(started.values())), ids)
        first = self.current()

        def choose(ticker: str) -> ChosenModel:
            played = pinned.get(ticker) or self.current()
            return dataclasses.replace(played.chosen, config=played.config)

        return PaperTrader(info, first.config, choose)

    def _load(self, path: str, name: str) -> PlayedModel:
        if path not in self._loaded:
            ids = registry_ids(self.registry_path) if self.registry_path is not None else {}
            self._loaded[path] = load_played(path, ids.get(path), name)
        return self._loaded[path]


def _file_identity(path: Path) -> tuple | None:
    try:
        stat = os.stat(path)
    except FileNotFoundError:
        return None
    return (stat.st_mtime_ns, stat.st_size, stat.st_ino)
