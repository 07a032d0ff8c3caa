"""The raw session's metadata record: its JSON form and its status words."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime

import pytest

from kalshi_pipeline.sources.raw import (
    SessionInfo,
    SessionNotComplete,
    SessionStatus,
    check_complete,
)

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


def info_of(status, ended_at=None) -> SessionInfo:
    return SessionInfo(
        session_id=1, status=status, started_at=STARTED, ended_at=ended_at, market_tickers=()
    )


def test_only_closed_or_an_end_time_is_complete():
    ended = datetime(2026, 1, 5, 16, 0, tzinfo=UTC)
    assert info_of("closed").is_complete and info_of("closed", ended).is_complete
    assert info_of("error", ended).is_complete and info_of("active", ended).is_complete
    assert info_of("error").status is SessionStatus.ERROR
    assert not info_of("error").is_complete  # its collector may resume it
    assert info_of("error").incomplete_reason == "still error (no end time)"
    assert not info_of("active").is_complete
    assert info_of("active").incomplete_reason == "still active (no end time)"
    assert info_of("closed").incomplete_reason is None


@pytest.mark.parametrize("word", ["ACTIVE", "Closed", "paused", " closed", "", None])
def test_an_unknown_status_is_kept_never_complete_and_named(word):
    """A word the collector's table does not allow is not taken for a known one (nor does
    it fail the listing of the other sessions): never complete, end time or not."""
    for ended in (None, datetime(2026, 1, 5, 16, 0, tzinfo=UTC)):
        info = info_of(word, ended)
        assert info.status == word and not info.status_is_known
        assert not info.is_complete
        assert repr(word) in info.incomplete_reason and "active, closed, error" in (
            info.incomplete_reason
        )
        with pytest.raises(SessionNotComplete, match=re.escape(f"status {word!r}")):
            check_complete(info)
        assert SessionInfo.from_json(json.loads(json.dumps(info.to_json()))) == info
