"""Tests that need a service fail, not skip, when it is down.

A skipped PostgreSQL test would report success while the Postgres source went untested, so
the scratch-database fixtures of ``conftest.py`` fail the test instead. This runs a small
test session of its own against a closed port (``$KALSHI_TEST_POSTGRES``), which makes the
server unreachable for that session only: the shared server stays up for everyone else.
"""

from __future__ import annotations

import pytest

from kalshi_pipeline_tests.conftest import SERVER_ENV, START_SERVER_HINT

NEEDS_A_DATABASE = """
pytest_plugins = ["kalshi_pipeline_tests.conftest"]


def test_collector(collector_db):
    pass


def test_tables(collector_tables):
    pass


def test_no_service():
    pass
"""


def test_a_test_whose_database_server_is_down_errors_and_says_how_to_start_it(
    pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv(SERVER_ENV, "postgresql://postgres@127.0.0.1:1")  # nothing listens
    pytester.makepyfile(test_needs_a_database=NEEDS_A_DATABASE)

    result = pytester.runpytest_inprocess("-p", "no:cacheprovider", "-rs")

    result.assert_outcomes(passed=1, errors=2, skipped=0)
    result.stdout.fnmatch_lines(
        [
            "*the local PostgreSQL server (postgresql://postgres@127.0.0.1:1/test)"
            " is not reachable:*",
            f"*{START_SERVER_HINT}*",
        ]
    )
