"""The kalshi-pipeline command, run as a user runs it."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import socket
import subprocess
import sys
import threading
from contextlib import closing
from pathlib import Path

import psycopg2
import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.cli.errors import CHECK_CONNECTION, explain
from kalshi_pipeline.cli.options import build_parser, pipeline_config, tuning_choice
from kalshi_pipeline.config_fields import flag_of
from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.paths import HOME_ENV
from kalshi_pipeline.pipeline_config import (
    ExecutionChoice,
    PipelineConfig,
    SplitConfig,
    TrainingChoice,
    TuningChoice,
)
from kalshi_pipeline.sources import ParquetSessionStore, PostgresSessionSource
from kalshi_pipeline.sources.collector_connection import (
    ConnectionSettings,
    SourceTimeout,
    SourceUnavailable,
)
from kalshi_pipeline.training.config import PROFILES


def files_and_bytes(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_generate_writes_a_store_and_is_deterministic(tmp_path, capsys):
    args = ["generate", "--sessions", "2", "--markets", "5", "--seed", "4"]
    assert main([*args, "--out", str(tmp_path / "a")]) == 0
    assert main([*args, "--out", str(tmp_path / "b")]) == 0
    assert "wrote 2 sessions" in capsys.readouterr().out

    first = files_and_bytes(tmp_path / "a")
    assert first == files_and_bytes(tmp_path / "b")
    listed = ParquetSessionStore(tmp_path / "a").list_sessions()
    assert [info.session_id for info in listed] == [1, 2]
    assert all(len(info.market_tickers) == 5 and info.is_complete for info in listed)

    assert main([*args, "--no-signal", "--out", str(tmp_path / "c")]) == 0
    assert files_and_bytes(tmp_path / "c") != first


def test_generate_needs_exactly_one_destination(tmp_path):
    with pytest.raises(SystemExit) as exit_info:
        main(["generate", "--sessions", "1"])
    assert exit_info.value.code == 2


def test_generate_into_the_collector_tables(collector_db, tmp_path):
    """The collector's tables hold what the store holds: book and trade tape, row ids aside
    (enough markets that each session trades)."""
    args = ["generate", "--sessions", "2", "--markets", "20", "--seed", "8"]
    assert main([*args, "--postgres", collector_db]) == 0
    assert main([*args, "--out", str(tmp_path / "store")]) == 0

    source = PostgresSessionSource(collector_db)
    store = ParquetSessionStore(tmp_path / "store")
    assert [i.session_id for i in source.list_sessions()] == [1, 2]
    for session_id in (1, 2):
        from_db, from_store = source.load_session(session_id), store.load_session(session_id)
        assert from_store.trades is not None and from_store.trades.num_rows > 0
        for table in ("snapshots", "deltas", "trades"):
            got, want = getattr(from_db, table), getattr(from_store, table)
            assert got.drop_columns(["id"]).equals(want.drop_columns(["id"])), table


@pytest.mark.slow  # two to three minutes on two cores: the demo trains for real
def test_demo_runs_the_whole_graph_on_a_fresh_home_and_learns(tmp_path):
    """The README's main-job command: simulated store, local instance, report; the model
    trades on the holdout and beats always-HOLD there beyond noise (the interval's lower
    end above 0), which the last line printed says."""
    env = {k: v for k, v in os.environ.items() if k not in ("DAGSTER_HOME", HOME_ENV)}
    command = [sys.executable, "-m", "kalshi_pipeline.cli", "demo", "--home", str(tmp_path)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, env=env)

    assert "simulating" in done.stdout
    assert (tmp_path / "sessions" / "catalog.json").exists()
    assert (tmp_path / "dagster" / "dagster.yaml").exists()  # the local instance
    *_, where, headline = done.stdout.strip().splitlines()
    report = Path(where.split("report: ")[1])
    assert report.is_file() and report.is_relative_to(tmp_path / "artifacts")
    assert "model-vs-hold/holdout" in report.read_text()
    summary = json.loads((report.parent / "summary.json").read_text())
    assert summary["actions"]["model/holdout"]["contracts_per_episode"] > 0
    low, high = summary["differences"]["model-vs-hold/holdout"]["ci95"]
    assert 0 < low < high
    assert headline == summary["headline"]
    assert headline.startswith("Model minus always-HOLD on the holdout: +")


# -- errors: one line, `error: <what> (<what to do>)`, exit 2 for usage, 1 otherwise --------


def one_error_line(capsys) -> str:
    """The single line the command wrote to stderr (it must be exactly one)."""
    lines = capsys.readouterr().err.strip().splitlines()
    assert len(lines) == 1, lines
    assert lines[0].startswith("error: ") and lines[0].endswith(")"), lines[0]
    return lines[0]


def usage_error(argv: list[str], capsys) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    return one_error_line(capsys)


def test_the_split_flags_reach_the_split_config():
    args = build_parser().parse_args(
        ["train", "--out", "o", "--holdout-fraction", "0.3", "--validation-fraction", "0.25",
         "--walk-forward-sessions", "2", "--min-validation-per-kind", "6",
         "--tight-spread-cents", "2.5", "--split-salt", "s"]
    )  # fmt: skip

    assert pipeline_config(args).split == SplitConfig(
        holdout_fraction=0.3, validation_fraction=0.25, salt="s", walk_forward_sessions=2,
        min_validation_per_kind=6, tight_spread_cents=2.5,
    )  # fmt: skip
    assert pipeline_config(build_parser().parse_args(["train", "--out", "o"])).split == (
        SplitConfig()
    )


def test_the_validation_interval_flag_reaches_the_training_config():
    def resolved(*flags):
        args = build_parser().parse_args(["train", "--out", "o", "--profile", "smoke", *flags])
        return pipeline_config(args).training_config()

    assert resolved().validate_every == PROFILES["smoke"].validate_every
    assert resolved("--validate-every", "2048").validate_every == 2048


def test_every_config_field_is_an_option_with_its_default_in_train_help(capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "1000")  # one line per option: nothing wraps mid-value
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    # One entry per option: its flag line, and its help when that is on the next line.
    entries = [" ".join(e.split()) for e in re.split(r"\n(?=  -)", out)]

    for record in (FilterConfig, SplitConfig, TrainingChoice, ExecutionChoice):
        defaults = record()
        for field in dataclasses.fields(record):
            [line] = [e for e in entries if e.startswith(flag_of(field) + " ")]
            default = getattr(defaults, field.name)
            # Unset is the profile's value (the help says so), never "None".
            assert (f"(default: {default})" in line) == (default is not None), line
            assert "None" not in line
    assert "(default: the profile's)" in out
    # An execution setting is unset unless given, its help naming the env config's default.
    [execution] = [e for e in entries if e.startswith("--execution ")]
    assert execution.endswith("(default: taker)")


def test_every_flag_reaches_its_field():
    train = ["train", "--out", "o", "--min-episode-length", "7", "--min-coverage", "0.3",
             "--min-data-quality", "0.6", "--profile", "smoke", "--timesteps", "512",
             "--algorithm", "a2c", "--seed", "5", "--learning-rate", "0.001", "--gamma", "0.9",
             "--n-envs", "2", "--net-arch", "32", "16", "--checkpoint-every", "256",
             "--validate-every", "0", "--candidates", "2", "--hyperparams", "h.json"]  # fmt: skip
    config = pipeline_config(build_parser().parse_args(train))

    assert config == PipelineConfig(
        filters=FilterConfig(min_episode_length=7, min_coverage=0.3, min_data_quality=0.6),
        training=TrainingChoice(
            profile="smoke", timesteps_per_phase=512, algorithm="a2c", seed=5,
            learning_rate=0.001, gamma=0.9, n_envs=2, net_arch=(32, 16),
            checkpoint_every=256, validate_every=0, candidates=2, hyperparams="h.json",
        ),
    )  # fmt: skip
    assert pipeline_config(build_parser().parse_args(["train", "--out", "o"])) == (PipelineConfig())
    tune = ["tune", "--trials", "3", "--storage", "sqlite:///s", "--study", "s",
            "--profile", "smoke", "--timesteps", "64", "--seed", "2"]  # fmt: skip
    assert tuning_choice(build_parser().parse_args(tune)) == TuningChoice(
        study="s", trials=3, storage="sqlite:///s", profile="smoke", timesteps_per_phase=64,
        seed=2,
    )  # fmt: skip
    assert tuning_choice(build_parser().parse_args(["tune"])) == TuningChoice()


EXECUTION_FLAGS = [
    "--execution", "maker", "--order-expiry-steps", "30", "--latency-ms", "500",
    "--cancel-latency-ms", "50", "--latency-distribution", "lognormal",
    "--latency-sigma", "0.25", "--queue-model", "power_prob", "--queue-power", "3",
    "--fee-type", "quadratic", "--fee-multiplier", "0.5",
    "--series-fees", "KXBTC:quadratic", "KXETH:quadratic_with_maker_fees:2",
]  # fmt: skip
EXECUTION = ExecutionChoice(
    execution="maker", order_expiry_steps=30, latency_ms=500, cancel_latency_ms=50,
    latency_distribution="lognormal", latency_sigma=0.25, queue_model="power_prob",
    queue_power=3.0, fee_type="quadratic", fee_multiplier=0.5,
    series_fees=("KXBTC:quadratic", "KXETH:quadratic_with_maker_fees:2"),
)  # fmt: skip


@pytest.mark.parametrize("command", [["train", "--out", "o"], ["tune"]])
def test_every_execution_flag_reaches_its_setting_and_the_env(command):
    args = build_parser().parse_args([*command, *EXECUTION_FLAGS])
    config = pipeline_config(args, with_training=command[0] == "train")

    assert config.execution == EXECUTION
    env = config.training_config().env
    assert (env.execution, env.latency_ms, env.series_fees) == (
        "maker", 500, ("KXBTC:quadratic", "KXETH:quadratic_with_maker_fees:2"),
    )  # fmt: skip
    # One flag alone sets that one: the rest stays the env config's.
    one = pipeline_config(build_parser().parse_args([*command, "--latency-ms", "0"]))
    assert one.execution == ExecutionChoice(latency_ms=0)
    assert one.training_config().env == EnvConfig(latency_ms=0)


def test_a_source_error_is_advised_by_its_sqlstate_not_its_text():
    where = "collector database h:5432/db"
    missing = f'{where}: error while listing sessions: relation "rl_orderbook_x" does not exist'
    held = f"{where}: statement timeout (1 s, KALSHI_COLLECTOR_STATEMENT_TIMEOUT_S) expired"

    # The text alone says nothing: without the SQLSTATE, the one connection message.
    assert explain(SourceUnavailable(missing), None)[0].endswith(f"({CHECK_CONNECTION})")
    schema = explain(SourceUnavailable(missing, sqlstate="42P01"), None)[0]
    assert schema.endswith("(kalshi_pipeline/sources/collector_schema.sql))")
    assert "raise KALSHI_COLLECTOR_CONNECT_TIMEOUT_S)" in explain(SourceTimeout(held), None)[0]
    statement = explain(SourceTimeout(held, sqlstate="57014"), None)[0]
    assert statement.endswith("or raise KALSHI_COLLECTOR_STATEMENT_TIMEOUT_S)")


def test_a_driver_error_is_named_by_its_sqlstate_never_its_text(collector_db):
    with (
        closing(psycopg2.connect(collector_db)) as conn,
        conn.cursor() as cur,
        pytest.raises(psycopg2.Error) as raised,
    ):
        cur.execute("SELECT * FROM kp_no_such_table")

    line, code = explain(raised.value, collector_db)

    assert code == 1
    database = collector_db.rsplit("/", 1)[1]
    assert line == (
        f"error: the database at 127.0.0.1:5432/{database} refused the command: "
        "UNDEFINED_TABLE (run with --debug for the traceback)"
    )


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (
            ["generate", "--out", "s", "--sessions", "-1"],
            "argument --sessions: -1 is not a whole number of at least 1",
        ),
        (["generate", "--out", "s", "--markets", "0"], "--markets: 0 is not a whole number"),
        (["--bogus"], "unrecognised argument: --bogus"),
        (["train", "--bogus", "--store", "s", "--out", "o"], "unrecognised argument: --bogus"),
        (["train", "--out", "o", "--timesteps", "0"], "argument --timesteps: 0 is not"),
        (["generate", "--postgres", "not a url"], "--postgres cannot be read as a PostgreSQL"),
        (["generate", "--out", "s", "--median-events", "inf"], "inf is not a finite number above"),
        (["generate", "--out", "s", "--median-events", "nan"], "nan is not a finite number above"),
        (["generate", "--out", "s", "--seed", "-1"], "-1 is not a whole number of at least 0"),
        (["generate", "--out", "s", "--seed", "1.5"], "--seed: '1.5' is not a whole number"),
        (["train", "--out", "o", "--seed", "-1"], "-1 is not a whole number in [0, 4294967295]"),
        (["train", "--out", "o", "--validate-every", "-5"], "--validate-every: -5 is not a whole"),
        (["train", "--out", "o", "--execution", "fast"], "--execution: invalid choice: 'fast'"),
        (["train", "--out", "o", "--latency-ms", "-5"], "--latency-ms: -5 is not a whole number"),
        (["tune", "--queue-power", "0"], "--queue-power: 0.0 is not a finite number above 0"),
        ([], "a command is needed"),
    ],
)
def test_usage_errors_name_the_argument_on_one_line_and_exit_2(argv, named, capsys, tmp_path):
    line = usage_error(argv, capsys)

    assert named in line
    assert "--help)" in line
    assert not (tmp_path / "s").exists()


@pytest.mark.parametrize(
    ("argv", "named"),
    [
        (
            ["train", "--series-fees", "KXBTC:quadratic", "KXETH:flat"],
            "error: execution setting series_fees: unknown fee type 'flat'",
        ),
        (["tune", "--series-fees", "KXBTC"], "series_fees: malformed series fee entry 'KXBTC'"),
    ],
)
def test_a_malformed_series_fee_is_a_usage_error_before_any_work(argv, named, tmp_path, capsys):
    out = ["--out", str(tmp_path / "out")] if argv[0] == "train" else []

    assert main([*argv, *out, "--store", str(tmp_path / "nonexistent")]) == 2

    assert named in one_error_line(capsys)
    assert not (tmp_path / "out").exists()


def test_a_missing_store_is_named_with_how_to_make_one(tmp_path, capsys):
    missing, out = tmp_path / "nonexistent", tmp_path / "out"

    assert main(["train", "--store", str(missing), "--out", str(out)]) == 1

    line = one_error_line(capsys)
    assert f"no session store at {missing}" in line
    assert "kalshi-pipeline generate --out DIR" in line
    assert not out.exists()


def test_an_empty_store_is_named(tmp_path, capsys):
    empty = tmp_path / "store"
    empty.mkdir()

    assert main(["train", "--store", str(empty), "--out", str(tmp_path / "out")]) == 1

    line = one_error_line(capsys)
    assert f"the session store {empty} holds no sessions" in line
    assert f"kalshi-pipeline generate --out {empty}" in line


@pytest.mark.parametrize("where", ["before", "after"])
def test_debug_before_or_after_the_command_prints_the_traceback(where, tmp_path, capsys):
    command = ["train", "--store", str(tmp_path / "nonexistent"), "--out", str(tmp_path / "o")]
    argv = ["--debug", *command] if where == "before" else [*command, "--debug"]

    assert main(argv) == 1

    err = capsys.readouterr().err
    assert err.startswith("Traceback (most recent call last):")
    assert err.strip().splitlines()[-1].startswith("error: no session store at ")


@pytest.mark.parametrize(
    ("address", "reason", "todo"),
    [
        # nothing listens on port 1
        ("127.0.0.1:1/x", "Connection refused", CHECK_CONNECTION),
        # libpq gives no SQLSTATE for a failed connection: one message names every check.
        (
            "127.0.0.1:5432/kp_no_such_database",
            'database "kp_no_such_database" does not exist',
            CHECK_CONNECTION,
        ),
    ],
)
def test_an_unreachable_database_is_named_without_its_password(address, reason, todo, capsys):
    url = f"postgresql://postgres:s3cret-pw@{address}"
    argv = ["generate", "--postgres", url, "--sessions", "1", "--markets", "2"]

    assert main(argv) == 1
    line = one_error_line(capsys)
    assert line.startswith(
        f"error: collector database {address}: connection failed or lost while writing "
        "sessions: connecting: "
    )
    assert reason in line and line.endswith(f"({todo})")
    assert "s3cret" not in line and "postgres:" not in line

    assert main([*argv, "--debug"]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and "s3cret" not in err


def test_an_unreachable_database_exits_1_from_the_shell():
    url = "postgresql://postgres:s3cret-pw@127.0.0.1:1/x"
    command = [sys.executable, "-m", "kalshi_pipeline.cli", "generate", "--postgres", url]

    done = subprocess.run(command, capture_output=True, text=True)

    assert done.returncode == 1
    [line] = done.stderr.splitlines()
    assert line.startswith("error: collector database 127.0.0.1:1/x: connection failed")
    assert line.endswith(
        "(start the server, or check the host, port, database, user and password of the URL)"
    )
    assert "s3cret" not in line


@pytest.fixture
def stalled_server() -> str:
    """``host:port`` of a server on 127.0.0.1 that accepts connections and never answers."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted: list[socket.socket] = []

    def accept_and_keep() -> None:
        try:
            while True:
                accepted.append(listener.accept()[0])
        except OSError:  # the listener was closed: the test is over
            pass

    thread = threading.Thread(target=accept_and_keep, daemon=True)
    thread.start()
    try:
        yield f"127.0.0.1:{listener.getsockname()[1]}"
    finally:
        listener.shutdown(socket.SHUT_RDWR)
        listener.close()
        thread.join(timeout=5)
        for conn in accepted:
            conn.close()


