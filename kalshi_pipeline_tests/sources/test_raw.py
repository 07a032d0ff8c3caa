"""The raw session's metadata record: its JSON form and its status words."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from kalshi_pipeline.sources.raw import SessionInfo, SessionStatus

STARTED = datetime(2026, 1, 5, 14, 0, tzinfo=UTC)


def test_session_info_round_trips_through_json():
    infos = [
        SessionInfo(
            session_id=3,
            status="closed",
            started_at=STARTED,
            ended_at=datetime(2026, 1, 5, 16, 0, tzinfo=UTC),
            market_tickers=("KXBTC-A", "KXETH-B"),
            messages_received=12,
            last_message_at=datetime(2026, 1, 5, 15, 59, tzinfo=UTC),
            connection_metadata={"simulated": True},
        ),
        SessionInfo(
            session_id=4,
            status="active",
            started_at=STARTED,
            ended_at=None,
            market_tickers=(),
            error_message="lost",
        ),  # fmt: skip
    ]
    for info in infos:
        data = info.to_json()
        assert data["status"] == str(info.status) and type(data["status"]) is str
        assert SessionInfo.from_json(json.loads(json.dumps(data))) == info


def test_a_status_word_becomes_its_member_and_an_unknown_one_is_refused():
    info = SessionInfo(session_id=1, status="error", started_at=STARTED, ended_at=None,
                       market_tickers=())  # fmt: skip
    assert info.status is SessionStatus.ERROR and info.is_complete
    recording = SessionInfo(session_id=2, status="active", started_at=STARTED, ended_at=None,
                            market_tickers=())  # fmt: skip
    assert not recording.is_complete
    with pytest.raises(ValueError, match="'paused' is not a valid SessionStatus"):
        SessionInfo(session_id=1, status="paused", started_at=STARTED, ended_at=None,
                    market_tickers=())  # fmt: skip
