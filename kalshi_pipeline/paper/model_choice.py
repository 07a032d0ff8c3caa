"""Which model paper trading plays, and in which env config: the champion of the model
history, or the models a session's records name.

A model plays in the env config it was trained with (its lineage's), as its evaluation
and its promotion played it. While no model has won a promotion, always-HOLD plays,
under the default env config. The records name a model by ``model-<registry id>`` (or
``always-HOLD``) and its file, so that a record read back later (a backtest of the
session, the champion's paper record) finds the same model again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.paper.records import Records
from kalshi_pipeline.paper.trader import ChosenModel
from kalshi_pipeline.training.evaluation.policies import hold_policy, model_policy
from kalshi_pipeline.training.lineage import read_lineage
from kalshi_pipeline.training.model_loading import load_checked_model
from kalshi_pipeline.training.promotion import ALWAYS_HOLD
from kalshi_pipeline.training.registry import PromotionError, Registry, RegistryRecord


@dataclass(frozen=True)
class PlayedModel:
    """A model to play, the env config it plays in, and its id in the model history
    (``None`` for always-HOLD, or a file the history does not know)."""

    chosen: ChosenModel
    config: EnvConfig
    registry_id: int | None = None

    @property
    def name(self) -> str:
        return self.chosen.name


def model_name(registry_id: int | None) -> str:
    """The records' name of the history's model ``registry_id``."""
    return ALWAYS_HOLD if registry_id is None else f"model-{registry_id}"


def always_hold(name: str = ALWAYS_HOLD) -> PlayedModel:
    """Always-HOLD, which plays while there is no champion, in the default env config."""
    return PlayedModel(ChosenModel(name, "", hold_policy()), EnvConfig())


def load_played(model_path: str, registry_id: int | None, name: str | None = None) -> PlayedModel:
    """The model at ``model_path`` with its lineage's env config, named ``name`` in the
    records (default: by its id); a model that does not load raises
    :class:`PromotionError` naming the file and why."""
    model = load_checked_model(Path(model_path))
    try:
        config = read_lineage(Path(model_path)).env_config()
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise PromotionError(f"model {model_path}: its env config is unreadable: {exc}") from exc
    chosen = ChosenModel(name or model_name(registry_id), str(model_path), model_policy(model))
    return PlayedModel(chosen, config, registry_id)


def champion(registry_path: Path) -> PlayedModel:
    """The champion of the model history at ``registry_path`` (always-HOLD while none
    has won), loaded now."""
    record = Registry(registry_path).champion()
    if record is None:
        return always_hold()
    return load_played(record.model_path, record.id)


def registry_ids(registry_path: Path) -> dict[str, int]:
    """Each model file of the history, with its id."""
    records: list[RegistryRecord] = Registry(registry_path).read()
    return {r.model_path: r.id for r in records if r.id is not None}


def recorded_models(records: Records, ids: Mapping[str, int]) -> dict[str, PlayedModel]:
    """The model each market of ``records`` was played by, under the name the records
    give it, loaded (each once), by market; ``ids`` gives the history's id of a model
    file. A record without a model file is always-HOLD's."""
    loaded: dict[tuple[str, str], PlayedModel] = {}
    by_market: dict[str, PlayedModel] = {}
    for market in records.markets:
        key = (market.model, market.model_path)
        if key not in loaded:
            path = market.model_path
            loaded[key] = (
                load_played(path, ids.get(path), market.model) if path
                else always_hold(market.model)
            )  # fmt: skip
        by_market[market.market] = loaded[key]
    return by_market
