"""The ``kalshi-pipeline`` command.

``generate`` writes simulated sessions to a Parquet store (or the collector's tables);
``train`` runs the three phases and the report outside Dagster; ``demo`` is the main job
on the embedded default: the whole Dagster graph on a local instance
(:mod:`kalshi_pipeline.defs.demo`).

An expected failure (a bad argument, a missing or empty store, an unreachable database,
an unusable directory, an error our own code raises on bad input) prints one line to
stderr, ``error: <what> (<what to do>)``, and exits 2 for usage errors, 1 otherwise.
Anything else prints one line too, with a pointer to ``--debug``; ``--debug`` (before or
after the command) prints the full traceback. No line ever shows a database password:
the collector source's own errors (:class:`SourceUnavailable` and its subclasses) are
shown as they are, since they name host, port and database only, the timeout and its
variable, and what was being done, with what to do added by kind; a raw driver error is
named by host, port and database and a reason from a fixed list, never by its text; and
every message is redacted again.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import tempfile
import time
import traceback
from contextlib import closing
from dataclasses import replace
from pathlib import Path

from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.paths import (
    COLLECTOR_URL_ENV,
    artifacts_dir,
    hyperparameters_file,
    pipeline_home,
    sessions_dir,
    tuning_dir,
)
from kalshi_pipeline.runtime import keep_freed_memory
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore
from kalshi_pipeline.sources.postgres import (
    CONNECT_TIMEOUT_ENV,
    STATEMENT_TIMEOUT_ENV,
    SourceMisconfigured,
    SourceTimeout,
    SourceUnavailable,
)
from kalshi_pipeline.sources.redaction import MALFORMED_URL, describe_url, redact
from kalshi_pipeline.sources.simulator import (
    DEMO_SEED,
    DEMO_SESSIONS,
    SimulatorConfig,
    simulate_sessions,
)
from kalshi_pipeline.training.config import ALGORITHMS, PROFILES
from kalshi_pipeline.workflow import (
    PHASES,
    PipelineConfig,
    SplitConfig,
    TrainingChoice,
    TuningChoice,
)

PACKAGE_DIR = Path(__file__).resolve().parent
MAKE_A_STORE = "make one with: kalshi-pipeline generate --out DIR"
PERCENT_ENCODE = (
    "percent-encode the password's special characters, e.g. %25 for %, %40 for @ and %2F for /"
)
DEBUG_HINT = "run with --debug for the traceback"


class CommandError(Exception):
    """An expected failure the user can fix: what went wrong, and what to do about it."""

    def __init__(self, what: str, todo: str) -> None:
        super().__init__(what)
        self.what, self.todo = what, todo


class _Parser(argparse.ArgumentParser):
    """argparse with our one-line usage errors (subcommand parsers are of this class too)."""

    commands: dict[str, argparse.ArgumentParser] = {}  # the top-level parser's subcommands

    def error(self, message: str):
        sys.stderr.write(f"error: {message} (see: {self.prog} --help)\n")
        sys.exit(2)


def _checked(parse, kind: str, ok, wanted: str):
    """An argparse type: ``parse`` the text as ``kind``, then require ``ok(value)``."""

    def convert(text: str):
        try:
            value = parse(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not {kind}") from None
        if not ok(value):
            raise argparse.ArgumentTypeError(f"{value} is not {wanted}")
        return value

    return convert


positive_int = _checked(int, "a whole number", lambda v: v >= 1, "a positive whole number")
non_negative_int = _checked(int, "a whole number", lambda v: v >= 0, "a non-negative whole number")
# float() reads "inf" and "nan" too: neither is a count of events (inf overflowed later).
positive_float = _checked(
    float, "a number", lambda v: math.isfinite(v) and v > 0, "a finite positive number"
)
fraction = _checked(float, "a number", lambda v: 0 <= v < 1, "a fraction in [0, 1)")


def build_parser() -> _Parser:
    # --debug is accepted before and after the command: every parser gets it, and only an
    # explicit flag sets it (SUPPRESS), so a subcommand's default cannot undo a global one.
    debug = argparse.ArgumentParser(add_help=False)
    debug.add_argument(
        "--debug", action="store_true", default=argparse.SUPPRESS,
        help="print the full traceback of an error",
    )  # fmt: skip
    parser = _Parser(prog="kalshi-pipeline", description=__doc__.split("\n")[0], parents=[debug])
    # Not required here: argparse would report a missing command before an unknown flag.
    commands = parser.add_subparsers(dest="command", metavar="{generate,train,tune,demo,models}")

    gen = commands.add_parser(
        "generate", help="write simulated sessions in the raw schema", parents=[debug]
    )
    gen.add_argument("--out", type=Path, help="Parquet session store directory")
    gen.add_argument("--postgres", metavar="URL", help="write into the collector's tables")
    gen.add_argument("--sessions", type=positive_int, default=DEMO_SESSIONS)
    gen.add_argument("--markets", type=positive_int, default=SimulatorConfig.markets)
    gen.add_argument("--seed", type=non_negative_int, default=DEMO_SEED)
    gen.add_argument(
        "--median-events",
        type=positive_float,
        default=SimulatorConfig.median_events_per_market,
        help="median events per market (activity is log-normal around it; about 2.5 "
        "events make one book change, one view step)",
    )
    gen.add_argument(
        "--no-signal", action="store_true", help="the control: book imbalance predicts nothing"
    )

    train = commands.add_parser(
        "train",
        help="train the three phases on a session store and write the report",
        parents=[debug],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    train.add_argument(
        "--store",
        type=Path,
        default=argparse.SUPPRESS,
        help="Parquet session store (default: the home's sessions/)",
    )
    train.add_argument(
        "--out", type=Path, required=True, default=argparse.SUPPRESS,
        help="models and report go here; models already there are reused only if trained "
        "on the same views with the same config",
    )  # fmt: skip
    add_pipeline_arguments(train)

    tune = commands.add_parser(
        "tune",
        help="search PPO hyperparameters with Optuna, scored on the validation markets",
        parents=[debug],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    tuning = TuningChoice()
    tune.add_argument(
        "--store", type=Path, default=argparse.SUPPRESS,
        help="Parquet session store (default: the home's sessions/)",
    )  # fmt: skip
    tune.add_argument("--trials", type=positive_int, default=tuning.trials,
                      help="trials this process runs (added to the study's)")  # fmt: skip
    tune.add_argument(
        "--storage", metavar="URL", default=argparse.SUPPRESS,
        help="Optuna storage shared by several processes, e.g. postgresql://USER@HOST/DB "
        "(default: a journal file in the home's artifacts/tuning/)",
    )  # fmt: skip
    tune.add_argument("--study", default=tuning.study, help="the study's name")
    tune.add_argument(
        "--out", type=Path, default=argparse.SUPPRESS,
        help="the hyperparameter file (default: artifacts/hyperparameters/STUDY.json)",
    )  # fmt: skip
    tune.add_argument(
        "--home", type=Path, help="default: $KALSHI_PIPELINE_HOME or ./.kalshi-pipeline"
    )
    add_pipeline_arguments(tune, with_training=False)
    group = tune.add_argument_group("each trial's training")
    group.add_argument(
        "--profile", default=tuning.profile, choices=sorted(PROFILES),
        help="the profile whose hyperparameters are searched around",
    )  # fmt: skip
    group.add_argument(
        "--timesteps", type=positive_int, default=argparse.SUPPRESS,
        help="timesteps of each phase (default: the profile's)",
    )  # fmt: skip
    group.add_argument("--seed", type=non_negative_int, default=tuning.seed,
                       help="training and sampler seed")  # fmt: skip
    tune.add_argument(
        "--sampler-seed", type=non_negative_int, default=argparse.SUPPRESS,
        help="seed of the sampler (default: --seed); give each process that shares a study "
        "its own, or their first, random trials suggest the same hyperparameters",
    )  # fmt: skip

    demo = commands.add_parser("demo", help="the main job on the embedded default", parents=[debug])
    demo.add_argument(
        "--home", type=Path, help="default: $KALSHI_PIPELINE_HOME or ./.kalshi-pipeline"
    )
    models = commands.add_parser(
        "models", help="the model in production, then every candidate's history",
        parents=[debug],
    )  # fmt: skip
    models.add_argument(
        "--home", type=Path, help="default: $KALSHI_PIPELINE_HOME or ./.kalshi-pipeline"
    )
    parser.commands = commands.choices
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, unknown = parser.parse_known_args(argv)
    # The command's own parser reports a usage error, so its --help is the one pointed to.
    usage = parser.commands.get(args.command, parser)
    if unknown:
        usage.error(f"unrecognised argument{'s' * (len(unknown) > 1)}: {' '.join(unknown)}")
    if args.command is None:
        parser.error("a command is needed: generate, train, tune, demo or models")
    debug = getattr(args, "debug", False)
    keep_freed_memory()
    logging.basicConfig(level=logging.ERROR, format="%(levelname)s %(name)s: %(message)s")
    if debug:
        logging.getLogger("kalshi_pipeline").setLevel(logging.INFO)
    try:
        return run(usage, args)
    except Exception as exc:
        line, code = explain(exc, database_url(args))
        if debug:
            sys.stderr.write(redact("".join(traceback.format_exception(exc)), database_url(args)))
        sys.stderr.write(line + "\n")
        return code


def run(usage: argparse.ArgumentParser, args: argparse.Namespace) -> int:
    if args.command == "generate":
        if (args.out is None) == (args.postgres is None):
            usage.error("generate needs exactly one of --out DIR or --postgres URL")
        if args.postgres is not None and describe_url(args.postgres) == MALFORMED_URL:
            # libpq's reason quotes the URL, so only our own words are shown.
            usage.error(
                "--postgres cannot be read as a PostgreSQL URL like "
                f"postgresql://USER:PASSWORD@HOST:PORT/DB; {PERCENT_ENCODE}"
            )
        config = SimulatorConfig(
            markets=args.markets,
            median_events_per_market=args.median_events,
            signal=not args.no_signal,
        )
        return generate(args.out, args.postgres, args.sessions, args.seed, config)
    if args.command == "train":
        return run_train(args)
    if args.command == "models":
        return show_models(args.home)
    if args.command == "tune":
        return run_tune(args)
    return run_demo(usable_home(args.home))


def add_pipeline_arguments(parser: argparse.ArgumentParser, *, with_training: bool = True) -> None:
    """The arguments that map onto :class:`~kalshi_pipeline.workflow.PipelineConfig`;
    their defaults are its defaults (unset: the profile's value). Without
    ``with_training``, only the filters and the split."""
    filters, split, training = FilterConfig(), SplitConfig(), TrainingChoice()
    group = parser.add_argument_group("filters")
    group.add_argument(
        "--min-episode-length", type=positive_int, default=filters.min_episode_length,
        help="views with fewer steps are not trained on",
    )  # fmt: skip
    group.add_argument(
        "--min-coverage", type=fraction, default=filters.min_coverage,
        help="least share of the session's steps a view must span",
    )  # fmt: skip
    group.add_argument(
        "--min-data-quality", type=fraction, default=filters.min_data_quality,
        help="least data quality score",
    )  # fmt: skip
    group = parser.add_argument_group("split")
    group.add_argument(
        "--holdout-fraction", type=fraction, default=split.holdout_fraction,
        help="share of markets held out for evaluation",
    )  # fmt: skip
    group.add_argument(
        "--validation-fraction", type=fraction, default=split.validation_fraction,
        help="share of the other markets that pick each phase's best checkpoint",
    )  # fmt: skip
    group.add_argument("--split-salt", default=split.salt, help="markets hash with this salt")
    group.add_argument(
        "--walk-forward-sessions", type=non_negative_int, default=split.walk_forward_sessions,
        help="latest sessions kept out of training for the walk-forward evaluation",
    )  # fmt: skip
    group.add_argument(
        "--min-validation-per-kind", type=non_negative_int,
        default=split.min_validation_per_kind,
        help="minimum validation markets of each kind, tight and wide spread (at most half "
        "of a kind; 0: off)",
    )  # fmt: skip
    group.add_argument(
        "--tight-spread-cents", type=positive_float, default=split.tight_spread_cents,
        help="a market is of tight spread when its views' mean average spread (cents; "
        "walk-forward sessions excepted) is under this",
    )  # fmt: skip
    if not with_training:
        return
    group = parser.add_argument_group("training (unset: the profile's value)")
    group.add_argument(
        "--profile", default=training.profile, choices=sorted(PROFILES),
        help="default learns, demo is quick, plan is the plan's PPO",
    )  # fmt: skip
    group.add_argument(
        "--phases", type=int, nargs="+", default=list(PHASES), choices=PHASES,
        help="phases to train (earlier ones are reused)",
    )  # fmt: skip
    unset = argparse.SUPPRESS  # shown as "the profile's", not "None"
    for flag, kind, what in (
        ("--timesteps", positive_int, "timesteps of each phase"),
        ("--algorithm", None, "ppo or a2c"),
        ("--seed", non_negative_int, "training seed"),
        ("--learning-rate", positive_float, "learning rate"),
        ("--gamma", fraction, "discount factor"),
        ("--n-envs", positive_int, "environments per rollout"),
        ("--checkpoint-every", positive_int, "timesteps between checkpoints"),
        (
            "--validate-every",
            non_negative_int,
            "timesteps between evaluations on the validation markets (0: every checkpoint)",
        ),
        ("--candidates", positive_int, "seeds per phase, the best on validation kept"),
    ):
        options = {"choices": list(ALGORITHMS)} if kind is None else {"type": kind}
        group.add_argument(flag, default=unset, help=f"{what} (default: the profile's)", **options)
    group.add_argument(
        "--net-arch", type=positive_int, nargs="+", default=unset,
        help="hidden layer sizes, e.g. 64 64 (default: the profile's)",
    )  # fmt: skip
    group.add_argument(
        "--hyperparams", metavar="FILE", default=unset,
        help="hyperparameters found by kalshi-pipeline tune (the flags above change them)",
    )  # fmt: skip


def pipeline_config(args: argparse.Namespace, *, with_training: bool = True) -> PipelineConfig:
    """The :class:`PipelineConfig` the arguments of ``add_pipeline_arguments`` say
    (without ``with_training``: the default training)."""
    data = PipelineConfig(
        filters=FilterConfig(args.min_episode_length, args.min_coverage, args.min_data_quality),
        split=SplitConfig(
            args.holdout_fraction,
            args.validation_fraction,
            args.split_salt,
            args.walk_forward_sessions,
            args.min_validation_per_kind,
            args.tight_spread_cents,
        ),
    )
    if not with_training:
        return data
    return replace(
        data,
        training=TrainingChoice(
            profile=args.profile,
            timesteps_per_phase=getattr(args, "timesteps", None),
            algorithm=getattr(args, "algorithm", None),
            seed=getattr(args, "seed", None),
            learning_rate=getattr(args, "learning_rate", None),
            gamma=getattr(args, "gamma", None),
            n_envs=getattr(args, "n_envs", None),
            net_arch=tuple(args.net_arch) if hasattr(args, "net_arch") else None,
            checkpoint_every=getattr(args, "checkpoint_every", None),
            validate_every=getattr(args, "validate_every", None),
            candidates=getattr(args, "candidates", None),
            hyperparams=getattr(args, "hyperparams", None),
        ),
    )


def say(line: str) -> None:
    print(line, flush=True)


def run_train(args: argparse.Namespace) -> int:
    from kalshi_pipeline.workflow import run

    config = pipeline_config(args)
    config.training_config()  # a bad --hyperparams file is reported before any work
    if args.out.exists() and not args.out.is_dir():
        raise CommandError(f"--out {args.out} is a file", "give a directory for models and report")
    store = existing_store(getattr(args, "store", None) or sessions_dir(pipeline_home(None)))
    # One line per phase and seed candidate every few seconds: a progress bar per
    # candidate process would garble the terminal.
    report = run(store, args.out, config, phases=args.phases, on_progress=say)
    print(f"models: {args.out / 'models'}")
    if report is not None:
        print(f"report: {report}")
    return 0


def run_tune(args: argparse.Namespace) -> int:
    from kalshi_pipeline.workflow import load_split, tune

    home = pipeline_home(args.home)
    choice = TuningChoice(
        study=args.study,
        trials=args.trials,
        storage=getattr(args, "storage", None),
        profile=args.profile,
        timesteps_per_phase=getattr(args, "timesteps", None),
        seed=args.seed,
    )
    base = pipeline_config(args, with_training=False)
    out = getattr(args, "out", None) or hyperparameters_file(home, choice.study)
    store = existing_store(getattr(args, "store", None) or sessions_dir(home))
    split, session_views = load_split(store, choice.pipeline(base))
    say(split.describe())
    result = tune(
        split, session_views, choice.pipeline(base), choice,
        tuning_dir(home) / "studies.journal", tuning_dir(home) / choice.study, out, say,
        sampler_seed=getattr(args, "sampler_seed", None),
    )  # fmt: skip
    best, study = result["best"], result["study"]
    low, high = best["ci95"]
    print(
        f"study {study['name']} ({study['storage']}): {study['complete']} complete and "
        f"{study['pruned']} pruned of {study['trials']} trials; best: trial {best['trial']}, "
        f"model - HOLD on validation {best['model_minus_hold']:+.3f} [{low:+.3f}, {high:+.3f}]"
    )
    if (as_set := result["profile_as_set"]) is not None:
        low, high = as_set["ci95"]
        print(
            f"the {study['profile']} profile as set: trial {as_set['trial']}, model - HOLD on "
            f"validation {as_set['model_minus_hold']:+.3f} [{low:+.3f}, {high:+.3f}]"
        )
    print(f"hyperparameters: {out}  (kalshi-pipeline train --hyperparams {out})")
    return 0


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
    out: Path | None, postgres_url: str | None, sessions: int, seed: int, config: SimulatorConfig
) -> int:
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
        import psycopg2

        from kalshi_pipeline.sources.postgres import (
            collector_ddl,
            connect,
            write_collector_session,
        )

        # The source's connection: bounded by its timeouts, errors without the password.
        with closing(connect(postgres_url, doing="writing sessions", readonly=False)) as conn:
            with conn.cursor() as cur:
                cur.execute(collector_ddl())
            for session in simulated:
                try:
                    write_collector_session(conn, session)
                except psycopg2.errors.UniqueViolation:
                    where = describe_url(postgres_url)
                    raise CommandError(
                        f"session {session.session_id} is already in the database at {where}",
                        "generate into an empty database",
                    ) from None
                events += session.num_events
        where = "the collector database"
    print(
        f"wrote {sessions} sessions ({events:,} events, signal={config.signal}) to {where} "
        f"in {time.perf_counter() - started:.1f}s"
    )
    return 0


def show_models(home: Path | None) -> int:
    """The champion, then every candidate's record (the champion's first, then newest
    first), from the home's model history (:mod:`kalshi_pipeline.training.promotion`)."""
    from kalshi_pipeline.training.promotion import (
        Registry,
        describe_champion,
        history_markdown,
        registry_path,
    )

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
    if champion is None:
        raise CommandError(
            f"no champion in {path}: none of the {len(records)} candidates beat always-HOLD "
            "on the holdout",
            "train longer or on more sessions; the history above says why each was refused",
        )
    return 0


