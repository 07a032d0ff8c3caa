"""The command line's parser: every command's options, and the config they make.

The options of ``train`` and ``tune`` that configure the pipeline are generated from the
configuration dataclasses (:mod:`kalshi_pipeline.pipeline_config`, ``FilterConfig``; the
execution settings from ``ExecutionChoice``, whose fields are the env config's): one
option per field, with the field's flag, help and accepted values
(:mod:`kalshi_pipeline.config_fields`; a tuple field takes one or more values) and its
default (a ``None`` default, "the profile's", is left out of ``--help``'s defaults and
out of the parsed arguments), and
:func:`pipeline_config` / :func:`tuning_choice` turn the parsed arguments back into those
dataclasses. Dagster's run config is made from the same fields, so the two front ends
offer the same settings. Options that are not configuration (``--store``, ``--out``,
``--home``, ``--phases``, ``--sampler-seed`` and ``generate``'s) are written here.

An option's values are checked against the range of its kind
(:data:`~kalshi_pipeline.training.config_checks.VALUE_RANGES`, where every range is
written), so a flag refuses what the configuration refuses, in the same words.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import types
import typing
from collections.abc import Callable, Sequence
from pathlib import Path

from kalshi_pipeline.cli.paper_command import add_paper_command
from kalshi_pipeline.config_fields import CHOICES, METAVAR, VALUES, Values, flag_of, help_of
from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.pipeline_config import (
    ExecutionChoice,
    PipelineConfig,
    SplitConfig,
    TrainingChoice,
    TuningChoice,
)
from kalshi_pipeline.sources.simulator_config import (
    DEMO_SEED,
    DEMO_SESSIONS,
    POPULATION_DEFAULTS,
    Population,
    SimulatorConfig,
)
from kalshi_pipeline.training.config_checks import VALUE_RANGES, Range
from kalshi_pipeline.workflow import PHASES

COMMANDS = ("generate", "train", "tune", "demo", "models", "paper")
HOME_HELP = "default: $KALSHI_PIPELINE_HOME or ./.kalshi-pipeline"
STORE_HELP = "Parquet session store (default: the home's sessions/)"
LIVE_SPEED = 1.0  # generate --live: the sessions at the pace they were recorded


class Parser(argparse.ArgumentParser):
    """argparse with our one-line usage errors (subcommand parsers are of this class too)."""

    commands: dict[str, argparse.ArgumentParser] = {}  # the top-level parser's subcommands

    def error(self, message: str):
        sys.stderr.write(f"error: {message} (see: {self.prog} --help)\n")
        sys.exit(2)


def _checked(valid: Range) -> Callable[[str], int | float]:
    """An argparse type: the text as a number (a whole one if ``valid`` wants one) that
    ``valid`` accepts (float() reads "inf" and "nan" too: ``valid`` refuses them)."""

    def convert(text: str) -> int | float:
        try:
            value = int(text) if valid.whole else float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {valid.describe()}") from None
        if not valid.accepts(value):
            raise argparse.ArgumentTypeError(f"{value} is not {valid.describe()}")
        return value

    return convert


CONVERTERS = {Values.TEXT: None} | {kind: _checked(r) for kind, r in VALUE_RANGES.items()}
positive_int = CONVERTERS[Values.POSITIVE_INT]
non_negative_int = CONVERTERS[Values.NON_NEGATIVE_INT]
positive_float = CONVERTERS[Values.POSITIVE_FLOAT]


def field_argument(field: dataclasses.Field, default: object, many: bool = False) -> dict:
    """``add_argument``'s keywords for a configuration field (see the module docstring);
    ``many``: the field is a tuple, given as one or more values."""
    values = field.metadata[VALUES]
    options: dict = {
        "dest": field.name,
        "help": help_of(field),
        # Unset (None): shown in the help as "the profile's", not "None".
        "default": argparse.SUPPRESS if default is None else default,
    }
    if CONVERTERS[values] is not None:
        options["type"] = CONVERTERS[values]
    if many or values is Values.POSITIVE_INTS:
        options["nargs"] = "+"
    if choices := field.metadata.get(CHOICES):
        options["choices"] = list(choices)
    elif metavar := field.metadata.get(METAVAR):
        options["metavar"] = metavar
    elif flag_of(field) != "--" + field.name.replace("_", "-"):
        options["metavar"] = flag_of(field)[2:].replace("-", "_").upper()
    return options


def add_field_options(group, record: type, names: Sequence[str] | None = None) -> None:
    """One option per field of the dataclass ``record`` (only ``names``, in that order)."""
    by_name = {f.name: f for f in dataclasses.fields(record)}
    hints = typing.get_type_hints(record)
    defaults = record()
    for name in by_name if names is None else names:
        field, many = by_name[name], tuple in _types_of(hints[name])
        group.add_argument(flag_of(field), **field_argument(field, getattr(defaults, name), many))


def _types_of(hint) -> set:
    """The types a field's hint allows: ``tuple[str, ...] | None`` is ``{tuple, None}``."""
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        return set().union(*(_types_of(arg) for arg in typing.get_args(hint)))
    return {typing.get_origin(hint) or hint}


