"""Fixtures the training tests share."""

import pytest

from kalshi_pipeline.sources import ParquetSessionStore
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session


@pytest.fixture(scope="module")
def tuning_store(tmp_path_factory) -> ParquetSessionStore:
    """Three simulated sessions of ten markets: enough for a split and a small study."""
    store = ParquetSessionStore(tmp_path_factory.mktemp("tuning") / "store")
    for i in (1, 2, 3):
        store.write_session(simulate_session(i, i, SimulatorConfig(markets=10)))
    return store