def run_demo(home: Path) -> int:
    from kalshi_pipeline.defs.demo import run_demo as run_pipeline

    run_pipeline(home)
    return 0


# -- errors ------------------------------------------------------------------------------
# What to do about an operating-system error, by type (the first match wins).
_OS_ERROR_TODO: list[tuple[type[OSError], str]] = [
    (FileNotFoundError, "check the path"),
    (FileExistsError, "choose another path, or delete what is there"),
    (NotADirectoryError, "give a directory, not a file"),
    (IsADirectoryError, "give a file, not a directory"),
    (PermissionError, "choose another path, or fix its permissions"),
]


def explain(exc: Exception, database: str | None) -> tuple[str, int]:
    """The one line (``error: <what> (<what to do>)``) and exit code for ``exc``.

    ``database`` is the URL the command talks to, if any: the source's errors are shown
    (redacted), a raw driver error only by host, port and database and a fixed reason,
    never by its text (libpq may quote the URL).
    """
    if isinstance(exc, CommandError):
        return _line(database, exc.what, exc.todo), 1
    if isinstance(exc, SourceUnavailable):  # says where, what and why; we add what to do
        what = redact(" ".join(str(exc).split()), database)
        code = 2 if isinstance(exc, SourceMisconfigured) else 1
        return f"error: {what} ({_source_todo(exc)})", code
    psycopg2 = sys.modules.get("psycopg2")  # imported only by commands that use it
    connection_errors = (ConnectionError, TimeoutError) + (
        (psycopg2.OperationalError, psycopg2.InterfaceError) if psycopg2 else ()
    )
    at = f" at {describe_url(database)}" if database else ""
    if isinstance(exc, connection_errors):
        reason = _database_reason(exc)
        return _line(
            database,
            f"cannot reach the database{at}{f': {reason}' if reason else ''}",
            "start the server, or check the host, port, database and user of the URL",
        ), 1
    if psycopg2 and isinstance(exc, psycopg2.Error):
        from psycopg2 import errorcodes

        code = errorcodes.lookup(exc.pgcode) if exc.pgcode else type(exc).__name__
        return _line(database, f"the database{at} refused the command: {code}", DEBUG_HINT), 1
    if isinstance(exc, OSError):
        todo = next((t for kind, t in _OS_ERROR_TODO if isinstance(exc, kind)), None)
        if todo is not None:
            what = f"{exc.strerror}: {exc.filename}" if exc.filename else str(exc)
            return _line(database, what, todo), 1
    if _ours(type(exc)) or (isinstance(exc, ValueError | KeyError) and _raised_by_us(exc)):
        text = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        return _line(database, str(text), DEBUG_HINT), 1
    what = redact(" ".join(f"unexpected {type(exc).__name__}: {exc}".split()), database)
    return f"error: {what} ({DEBUG_HINT})", 1


