"""A command's inputs, checked before any work: its paths and its training config.

Every path a command reads or writes (``--out``, ``--store``, ``--home`` or
``$KALSHI_PIPELINE_HOME``, ``--hyperparams``) must be UTF-8 text as an absolute path:
TensorBoard, which writes the training logs, encodes its paths as UTF-8, so a path with
another byte (or a working directory with one) would fail after the views were built and
the first phase had started, naming no path: that is a
:class:`~kalshi_pipeline.cli.errors.UsageError` (exit 2) naming the option (or variable)
and the path. A directory the command writes in (``--out`` of ``train`` and ``generate``,
the home of ``train``, ``tune`` and ``demo``) that cannot be made because a file is in
its way, or under a directory the user cannot write in, is a
:class:`~kalshi_pipeline.cli.errors.CommandError` (exit 1, as for an ``--out`` or home
that is a file, which the commands check themselves): the value is usable, the file
system is in the way.

The training config is resolved once (the profile, the flags, a ``--hyperparams`` file):
a value out of its range is a usage error naming its key, and the file for its values.
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from kalshi_pipeline.cli.errors import CommandError, UsageError
from kalshi_pipeline.cli.options import pipeline_config
from kalshi_pipeline.paths import HOME_ENV, pipeline_home
from kalshi_pipeline.pipeline_config import PipelineConfig
from kalshi_pipeline.sources.settings import PIPELINE_HOME, UTF8_TODO, not_utf8, shown_path
from kalshi_pipeline.training.config import TrainingConfig
from kalshi_pipeline.training.config_checks import InvalidConfig

# Commands that write in the home, and those that read it (train only without --store).
WRITE_HOME = ("tune", "demo")
READ_HOME = ("models",)
MAX_NAME_BYTES = 255  # one file or directory name, on Linux's file systems


def check_paths(args: argparse.Namespace) -> None:
    """Refuse a path of ``args`` (or the home it uses) that the command cannot use."""
    for name in ("store", "out", "hyperparams", "home"):
        if (value := getattr(args, name, None)) is not None:
            utf8_path(f"--{name}", value)
    if args.command in ("train", "generate") and getattr(args, "out", None) is not None:
        writable_directory("--out", Path(args.out))
    uses_home = args.command in WRITE_HOME + READ_HOME or (
        args.command == "train" and getattr(args, "store", None) is None
    )
    if uses_home:
        home, named = home_of(args)
        utf8_path(named, home)
        if args.command != "models":
            writable_directory(named, home)


def home_of(args: argparse.Namespace) -> tuple[Path, str]:
    """The home the command uses, and how to name it in an error."""
    home = pipeline_home(getattr(args, "home", None))
    if getattr(args, "home", None) is not None:
        return home, "--home"
    if PIPELINE_HOME.is_set():
        return home, HOME_ENV
    return home, "the home (the working directory's .kalshi-pipeline)"


def utf8_path(name: str, path: str | os.PathLike) -> None:
    """Refuse ``path`` unless it is UTF-8 text, made absolute (the working directory too):
    the rule of ``$KALSHI_PIPELINE_HOME`` (:func:`~kalshi_pipeline.sources.settings.not_utf8`);
    and unless each of its names fits the file system (255 bytes), which would otherwise
    fail when the first file under it is written."""
    if (problem := not_utf8(name, path)) is not None:
        raise UsageError(problem, UTF8_TODO)
    longest = max(Path(os.path.abspath(path)).parts, key=lambda part: len(os.fsencode(part)))
    if len(os.fsencode(longest)) > MAX_NAME_BYTES:
        raise UsageError(
            f"{name} {shown_path(path)} has a name of {len(os.fsencode(longest))} bytes, more "
            f"than the {MAX_NAME_BYTES} a file system allows",
            "give shorter names",
        )


def writable_directory(name: str, path: Path) -> None:
    """Refuse a ``path`` to be made under a file, or under a directory the user cannot
    write in (a ``path`` that is a file itself the command reports in its own words)."""
    existing = next(p for p in [path, *path.absolute().parents] if p.exists())
    if existing != path and not existing.is_dir():
        raise CommandError(
            f"{name} {shown_path(path)} is under {shown_path(existing)}, a file",
            "give a path under a directory",
        )
    if existing.is_dir() and not os.access(existing, os.W_OK | os.X_OK):
        raise CommandError(
            f"{name} {shown_path(path)}: {shown_path(existing)} is not writable",
            "choose a directory you can write in",
        )


def training_of(args: argparse.Namespace) -> tuple[PipelineConfig, TrainingConfig]:
    """The pipeline config of ``train``'s options and its resolved training config; a
    setting out of range (a flag's, the profile's with it, a ``--hyperparams`` file's) is
    a usage error naming its key."""
    try:
        config = pipeline_config(args)  # e.g. more --net-arch layers than allowed
        return config, config.training_config()
    except InvalidConfig as error:
        raise UsageError(str(error), _FIX.format(command=args.command)) from None


def tuning_base_of(args: argparse.Namespace) -> PipelineConfig:
    """The pipeline config of ``tune``'s options but its training (each trial's own); a
    setting refused (a malformed ``--series-fees`` entry) is a usage error naming it."""
    try:
        return pipeline_config(args, with_training=False)
    except InvalidConfig as error:
        raise UsageError(str(error), _FIX.format(command=args.command)) from None


_FIX = "fix the value; kalshi-pipeline {command} --help lists the flags and ranges"
