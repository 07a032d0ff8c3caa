"""PostgresSessionSource under faults: nothing hangs, every error is clear and redacted.

Real faults on the real server: a TCP listener that never answers, a table locked by
another connection, a backend terminated mid-load, URLs libpq rejects. Every URL carries a
password (trust auth ignores it) that no message, chain or traceback may show.
"""

from __future__ import annotations

import socket
import threading
import traceback
import uuid
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from urllib.parse import unquote, urlsplit

import psycopg2
import pytest

from kalshi_pipeline.sources import (
    ConnectionSettings,
    PostgresSessionSource,
    SourceMisconfigured,
    SourceTimeout,
    SourceUnavailable,
)
from kalshi_pipeline.sources.collector_connection import STATEMENT_TIMEOUT_ENV
from kalshi_pipeline.sources.collector_writer import write_collector_session
from kalshi_pipeline.sources.redaction import MASK, describe_url, redact
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline_tests.conftest import PG_SERVER

SECRET = "hunter2-secret"
# Long enough that a source ignoring its timeouts fails the test instead of hanging it.
GUARD_S = 20


def with_password(url: str, password: str = SECRET) -> str:
    return url.replace("postgres@", f"postgres:{password}@")


def store_session(url: str, session_id: int = 1) -> None:
    with closing(psycopg2.connect(url)) as conn:
        write_collector_session(conn, simulate_session(session_id, 7, SimulatorConfig(markets=3)))


def assert_clear(error: BaseException, *needles: str, hidden: tuple[str, ...] = ()) -> None:
    """``error`` says each needle, hides each secret, and drops the psycopg2 error it replaced."""
    message = str(error)
    for needle in needles:
        assert needle in message
    assert error.__cause__ is None and error.__context__ is None
    printed = "".join(traceback.format_exception(error))
    for secret in (SECRET, *hidden):
        assert secret not in printed