def _line(database: str | None, what: str, todo: str) -> str:
    """One line; messages ending in ``(...)`` or a full stop already say what to do."""
    what = redact(" ".join(what.split()), database)
    return f"error: {what}" if what.endswith((")", ".")) else f"error: {what} ({todo})"


def _source_todo(exc: SourceUnavailable) -> str:
    """What to do about a collector source error, by its kind and the reason it gives."""
    text = str(exc)
    if isinstance(exc, SourceMisconfigured):
        return f"fix the URL; {PERCENT_ENCODE}"
    if isinstance(exc, SourceTimeout) and STATEMENT_TIMEOUT_ENV in text:
        return (
            "a lock or a long query held the statement: retry later, or raise "
            f"{STATEMENT_TIMEOUT_ENV}"
        )
    if isinstance(exc, SourceTimeout):
        return (
            f"check that the server answers and the network to it, or raise {CONNECT_TIMEOUT_ENV}"
        )
    if 'relation "rl_orderbook_' in text and "does not exist" in text:
        return (
            "point the URL at the collector's database, or create its tables with the "
            "collector's schema (kalshi_pipeline/sources/collector_schema.sql)"
        )
    if "password authentication failed" in text:
        return "check the user and password of the URL"
    if "does not exist" in text:  # the database or the role
        return "check the database and user of the URL, or create them"
    return "start the server, or check the host, port, database and user of the URL"


def _ours(kind: type) -> bool:
    return kind.__module__.split(".")[0] == "kalshi_pipeline"


def _raised_by_us(exc: BaseException) -> bool:
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and Path(frames[-1].filename).resolve().is_relative_to(PACKAGE_DIR)


def _database_reason(exc: BaseException) -> str:
    """A few words on why, from a fixed list (the exception's own text is never shown)."""
    text = str(exc).lower()
    for clue, reason in (
        ("connection refused", "connection refused"),
        ("timeout expired", "connection timed out"),
        ("could not translate host name", "unknown host"),
        ("password authentication failed", "authentication failed"),
        ("does not exist", "no such database or role"),
        ("server closed the connection", "connection lost"),
    ):
        if clue in text:
            return reason
    return "timed out" if isinstance(exc, TimeoutError) else ""


def database_url(args: argparse.Namespace) -> str | None:
    """The database the command talks to: ``--postgres``, else the collector's, if set."""
    return (
        getattr(args, "postgres", None)
        or getattr(args, "storage", None)
        or os.environ.get(COLLECTOR_URL_ENV)
    )


if __name__ == "__main__":
    sys.exit(main())
