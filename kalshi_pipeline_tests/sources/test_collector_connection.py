"""Connection settings: from the environment, checked, and as a record. (Timeouts and
errors against a real server are in test_postgres_faults.py.)"""

from __future__ import annotations

import json

import pytest

from kalshi_pipeline.sources.collector_connection import STATEMENT_TIMEOUT_ENV, ConnectionSettings


def test_settings_from_the_environment_are_checked():
    env = {"KALSHI_COLLECTOR_CONNECT_TIMEOUT_S": "3", STATEMENT_TIMEOUT_ENV: " 2.5 "}
    assert ConnectionSettings.from_env(env) == ConnectionSettings(
        connect_timeout_s=3, statement_timeout_s=2.5
    )
    assert ConnectionSettings.from_env({}) == ConnectionSettings()
    with pytest.raises(ValueError, match=STATEMENT_TIMEOUT_ENV):
        ConnectionSettings.from_env({STATEMENT_TIMEOUT_ENV: "ten"})
    with pytest.raises(ValueError, match="connect_timeout_s"):
        ConnectionSettings(connect_timeout_s=0)


def test_settings_round_trip_through_json():
    for settings in (ConnectionSettings(), ConnectionSettings(statement_timeout_s=2.5)):
        assert ConnectionSettings.from_json(json.loads(json.dumps(settings.to_json()))) == settings
    assert ConnectionSettings(connect_timeout_s=3).to_json()["connect_timeout_s"] == 3
