"""``kalshi-pipeline paper``: the champion (or ``--model``) follows the collector's live
session and is scored as it goes, into the paper database.

The collector is ``--collector URL`` (default ``$KALSHI_COLLECTOR_URL``, the source the
ingest reads), the paper database ``--paper-db URL`` (default
``$KALSHI_PAPER_DATABASE_URL``; one of the two is required): the pipeline's own database,
never the collector's. The loop is :func:`kalshi_pipeline.paper.follow.follow`; the
models :class:`~kalshi_pipeline.paper.follow_models.ModelSource`. Errors name the
database by host, port and name, the session, the model file, never a password.
"""

from __future__ import annotations

import argparse
import math
import signal
from pathlib import Path

from kalshi_pipeline.cli.errors import PERCENT_ENCODE, CommandError, UsageError
from kalshi_pipeline.paper.follow import READ_LIMIT_ROWS, follow
from kalshi_pipeline.paper.follow_models import ModelSource
from kalshi_pipeline.paper.store import PaperStore, PaperStoreError
from kalshi_pipeline.paths import artifacts_dir, pipeline_home
from kalshi_pipeline.sources.collector_tail import CollectorTail, SessionNotFound
from kalshi_pipeline.sources.redaction import MALFORMED_URL, describe_url
from kalshi_pipeline.sources.settings import COLLECTOR_URL, PAPER_DATABASE_URL
from kalshi_pipeline.training.registry import PromotionError, registry_path

PAPER_DB_TODO = (
    f"start the paper database, or check --paper-db / {PAPER_DATABASE_URL.name} "
    "(host, port, database, user and password)"
)


def add_paper_command(commands, debug: argparse.ArgumentParser, home_help: str) -> None:
    """The ``paper`` subcommand's options."""
    paper = commands.add_parser(
        "paper", parents=[debug],
        help="follow the collector's live session with the champion (or --model), simulating "
        "its orders and recording every decision and fill in the paper database",
    )  # fmt: skip
    paper.add_argument("--session", type=int, metavar="ID", help="follow this session only")
    paper.add_argument(
        "--model", type=Path, metavar="PATH",
        help="play this model (model.zip, with its model.json) instead of the champion",
    )  # fmt: skip
    paper.add_argument(
        "--collector", metavar="URL",
        help=f"the collector's database (default: ${COLLECTOR_URL.name})",
    )  # fmt: skip
    paper.add_argument(
        "--paper-db", metavar="URL",
        help=f"the database paper trading writes to (default: ${PAPER_DATABASE_URL.name})",
    )  # fmt: skip
    paper.add_argument(
        "--once", action="store_true",
        help="follow one session to its close, then stop (default: each live session in turn)",
    )  # fmt: skip
    paper.add_argument(
        "--poll-ms", type=float, default=5.0, metavar="MS",
        help="wait between reads when nothing new came (default: %(default)g)",
    )  # fmt: skip
    paper.add_argument(
        "--stall-seconds", type=float, default=30.0, metavar="S",
        help="say so when a session still recording gets no row for S s (default: %(default)g)",
    )  # fmt: skip
    paper.add_argument("--home", type=Path, help=home_help + " (its model history)")


def run_paper(usage: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    collector_url = args.collector or COLLECTOR_URL.read()
    paper_url = args.paper_db or PAPER_DATABASE_URL.read()
    _check_urls(usage, collector_url, paper_url)
    if not all(0 < value < math.inf for value in (args.poll_ms, args.stall_seconds)):
        usage.error("--poll-ms and --stall-seconds must be finite numbers above 0")
    models = _model_source(args)
    store = PaperStore(paper_url, say=say)
    previous = signal.signal(signal.SIGTERM, _stop)  # a clean stop: KeyboardInterrupt
    try:
        store.create()
        with CollectorTail(collector_url) as tail:
            follow(
                tail, store, models.trader, session_id=args.session, once=args.once,
                poll_seconds=args.poll_ms / 1000, stall_seconds=args.stall_seconds, say=say,
                source=describe_url(collector_url), limit=READ_LIMIT_ROWS,
            )  # fmt: skip
    except PaperStoreError as exc:
        raise CommandError(str(exc), PAPER_DB_TODO) from None
    except SessionNotFound as exc:
        where = describe_url(collector_url)
        raise CommandError(
            f"{exc} of the collector database at {where}",
            "give a session id the collector has, or leave --session out to follow the "
            "live session",
        ) from None
    except PromotionError as exc:
        raise CommandError(str(exc), "fix or replace the model, or promote another") from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        store.close()
    return 0


def say(line: str) -> None:
    print(line, flush=True)


def _check_urls(usage, collector_url: str | None, paper_url: str | None) -> None:
    if not collector_url:
        usage.error(f"paper reads the collector's database: give --collector URL or set "
                    f"{COLLECTOR_URL.name}")  # fmt: skip
    if not paper_url:
        usage.error(f"paper writes to its own database: give --paper-db URL or set "
                    f"{PAPER_DATABASE_URL.name}")  # fmt: skip
    for flag, url in (("--collector", collector_url), ("--paper-db", paper_url)):
        if describe_url(url) == MALFORMED_URL:
            usage.error(f"{flag} cannot be read as a PostgreSQL URL like "
                        f"postgresql://USER:PASSWORD@HOST:PORT/DB; {PERCENT_ENCODE}")  # fmt: skip
    if describe_url(collector_url) == describe_url(paper_url):
        usage.error(
            f"--paper-db names the collector's database ({describe_url(paper_url)}): paper "
            "trading writes to a database of its own"
        )


def _model_source(args: argparse.Namespace) -> ModelSource:
    if args.model is not None:
        if not args.model.is_file():
            raise UsageError(f"--model {args.model} is not a file", "give a model.zip")
        models = ModelSource(model_path=args.model)
    else:
        models = ModelSource(registry_path=registry_path(artifacts_dir(pipeline_home(args.home))))
    try:
        played = models.current()  # a model that does not load is said now, not mid-session
    except PromotionError as exc:
        raise CommandError(str(exc), "fix or replace the model, or promote another") from None
    say(f"model for new markets: {played.name} (execution: {played.config.execution})")
    return models


def _stop(signum, frame) -> None:
    raise KeyboardInterrupt("stopped by SIGTERM")