def from_arguments(record: type, args: argparse.Namespace, **changes):
    """The dataclass ``record`` from the parsed fields (those left out keep their default)."""
    values = {
        f.name: tuple(value) if isinstance(value := getattr(args, f.name), list) else value
        for f in dataclasses.fields(record)
        if hasattr(args, f.name)
    }
    return record(**values, **changes)


EXECUTION_GROUP = "execution (unset: the profile's, a taker)"


def add_pipeline_arguments(parser: argparse.ArgumentParser, *, with_training: bool = True) -> None:
    """The options of :class:`~kalshi_pipeline.pipeline_config.PipelineConfig`; their
    defaults are its defaults (unset: the profile's value). Without ``with_training``,
    only the filters, the split and the execution settings."""
    add_field_options(parser.add_argument_group("filters"), FilterConfig)
    add_field_options(parser.add_argument_group("split"), SplitConfig)
    add_field_options(parser.add_argument_group(EXECUTION_GROUP), ExecutionChoice)
    if not with_training:
        return
    group = parser.add_argument_group("training (unset: the profile's value)")
    add_field_options(group, TrainingChoice, ["profile"])
    group.add_argument(
        "--phases", type=int, nargs="+", default=list(PHASES), choices=PHASES,
        help="phases to train (earlier ones are reused)",
    )  # fmt: skip
    rest = [f.name for f in dataclasses.fields(TrainingChoice) if f.name != "profile"]
    add_field_options(group, TrainingChoice, rest)


def pipeline_config(args: argparse.Namespace, *, with_training: bool = True) -> PipelineConfig:
    """The :class:`PipelineConfig` the options of :func:`add_pipeline_arguments` say
    (without ``with_training``: the default training)."""
    data = PipelineConfig(
        filters=from_arguments(FilterConfig, args),
        split=from_arguments(SplitConfig, args),
        execution=from_arguments(ExecutionChoice, args),
    )
    if not with_training:
        return data
    return dataclasses.replace(data, training=from_arguments(TrainingChoice, args))


def tuning_choice(args: argparse.Namespace) -> TuningChoice:
    """The :class:`TuningChoice` of ``tune``'s options."""
    return from_arguments(TuningChoice, args)


def build_parser() -> Parser:
    # --debug is accepted before and after the command: every parser gets it, and only an
    # explicit flag sets it (SUPPRESS), so a subcommand's default cannot undo a global one.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS,
        help="print the full traceback of an error",
    )  # fmt: skip
    parser = Parser(prog="kalshi-pipeline", description="The ``kalshi-pipeline`` command.",
                    parents=[debug])  # fmt: skip
    # Not required here: argparse would report a missing command before an unknown flag.
    commands = parser.add_subparsers(dest="command", metavar="{" + ",".join(COMMANDS) + "}")
    _add_generate(commands, debug)
    _add_train(commands, debug)
    _add_tune(commands, debug)
    demo = commands.add_parser("demo", help="the main job on the embedded default", parents=[debug])
    demo.add_argument("--home", type=Path, help=HOME_HELP)
    models = commands.add_parser(
        "models", help="the model in production, then every candidate's history",
        parents=[debug],
    )  # fmt: skip
    models.add_argument("--home", type=Path, help=HOME_HELP)
    add_paper_command(commands, debug, HOME_HELP)
    parser.commands = commands.choices
    return parser