def test_a_stalled_server_names_the_connect_timeout_and_its_variable(
    stalled_server, monkeypatch, capsys
):
    monkeypatch.setenv("KALSHI_COLLECTOR_CONNECT_TIMEOUT_S", "1")
    url = f"postgresql://postgres:s3cret-pw@{stalled_server}/x"

    assert main(["generate", "--postgres", url, "--sessions", "1", "--markets", "2"]) == 1

    line = one_error_line(capsys)
    assert line.startswith(
        f"error: collector database {stalled_server}/x: connect timeout (1 s, "
        "KALSHI_COLLECTOR_CONNECT_TIMEOUT_S) expired while writing sessions: connecting ("
    )
    assert line.endswith("or raise KALSHI_COLLECTOR_CONNECT_TIMEOUT_S)")
    assert "s3cret" not in line


def test_a_statement_held_by_a_lock_names_the_statement_timeout(collector_tables):
    settings = ConnectionSettings(statement_timeout_s=0.2)
    with closing(psycopg2.connect(collector_tables)) as holder:
        with holder.cursor() as cur:  # the transaction stays open: the lock is held
            cur.execute("LOCK TABLE rl_orderbook_sessions IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(SourceUnavailable) as raised:
            PostgresSessionSource(collector_tables, settings=settings).list_sessions()

    line, code = explain(raised.value, collector_tables)

    assert code == 1
    assert "statement timeout (0.2 s, KALSHI_COLLECTOR_STATEMENT_TIMEOUT_S) expired" in line
    assert line.endswith("(a lock or a long query held the statement: retry later, or raise "
                         "KALSHI_COLLECTOR_STATEMENT_TIMEOUT_S)")  # fmt: skip


def test_a_database_without_the_collector_tables_points_at_the_schema(collector_db):
    with pytest.raises(SourceUnavailable) as raised:
        PostgresSessionSource(collector_db).list_sessions()

    line, code = explain(raised.value, collector_db)

    assert code == 1
    assert 'relation "rl_orderbook_sessions" does not exist' in line
    assert line.endswith(
        "(point the URL at the collector's database, or create its tables with the "
        "collector's schema (kalshi_pipeline/sources/collector_schema.sql))"
    )


def test_a_percent_in_the_password_is_explained_without_the_password(capsys):
    url = "postgresql://postgres:50%off-pw@127.0.0.1:5432/x"

    line = usage_error(["generate", "--postgres", url, "--sessions", "1"], capsys)

    assert line.startswith("error: --postgres cannot be read as a PostgreSQL URL")
    assert "percent-encode the password's special characters, e.g. %25 for %" in line
    assert "50%off" not in line and "off-pw" not in line


def test_a_home_that_is_a_regular_file_is_refused(tmp_path, capsys):
    home = tmp_path / "home"
    home.write_text("not a directory")

    assert main(["demo", "--home", str(home)]) == 1

    line = one_error_line(capsys)
    assert f"the home {home} is a file, not a directory" in line
    assert home.read_text() == "not a directory"


def test_a_damaged_session_file_is_one_line_unless_debugging(tmp_path, capsys):
    """A damaged store ends as one line too, with the traceback on demand."""
    store = tmp_path / "store"
    assert main(["generate", "--out", str(store), "--sessions", "1", "--markets", "3"]) == 0
    (store / "session-1" / "deltas.parquet").write_bytes(b"PAR1 cut short")
    capsys.readouterr()
    argv = ["train", "--store", str(store), "--out", str(tmp_path / "out")]

    assert main(argv) == 1
    line = one_error_line(capsys)

    assert main(["--debug", *argv]) == 1
    err = capsys.readouterr().err
    assert "Traceback" in err and err.strip().splitlines()[-1] == line


def test_an_unexpected_error_points_to_debug():
    line, code = explain(RuntimeError("boom\nsecond line"), None)

    assert (line, code) == (
        "error: unexpected RuntimeError: boom second line (run with --debug for the traceback)",
        1,
    )


def test_train_refuses_an_out_directory_trained_on_another_store(tmp_path, capsys):
    for name, seed in (("a", 1), ("b", 3)):
        args = ["--sessions", "1", "--markets", "8", "--seed", str(seed)]
        assert main(["generate", "--out", str(tmp_path / name), *args]) == 0
    out = tmp_path / "out"
    train = ["train", "--out", str(out), "--timesteps", "256", "--candidates", "1", "--phases"]
    assert main([*train, "1", "--store", str(tmp_path / "a")]) == 0
    capsys.readouterr()
    before = files_and_bytes(out)

    assert main([*train, "1", "--store", str(tmp_path / "b")]) == 1
    line = one_error_line(capsys)
    assert line.startswith(f"error: {out / 'models' / 'phase1'} holds a model trained on other")
    assert f"delete {out / 'models'} to train afresh)" in line
    # Phase 2 would warm-start from store A's phase 1: refused before anything is written.
    assert main([*train, "2", "--store", str(tmp_path / "b")]) == 1
    assert f"{out / 'models' / 'phase1'} holds a model" in one_error_line(capsys)
    assert files_and_bytes(out) == before
    # The same store and settings find phase 1 done.
    assert main([*train, "1", "--store", str(tmp_path / "a")]) == 0
    assert files_and_bytes(out) == before


def test_sessions_already_in_the_database_are_named(collector_db, capsys):
    argv = ["generate", "--postgres", collector_db, "--sessions", "1", "--markets", "2"]
    assert main(argv) == 0
    capsys.readouterr()

    assert main(argv) == 1

    database = collector_db.rsplit("/", 1)[1]
    assert one_error_line(capsys) == (
        f"error: session 1 is already in the database at 127.0.0.1:5432/{database} "
        "(generate into an empty database)"
    )


def test_an_out_that_is_a_regular_file_is_refused(tmp_path, capsys):
    store, out = tmp_path / "store", tmp_path / "out"
    assert main(["generate", "--out", str(store), "--sessions", "1", "--markets", "2"]) == 0
    out.write_text("not a directory")
    capsys.readouterr()

    assert main(["train", "--store", str(store), "--out", str(out)]) == 1

    assert (
        one_error_line(capsys)
        == f"error: --out {out} is a file (give a directory for models and report)"
    )


def test_train_on_a_store_without_a_holdout_market_is_refused_before_training(tmp_path, capsys):
    """Three two-class sessions of six markets (seed 0): none of their markets is held out. The
    run would train every phase, then have no holdout to evaluate on: it is refused
    first, in one line, and nothing is written."""
    store, out = tmp_path / "store", tmp_path / "out"
    generate = ["generate", "--population", "two-class", "--sessions", "3", "--markets", "6"]
    generate += ["--seed", "0"]
    assert main([*generate, "--out", str(store)]) == 0
    capsys.readouterr()
    smoke = PROFILES["smoke"]
    rollout = smoke.hyperparameters.n_steps * smoke.n_envs
    argv = ["train", "--store", str(store), "--out", str(out), "--profile", "smoke"]
    argv += ["--timesteps", str(rollout), "--candidates", "1"]

    assert main(argv) == 1

    line = one_error_line(capsys)
    assert line.startswith("error: the split has no holdout market: none of the ")
    assert "(add sessions with more markets, or raise holdout_fraction" in line
    assert not out.exists()
