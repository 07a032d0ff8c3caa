"""What each command of ``kalshi-pipeline`` does, once its options are parsed.

``generate`` writes simulated sessions to a Parquet store (or the collector's tables);
``train`` runs the three phases and the report outside Dagster
(:func:`kalshi_pipeline.workflow.run`); ``tune`` searches hyperparameters; ``demo`` runs
the whole Dagster graph on a local instance (:mod:`kalshi_pipeline.demo`); ``models``
shows the model history. A failure the user can fix is a
:class:`~kalshi_pipeline.cli.errors.CommandError`, which :mod:`kalshi_pipeline.cli.errors`
turns into one line.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
import time
from contextlib import closing
from pathlib import Path

import psycopg2

from kalshi_pipeline import workflow
from kalshi_pipeline.cli.errors import PERCENT_ENCODE, CommandError
from kalshi_pipeline.cli.inputs import check_paths, training_of, tuning_base_of
from kalshi_pipeline.cli.options import LIVE_SPEED, tuning_choice
from kalshi_pipeline.cli.paper_command import run_paper
from kalshi_pipeline.paths import (
    artifacts_dir,
    hyperparameters_file,
    pipeline_home,
    sessions_dir,
    tuning_dir,
)
from kalshi_pipeline.sources.collector_connection import connect
from kalshi_pipeline.sources.collector_writer import collector_ddl, write_collector_session
from kalshi_pipeline.sources.live_writer import write_live_session
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline.sources.redaction import MALFORMED_URL, describe_url
from kalshi_pipeline.sources.settings import check_all
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_sessions
from kalshi_pipeline.sources.simulator_config import Population
from kalshi_pipeline.training.model_loading import champion_warning
from kalshi_pipeline.training.promotion import champion_problems
from kalshi_pipeline.training.registry import Registry, registry_path
from kalshi_pipeline.training.registry_display import describe_champion, history_markdown

MAKE_A_STORE = "make one with: kalshi-pipeline generate --out DIR"


def run(usage: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    check_all()  # every KALSHI_* setting, whether this command reads it or not
    check_paths(args)  # every path option, and the home, before any work
    if args.command == "generate":
        if (args.out is None) == (args.postgres is None):
            usage.error("generate needs exactly one of --out DIR or --postgres URL")
        if args.postgres is not None and describe_url(args.postgres) == MALFORMED_URL:
            # libpq's reason quotes the URL, so only our own words are shown.
            usage.error(
                "--postgres cannot be read as a PostgreSQL URL like "
                f"postgresql://USER:PASSWORD@HOST:PORT/DB; {PERCENT_ENCODE}"
            )
        if args.median_events is not None and args.population != Population.TWO_CLASS:
            usage.error(
                f"--median-events is a knob of the two-class population only (the "
                f"{args.population} population's activity is calibrated): add "
                "--population two-class, or leave it out"
            )
        if args.live and args.postgres is None:
            usage.error("--live writes into the collector's tables: add --postgres URL")
        if args.speed is not None and not args.live:
            usage.error("--speed X is the pace of --live: add --live, or leave --speed out")
        config = SimulatorConfig(
            population=Population(args.population),
            markets=args.markets,
            median_events_per_market=args.median_events,
            signal=not args.no_signal,
        ).resolved()
        live_speed = (args.speed or LIVE_SPEED) if args.live else None
        return generate(args.out, args.postgres, args.sessions, args.seed, config, live_speed)
    if args.command == "train":
        return run_train(args)
    if args.command == "models":
        return show_models(args.home)
    if args.command == "tune":
        return run_tune(args)
    if args.command == "paper":
        return run_paper(usage, args)
    return run_demo(usable_home(args.home))


def say(line: str) -> None:
    print(line, flush=True)


def run_train(args: argparse.Namespace) -> int:
    # Every setting in range (the flags, the profile, a --hyperparams file) before any work.
    config, training = training_of(args)
    if args.out.exists() and not args.out.is_dir():
        raise CommandError(f"--out {args.out} is a file", "give a directory for models and report")
    store = existing_store(getattr(args, "store", None) or sessions_dir(pipeline_home(None)))
    if note := training.budget_note():  # what will be trained, before training
        say(note)
    # One line per phase and seed candidate every few seconds: a progress bar per
    # candidate process would garble the terminal.
    report = workflow.run(store, args.out, config, phases=args.phases, on_progress=say)
    print(f"models: {args.out / 'models'}")
    if report is not None:
        print(f"report: {report}")
    return 0


def run_tune(args: argparse.Namespace) -> int:
    quiet_optuna_tracebacks(getattr(args, "debug", False))
    home = pipeline_home(args.home)
    choice = tuning_choice(args)
    base = tuning_base_of(args)
    out = getattr(args, "out", None) or hyperparameters_file(home, choice.study)
    store = existing_store(getattr(args, "store", None) or sessions_dir(home))
    split, session_views = workflow.load_split(store, choice.pipeline(base))
    say(workflow.describe_split(split))
    result = workflow.tune(
        split, session_views, choice.pipeline(base), choice,
        tuning_dir(home) / "studies.journal", tuning_dir(home) / choice.study, out, say,
        sampler_seed=getattr(args, "sampler_seed", None),
    )  # fmt: skip
    best, study = result.best, result.study
    low, high = best.ci95
    others = "".join(
        f", {n} {state}" for n, state in ((study.failed, "failed"), (study.running, "running"))
        if n
    )  # fmt: skip
    print(
        f"study {study.name} ({study.storage}): {study.complete} complete and "
        f"{study.pruned} pruned{others} of {study.trials} trials; best: trial {best.trial}, "
        f"model - HOLD on validation {best.model_minus_hold:+.3f} [{low:+.3f}, {high:+.3f}]"
    )
    if (as_set := result.profile_as_set) is not None:
        low, high = as_set.ci95
        print(
            f"the {study.profile} profile as set: trial {as_set.trial}, model - HOLD on "
            f"validation {as_set.model_minus_hold:+.3f} [{low:+.3f}, {high:+.3f}]"
        )
    print(f"hyperparameters: {out}  (kalshi-pipeline train --hyperparams {out})")
    return 0


# Optuna's warnings the command says better itself: a failed trial (two warnings, one with
# the traceback), and a database error (with its SQL) that the study's storage retries.
_SAID_BY_THE_COMMAND = ("optuna.study._optimize", "optuna.storages._rdb")


class _StderrHandler(logging.StreamHandler):
    """A stream handler that writes to ``sys.stderr`` as it is when a record comes: the
    handler outlives the command that installed it (a process may run several, as tests
    do, each with its own stderr), and must never write to a stream since closed."""

    @property
    def stream(self):
        return sys.stderr

    @stream.setter
    def stream(self, value) -> None:
        pass  # always the current sys.stderr


def quiet_optuna_tracebacks(debug: bool) -> None:
    """Without ``--debug``, Optuna shows no traceback, and none of the warnings the
    command reports in its one line (``_SAID_BY_THE_COMMAND``); its progress stays."""
    if debug:
        return
    import optuna  # only tune needs it (it takes a while to import)

    optuna_root = optuna.logging.get_logger("optuna")
    if any(h.name == "kalshi-pipeline" for h in optuna_root.handlers):
        return  # installed by an earlier command of this process
    optuna.logging.disable_default_handler()
    handler = _StderrHandler()
    handler.name = "kalshi-pipeline"
    handler.setFormatter(logging.Formatter("[%(levelname).1s %(asctime)s] %(message)s"))
    handler.addFilter(
        lambda record: (
            not record.exc_info
            and not (
                record.levelno >= logging.WARNING and record.name.startswith(_SAID_BY_THE_COMMAND)
            )
        )
    )
    optuna_root.addHandler(handler)


def existing_store(path: Path) -> ParquetSessionStore:
    """The store at ``path``, which must exist and hold sessions (training needs some)."""
    if not path.exists():
        raise CommandError(f"no session store at {path}", MAKE_A_STORE)
    if not path.is_dir():
        raise CommandError(f"the session store {path} is not a directory", MAKE_A_STORE)
    store = ParquetSessionStore(path)
    if not store.list_sessions():
        raise CommandError(
            f"the session store {path} holds no sessions",
            f"write some with: kalshi-pipeline generate --out {path}",
        )
    return store


def usable_home(home: Path | None) -> Path:
    """The pipeline home, created if missing; it must be a directory we can write in."""
    path = pipeline_home(home)
    todo = "give --home a writable directory, or set KALSHI_PIPELINE_HOME to one"
    if path.exists() and not path.is_dir():
        raise CommandError(f"the home {path} is a file, not a directory", todo)
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise CommandError(f"the home {path} is not usable: {exc.strerror}", todo) from None
    return path


def generate(
    out: Path | None,
    postgres_url: str | None,
    sessions: int,
    seed: int,
    config: SimulatorConfig,
    live_speed: float | None = None,
) -> int:
    """Simulated sessions into a store or the collector's tables; with ``live_speed``,
    each written live at that speed (:func:`write_live_session`), one after another."""
    started = time.perf_counter()
    events = 0
    # A progress bar only on a terminal: in a log it is noise around the one error line.
    simulated = simulate_sessions(sessions, seed, config, progress=sys.stderr.isatty())
    if out is not None:
        store = ParquetSessionStore(out)
        for session in simulated:
            store.write_session(session)
            events += session.num_events
        where = str(out)
    else:
        # The source's connection: bounded by its timeouts, errors without the password.
        with closing(connect(postgres_url, doing="writing sessions", readonly=False)) as conn:
            with conn.cursor() as cur:
                cur.execute(collector_ddl())
            for session in simulated:
                try:
                    if live_speed is None:
                        write_collector_session(conn, session)
                    else:
                        write_live(conn, session, live_speed)
                except psycopg2.errors.UniqueViolation:
                    where = describe_url(postgres_url)
                    raise CommandError(
                        f"session {session.session_id} is already in the database at {where}",
                        "generate into an empty database",
                    ) from None
                events += session.num_events
        where = "the collector database"
    print(
        f"wrote {sessions} sessions ({events:,} events, {config.population} population, "
        f"signal={config.signal}) to {where} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return 0


def write_live(conn, session: RawSession, speed: float) -> None:
    """One session written live, with a line on its start and one on its close."""
    info, started = session.info, time.perf_counter()
    span = info.ended_at - info.started_at if info.ended_at else None
    took = f", about {span.total_seconds() / speed:,.1f}s at speed {speed:g}" if span else ""
    print(f"session {info.session_id} started: {session.num_events:,} events{took}", flush=True)
    write_live_session(conn, session, speed)
    print(
        f"session {info.session_id} closed after {time.perf_counter() - started:.1f}s",
        flush=True,
    )


def show_models(home: Path | None) -> int:
    """The champion, then every candidate's record (the champion's first, then newest
    first), from the home's model history (:mod:`kalshi_pipeline.training.registry`)."""
    path = registry_path(artifacts_dir(pipeline_home(home)))
    records = Registry(path).read()
    if not records:
        raise CommandError(
            f"no model has been a candidate for production in {path}",
            "train one: kalshi-pipeline demo, or the train_and_evaluate job",
        )
    champion = Registry(path).champion()
    if champion is not None:
        print(describe_champion(champion))
    print(history_markdown(records))
    for problem in champion_problems(records, files=False):  # a history edited by hand
        print(f"warning: production is not a tested model: {problem}", file=sys.stderr)
    warning = champion_warning(champion)
    if warning:
        print(warning, file=sys.stderr)
    if champion is None:
        raise CommandError(
            f"no champion in {path}: none of the {len(records)} candidates beat always-HOLD "
            "on the holdout",
            "train longer or on more sessions; the history above says why each was refused",
        )
    return 0


def run_demo(home: Path) -> int:
    # Only the demo needs Dagster (most of a second to import): the other commands skip it.
    from kalshi_pipeline.demo import run_demo as run_pipeline

    run_pipeline(home)
    return 0
