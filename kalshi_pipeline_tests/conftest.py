"""Shared fixtures: a scratch database on the local PostgreSQL server.

Only the tests that ask for one of these fixtures touch the server; collecting and running
the others needs no service (``python -m pytest kalshi_pipeline_tests/env`` passes with
PostgreSQL and RabbitMQ down). The collector tests run against a real server
(``postgresql://postgres@127.0.0.1:5432`` with trust auth, or ``$KALSHI_TEST_POSTGRES``).
Each test gets its own database, created from the maintenance database ``test`` and
dropped afterwards, so tests never see each other's sessions or ids. A server that is not
reachable fails the tests loudly: skipping would hide that the Postgres source went
untested.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from contextlib import closing, contextmanager

import psycopg2
import pytest
from psycopg2 import sql

from kalshi_pipeline.sources.collector_writer import collector_ddl

# The server the tests use; pointing it elsewhere (a closed port) shows which tests need it.
SERVER_ENV = "KALSHI_TEST_POSTGRES"
PG_SERVER = "postgresql://postgres@127.0.0.1:5432"  # the default of SERVER_ENV
MAINTENANCE_DB = "test"
START_SERVER_HINT = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start"


pytest_plugins = ["pytester"]  # test_services runs a test session of its own


def postgres_server() -> str:
    """The server's URL without a database, read when a test asks for a database."""
    return os.environ.get(SERVER_ENV, PG_SERVER)


def _maintenance_connection(server: str) -> psycopg2.extensions.connection:
    try:
        conn = psycopg2.connect(f"{server}/{MAINTENANCE_DB}", connect_timeout=5)
    except psycopg2.OperationalError as exc:
        reason = str(exc).strip()
    else:
        conn.autocommit = True
        return conn
    pytest.fail(
        f"the local PostgreSQL server ({server}/{MAINTENANCE_DB}) is not reachable:\n"
        f"{reason}\nStart it with:\n    {START_SERVER_HINT}",
        pytrace=False,
    )


@contextmanager
def scratch_database() -> Iterator[str]:
    """The URL of a new, empty database on the local server, dropped afterwards."""
    name = f"kp_test_{uuid.uuid4().hex}"
    server = postgres_server()
    with closing(_maintenance_connection(server)) as admin:
        with admin.cursor() as cur:
            cur.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
        try:
            yield f"{server}/{name}"
        finally:
            with admin.cursor() as cur:
                # A connection a test forgot to close must not keep the database alive.
                cur.execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE datname = %s AND pid <> pg_backend_pid()",
                    (name,),
                )
                cur.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
                )


@pytest.fixture
def collector_db() -> Iterator[str]:
    """The URL of a new, empty scratch database; dropped when the test ends."""
    with scratch_database() as url:
        yield url


@pytest.fixture
def study_db() -> Iterator[str]:
    """Another scratch database, for an Optuna study (it cannot share Dagster's: both
    keep their schema version in an ``alembic_version`` table)."""
    with scratch_database() as url:
        yield url


def with_collector_tables(url: str) -> str:
    """``url``, its database given the collector's (empty) tables."""
    with closing(psycopg2.connect(url)) as conn:
        with conn.cursor() as cur:
            cur.execute(collector_ddl())
        conn.commit()
    return url


@pytest.fixture
def collector_tables(collector_db: str) -> str:
    """A scratch database holding the collector's three (empty) tables."""
    return with_collector_tables(collector_db)
