"""The execution settings a run or an evaluation gives: :class:`ExecutionChoice`.

How orders meet the book is the env config's business
(:class:`~kalshi_pipeline.env.trading_env.EnvConfig`, its fields from ``execution`` to
``series_fees``: taker or maker, latency, queue model, fees). Those fields are declared
there with their default, help and accepted values; :class:`ExecutionChoice` has one
field per setting, made from EnvConfig's (:func:`_env_setting`), so each default and each
help line is written once, in EnvConfig.

The choice holds only what was given: every field is ``None`` (unset) unless set, and
:meth:`ExecutionChoice.apply` changes only the set fields of an env config. That is what
lets one record serve both uses:

* training (:class:`~kalshi_pipeline.pipeline_config.PipelineConfig`): the set fields
  change the profile's env config (a default choice changes nothing: the run trains
  exactly what it trained before these settings existed);
* evaluating a model: its own env config, read from its lineage, is the base, and a set
  field overrides it (the report then says which, and what the model's own was).

A side effect of "unset is ``None``": ``cancel_latency_ms`` cannot be set back to
``None`` ("the entry latency") through a choice; give the number instead.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Self

from kalshi_pipeline.config_fields import (
    CHOICES,
    FLAG,
    METAVAR,
    VALUES,
    described,
    flat_from_json,
    flat_to_json,
    help_of,
)
from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.env.fees import FeeModel
from kalshi_pipeline.env.latency import MAX_SIGMA
from kalshi_pipeline.training.config_checks import VALUE_RANGES, InvalidConfig

_ENV_FIELDS = {f.name: f for f in dataclasses.fields(EnvConfig)}


def shown_default(value: object) -> str:
    """A default as help shows it: a tuple as its items (``none`` when empty)."""
    if isinstance(value, tuple):
        return " ".join(map(str, value)) or "none"
    return str(value)


def _env_setting(name: str) -> object:
    """EnvConfig's field ``name`` as a choice's field: unset (``None``) unless given, with
    EnvConfig's help (its default named at the end, where it has one), values, choices,
    metavar and flag."""
    env_field = _ENV_FIELDS[name]
    help = help_of(env_field)
    if env_field.default is not None:
        help = f"{help} (default: {shown_default(env_field.default)})"
    metadata = env_field.metadata
    return described(
        None,
        help,
        values=metadata[VALUES],
        flag=metadata.get(FLAG),
        choices=metadata.get(CHOICES),
        metavar=metadata.get(METAVAR),
    )


@dataclasses.dataclass(frozen=True, kw_only=True)
class ExecutionChoice:
    """EnvConfig's execution settings that were given (``None``: unset, the base env
    config's value): see the module docstring. Each set value is checked when the choice
    is made, against the field's choices or range, and the series fee entries as the
    env's fee model reads them (:class:`~kalshi_pipeline.env.fees.FeeModel`), so a bad
    value fails on the command line or in Dagster's run config, naming its key."""

    execution: str | None = _env_setting("execution")
    order_expiry_steps: int | None = _env_setting("order_expiry_steps")
    latency_ms: int | None = _env_setting("latency_ms")
    cancel_latency_ms: int | None = _env_setting("cancel_latency_ms")
    latency_distribution: str | None = _env_setting("latency_distribution")
    latency_sigma: float | None = _env_setting("latency_sigma")
    queue_model: str | None = _env_setting("queue_model")
    queue_power: float | None = _env_setting("queue_power")
    trade_through_fills: str | None = _env_setting("trade_through_fills")
    fee_type: str | None = _env_setting("fee_type")
    fee_multiplier: float | None = _env_setting("fee_multiplier")
    series_fees: tuple[str, ...] | None = _env_setting("series_fees")

    def __post_init__(self) -> None:
        for name, value in self.changes().items():
            metadata = _ENV_FIELDS[name].metadata
            choices, valid = metadata.get(CHOICES), VALUE_RANGES.get(metadata[VALUES])
            if choices and value not in choices:
                raise InvalidConfig(
                    f"execution setting {name} must be one of {list(choices)}, got {value!r}"
                )
            if valid is not None and not valid.accepts(value):
                raise InvalidConfig(
                    f"execution setting {name} must be {valid.describe()}, got {value!r}"
                )
        if self.series_fees is not None:
            _check_series_fees(self.series_fees)
        if self.latency_sigma is not None and not 0 < self.latency_sigma <= MAX_SIGMA:
            raise InvalidConfig(
                f"execution setting latency_sigma must be in (0, {MAX_SIGMA:g}], "
                f"got {self.latency_sigma!r}"
            )

    def changes(self) -> dict[str, object]:
        """The set fields and their values, in field order."""
        return {
            f.name: value
            for f in dataclasses.fields(self)
            if (value := getattr(self, f.name)) is not None
        }

    def apply(self, env: EnvConfig) -> EnvConfig:
        """``env`` with the set fields changed (``env`` itself when none is set)."""
        changes = self.changes()
        return dataclasses.replace(env, **changes) if changes else env

    def to_json(self) -> dict:
        return flat_to_json(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return flat_from_json(cls, data)


def _check_series_fees(series: object) -> None:
    """Raise :class:`InvalidConfig` unless ``series`` is a tuple of entries the env's fee
    model reads (``SERIES:FEE_TYPE[:MULTIPLIER]``, each series once)."""
    if not isinstance(series, tuple) or not all(isinstance(entry, str) for entry in series):
        raise InvalidConfig(f"execution setting series_fees must be a list of text, got {series!r}")
    try:
        FeeModel(series=series)
    except ValueError as error:
        raise InvalidConfig(f"execution setting series_fees: {error}") from None


def execution_settings(env: EnvConfig) -> dict[str, object]:
    """``env``'s execution settings by name (the fields :class:`ExecutionChoice` sets)."""
    return {f.name: getattr(env, f.name) for f in dataclasses.fields(ExecutionChoice)}
