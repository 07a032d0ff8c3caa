"""How a configuration field describes itself, once, to both front ends.

The pipeline's configuration dataclasses (``FilterConfig`` in
:mod:`kalshi_pipeline.market.difficulty`, the rest in :mod:`kalshi_pipeline.pipeline_config`)
declare each field with :func:`described`: its default, one line of help, the values it
accepts on the command line and, where it differs from the field's name, its flag. The
command line (:mod:`kalshi_pipeline.cli.options`) builds its options from these, and
Dagster's run config (:mod:`kalshi_pipeline.defs.config`) takes the help as each field's
description, so neither copies a field by hand. This module imports nothing of the
package: every layer may use it (it sits beside the stack, like ``paths.py``).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from enum import StrEnum
from typing import Any

HELP, VALUES, FLAG, CHOICES, METAVAR = "help", "values", "flag", "choices", "metavar"


class Values(StrEnum):
    """What a field accepts on the command line (its range, and the words an error says it
    in: ``training.config_checks.VALUE_RANGES``)."""

    TEXT = "text"
    POSITIVE_INT = "a positive whole number"
    NON_NEGATIVE_INT = "a non-negative whole number"
    POSITIVE_FLOAT = "a finite positive number"
    FRACTION = "a fraction in [0, 1)"
    UNIT_OPEN_LOW = "a number in (0, 1]"  # a learning rate, a discount factor
    SEED = "a seed in [0, 4294967295]"  # 32 bits: NumPy's and SB3's seeds
    # One or more positive whole numbers (a tuple field, e.g. layer sizes).
    POSITIVE_INTS = "positive whole numbers"


def described(
    default: Any,
    help: str,
    *,
    values: Values = Values.TEXT,
    flag: str | None = None,
    choices: Sequence[str] | None = None,
    metavar: str | None = None,
) -> Any:
    """A dataclass field with ``default`` and its description (see the module docstring).

    ``flag`` is the command line's flag when it is not ``--`` and the field's name with
    dashes; ``choices`` are its only allowed values; ``metavar`` names its value in help.
    """
    metadata = {HELP: help, VALUES: values}
    extra = {FLAG: flag, CHOICES: tuple(choices) if choices else None, METAVAR: metavar}
    metadata.update({key: value for key, value in extra.items() if value is not None})
    return dataclasses.field(default=default, metadata=metadata)


def help_of(field: dataclasses.Field) -> str | None:
    """The field's one line of help, if it was declared with :func:`described`."""
    return field.metadata.get(HELP)


def flag_of(field: dataclasses.Field) -> str:
    """The field's command-line flag."""
    return field.metadata.get(FLAG) or "--" + field.name.replace("_", "-")


def flat_to_json(record: Any) -> dict:
    """A dataclass of plain fields as JSON-ready data (a tuple becomes a list)."""
    return {
        f.name: list(value) if isinstance(value := getattr(record, f.name), tuple) else value
        for f in dataclasses.fields(record)
    }


def flat_from_json(cls: type, data: Any) -> Any:
    """The dataclass ``cls`` back from :func:`flat_to_json` data (a list becomes a tuple)."""
    names = {f.name for f in dataclasses.fields(cls)}
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})
