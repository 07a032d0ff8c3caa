"""The ``kalshi-pipeline`` command: :func:`main` parses, runs and reports.

:mod:`~kalshi_pipeline.cli.options` builds the parser (the configuration options are
generated from the pipeline's dataclasses), :mod:`~kalshi_pipeline.cli.commands` does
each command's work and :mod:`~kalshi_pipeline.cli.errors` turns any failure into one
line on stderr, ``error: <what> (<what to do>)``, with exit code 2 for usage errors and 1
otherwise; a command stopped by SIGINT (``KeyboardInterrupt``; the demo maps SIGTERM to
it too) prints one line and exits 130. ``--debug`` (before or after the command) prints
the full traceback too, and the package's info log. The command is in the top layer
beside ``defs`` (docs/architecture.md); the README lists its commands and flags.
"""

from __future__ import annotations

import sys
import traceback

from kalshi_pipeline.cli.commands import run
from kalshi_pipeline.cli.errors import database_url, explain
from kalshi_pipeline.cli.options import COMMANDS, build_parser
from kalshi_pipeline.runtime import keep_freed_memory, log_errors
from kalshi_pipeline.sources.redaction import redact

__all__ = ["main"]

# The exit code of a command stopped by SIGINT or SIGTERM: 128 + SIGINT, as a shell gives.
INTERRUPTED = 130


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    # The command's own parser reports a usage error, so its --help is the one pointed to.
    usage = parser.commands.get(args.command, parser)
    if unknown:
        usage.error(f"unrecognised argument{'s' * (len(unknown) > 1)}: {' '.join(unknown)}")
    if args.command is None:
        parser.error(f"a command is needed: {', '.join(COMMANDS[:-1])} or {COMMANDS[-1]}")
    debug = getattr(args, "debug", False)
    keep_freed_memory()
    log_errors(debug)
    try:
        return run(usage, args)
    except KeyboardInterrupt as exc:  # SIGINT, or SIGTERM where the command maps it so (demo)
        if debug:
            sys.stderr.write("".join(traceback.format_exception(exc)))
        what = str(exc) or "interrupted by SIGINT or SIGTERM"
        sys.stderr.write(redact(f"error: {what}", database_url(args)) + "\n")
        return INTERRUPTED
    except Exception as exc:
        line, code = explain(exc, database_url(args))
        if debug:
            sys.stderr.write(redact("".join(traceback.format_exception(exc)), database_url(args)))
        sys.stderr.write(line + "\n")
        return code