@pytest.fixture
def locked(collector_tables):
    """Lock a table of the scratch database in another connection, as a migration would."""
    conn = psycopg2.connect(collector_tables)
    with conn.cursor() as cur:
        # The server ends the lock after GUARD_S even if the source never gives up.
        cur.execute(f"SET idle_in_transaction_session_timeout = '{GUARD_S}s'")

    def lock(table: str) -> None:
        with conn.cursor() as cur:
            cur.execute(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE")

    yield lock
    conn.close()


def test_a_server_that_never_answers_ends_with_the_connect_timeout():
    with socket.create_server(("127.0.0.1", 0)) as silent:  # accepts TCP, never speaks
        port = silent.getsockname()[1]
        url = f"postgresql://postgres:{SECRET}@127.0.0.1:{port}/collector"
        source = PostgresSessionSource(url, settings=ConnectionSettings(connect_timeout_s=1))
        # Closing the listener resets the waiting connection: a source without a connect
        # timeout fails this test after GUARD_S instead of hanging it.
        guard = threading.Timer(GUARD_S, silent.close)
        guard.start()
        try:
            with pytest.raises(SourceTimeout) as raised:
                source.list_sessions()
        finally:
            guard.cancel()

    assert_clear(
        raised.value,
        f"collector database 127.0.0.1:{port}/collector",
        "connect timeout (1 s",
        "listing sessions: connecting",
    )


@pytest.mark.parametrize(
    ("table", "doing"),
    [
        ("rl_orderbook_sessions", "listing sessions"),
        ("rl_orderbook_snapshots", "loading session 1: snapshots"),
        ("rl_orderbook_deltas", "loading session 1: deltas"),
    ],
)
def test_a_locked_table_ends_with_the_statement_timeout(
    collector_tables, locked, monkeypatch, table, doing
):
    store_session(collector_tables)
    monkeypatch.setenv(STATEMENT_TIMEOUT_ENV, "1")
    source = PostgresSessionSource(with_password(collector_tables))  # settings from env
    locked(table)

    with pytest.raises(SourceTimeout) as raised:
        source.list_sessions() if doing == "listing sessions" else source.load_session(1)

    database = urlsplit(collector_tables).path
    assert_clear(
        raised.value,
        f"collector database 127.0.0.1:5432{database}",
        f"statement timeout (1 s, {STATEMENT_TIMEOUT_ENV}) expired while {doing}",
    )


def test_a_connection_killed_mid_load_ends_with_a_clear_error(collector_tables, locked):
    store_session(collector_tables)
    name = f"kp-fault-{uuid.uuid4().hex[:8]}"
    settings = ConnectionSettings(statement_timeout_s=GUARD_S, application_name=name)
    source = PostgresSessionSource(with_password(collector_tables), settings=settings)
    locked("rl_orderbook_deltas")  # holds the load inside its deltas read

    with ThreadPoolExecutor(1) as pool, closing(psycopg2.connect(collector_tables)) as admin:
        loading = pool.submit(source.load_session, 1)
        admin.autocommit = True
        with admin.cursor() as cur:
            pid = None
            while pid is None and not loading.done():
                cur.execute(
                    "SELECT pid FROM pg_stat_activity "
                    "WHERE application_name = %s AND wait_event_type = 'Lock'",
                    (name,),
                )
                pid = (cur.fetchone() or (None,))[0]
            cur.execute("SELECT pg_terminate_backend(%s)", (pid,))
        with pytest.raises(SourceUnavailable) as raised:
            loading.result(timeout=GUARD_S)

    assert not isinstance(raised.value, SourceTimeout)
    assert_clear(
        raised.value,
        "connection failed or lost while loading session 1: deltas",
        "server closed the connection unexpectedly",
    )


def test_missing_tables_are_a_clear_error_naming_the_database(collector_db):
    with pytest.raises(SourceUnavailable) as raised:
        PostgresSessionSource(with_password(collector_db)).list_sessions()

    assert_clear(
        raised.value,
        f"127.0.0.1:5432{urlsplit(collector_db).path}: error while listing sessions",
        'relation "rl_orderbook_sessions" does not exist',
    )


@pytest.mark.parametrize(
    "password",
    ["pa%ss%word-tok", "pa%41ss%zz-tok", "tok%", "tok%4"],
    ids=["unescaped", "half-escaped", "trailing", "truncated"],
)
def test_a_malformed_url_fails_without_its_password(password):
    url = f"postgresql://postgres:{password}@127.0.0.1:5432/collector"

    for call, doing in ((lambda s: s.list_sessions(), "listing sessions"),
                        (lambda s: s.load_session(1), "loading session 1")):  # fmt: skip
        with pytest.raises(SourceMisconfigured) as raised:
            call(PostgresSessionSource(url))
        assert_clear(
            raised.value,
            f"collector database (malformed URL): the URL is malformed, while {doing}: connecting",
            hidden=(password, unquote(password)),
        )


# -- redaction ---------------------------------------------------------------------------
def libpq_error(url: str) -> str:
    """What libpq itself says of ``url``: the text that used to reach the logs."""
    with pytest.raises(psycopg2.Error) as raised:
        psycopg2.connect(url, connect_timeout=5)
    return str(raised.value)


@pytest.mark.parametrize(
    ("url", "secret"),
    [
        # libpq quotes the undecodable password back.
        ("postgresql://postgres:pa%ss%word@127.0.0.1:5432/db", "pa%ss%word"),
        # urllib cannot parse it (unbalanced bracket); libpq quotes the whole URL.
        ("postgresql://postgres:s3cret-tok@[::1:5432/db", "s3cret-tok"),
    ],
    ids=["percent", "unparseable"],
)
def test_redact_masks_what_libpq_quotes_back(url, secret):
    said = libpq_error(url)
    assert secret in said  # what used to reach the logs

    shown = redact(said, url)

    assert secret not in shown and url not in shown and MASK in shown


@pytest.mark.parametrize(
    ("dsn", "secrets"),
    [
        ("host=127.0.0.1 password='s3 c\\'ret' dbname=x", ["s3 c'ret", "s3 c\\'ret"]),
        ("host=127.0.0.1 password=s3cret-tok dbname=x", ["s3cret-tok"]),
        ("host=127.0.0.1 PASSWORD = s3cret-tok", ["s3cret-tok"]),
    ],
    ids=["quoted", "plain", "spaced"],
)
def test_redact_masks_a_key_value_dsn_password(dsn, secrets):
    text = f"could not use {dsn}; the password was {' or '.join(secrets)}"

    shown = redact(text, dsn)

    assert all(secret not in shown for secret in secrets) and dsn not in shown


def test_redact_masks_the_password_raw_and_percent_decoded():
    url = "postgresql://postgres:p%40ss%2Fw0rd-tok@db.example:6543/collector"

    shown = redact(f"raw p%40ss%2Fw0rd-tok, decoded p@ss/w0rd-tok; whole {url}", url)

    assert shown == f"raw {MASK}, decoded {MASK}; whole {MASK}"
    assert "w0rd" not in redact("p@ss/w0rd-tok", url)


def test_redact_masks_credentials_the_url_did_not_name():
    text = "retry postgresql://bob:other-tok@h/db with password=other-tok2 or password='a b'"

    shown = redact(text, "postgresql://postgres@127.0.0.1/db")

    assert "other-tok" not in shown and "a b'" not in shown
    assert "postgresql://bob:***@h/db" in shown


def test_a_query_string_password_is_masked():
    url = "postgresql://postgres@127.0.0.1/db?password=q%41-tok&sslmode=disable"
    assert "qA-tok" not in redact("password qA-tok and q%41-tok", url)
    assert "q%41-tok" not in redact("password qA-tok and q%41-tok", url)


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        (f"{PG_SERVER.replace('postgres@', 'postgres:tok@')}/kp", "127.0.0.1:5432/kp"),
        ("host=db.example port=6543 dbname=c user=u password=tok", "db.example:6543/c"),
        ("postgresql://u:tok@db.example/c", "db.example:5432/c"),
        ("postgresql://u:t%ok@db.example/c", "(malformed URL)"),
    ],
)
def test_describe_url_shows_host_port_and_database_only(url, shown):
    assert describe_url(url) == shown
