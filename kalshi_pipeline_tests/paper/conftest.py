"""Fixtures the paper tests share: a recorded session, a collector database with its
tables, and a paper database (scratch databases on the local server, dropped after)."""

from __future__ import annotations

import pytest

from kalshi_pipeline_tests.conftest import scratch_database, with_collector_tables
from kalshi_pipeline_tests.paper.following import small_session


@pytest.fixture(scope="module")
def session():
    return small_session()


@pytest.fixture
def collector():
    with scratch_database() as url:
        yield with_collector_tables(url)


@pytest.fixture
def paper_db():
    with scratch_database() as url:
        yield url