def _add_generate(commands, debug: argparse.ArgumentParser) -> None:
    gen = commands.add_parser(
        "generate", help="write simulated sessions in the raw schema", parents=[debug]
    )
    gen.add_argument("--out", type=Path, help="Parquet session store directory")
    gen.add_argument("--postgres", metavar="URL", help="write into the collector's tables")
    gen.add_argument("--sessions", type=positive_int, default=DEMO_SESSIONS)
    gen.add_argument(
        "--population",
        choices=[p.value for p in Population],
        default=SimulatorConfig.population.value,
        help="kalshi: calibrated to recorded Kalshi books and trades, with a trade tape; "
        "two-class: liquid and illiquid markets, no trade tape (default: %(default)s)",
    )
    gen.add_argument(
        "--markets",
        type=positive_int,
        help="markets per session (default: the population's, "
        + ", ".join(f"{p} {d['markets']}" for p, d in POPULATION_DEFAULTS.items())
        + ")",
    )
    gen.add_argument("--seed", type=non_negative_int, default=DEMO_SEED)
    gen.add_argument(
        "--median-events",
        type=positive_float,
        help="two-class only: median events per market (default "
        f"{POPULATION_DEFAULTS[Population.TWO_CLASS]['median_events_per_market']:g}; activity "
        "is log-normal around it; about 2.5 events make one book change, one view step)",
    )
    gen.add_argument(
        "--no-signal", action="store_true", help="the control: book imbalance predicts nothing"
    )
    gen.add_argument(
        "--live", action="store_true",
        help="with --postgres: write each session as the collector records one, a receive "
        "millisecond per commit over the session's own time (the sessions one after another)",
    )  # fmt: skip
    gen.add_argument(
        "--speed", type=positive_float, metavar="X",
        help=f"with --live: X times the pace they were recorded at (default {LIVE_SPEED:g})",
    )  # fmt: skip


def _add_train(commands, debug: argparse.ArgumentParser) -> None:
    train = commands.add_parser(
        "train",
        help="train the three phases on a session store and write the report",
        parents=[debug],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument("--store", type=Path, default=argparse.SUPPRESS, help=STORE_HELP)
    train.add_argument(
        "--out", type=Path, required=True, default=argparse.SUPPRESS,
        help="models and report go here; models already there are reused only if trained "
        "on the same views with the same config",
    )  # fmt: skip
    add_pipeline_arguments(train)


def _add_tune(commands, debug: argparse.ArgumentParser) -> None:
    tune = commands.add_parser(
        "tune",
        help="search PPO hyperparameters with Optuna, scored on the validation markets",
        parents=[debug],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    tune.add_argument("--store", type=Path, default=argparse.SUPPRESS, help=STORE_HELP)
    add_field_options(tune, TuningChoice, ["trials", "storage", "study"])
    tune.add_argument(
        "--out", type=Path, default=argparse.SUPPRESS,
        help="the hyperparameter file (default: artifacts/hyperparameters/STUDY.json)",
    )  # fmt: skip
    tune.add_argument("--home", type=Path, help=HOME_HELP)
    add_pipeline_arguments(tune, with_training=False)
    group = tune.add_argument_group("each trial's training")
    add_field_options(group, TuningChoice, ["profile", "timesteps_per_phase", "seed"])
    tune.add_argument(
        "--sampler-seed", type=non_negative_int, default=argparse.SUPPRESS,
        help="seed of the sampler (default: --seed); give each process that shares a study "
        "its own, or their first, random trials suggest the same hyperparameters",
    )  # fmt: skip
