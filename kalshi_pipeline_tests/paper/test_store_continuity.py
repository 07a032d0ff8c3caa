"""The store refuses a write that does not follow its own last one: writes the database
lost (its commits do not wait for the disk, so a server crash can drop the last ones) or
another follower writing the same session. Started again, a follower replays from the
stored cursor, so nothing is lost or doubled."""

from __future__ import annotations

from contextlib import closing

import psycopg2
import pytest

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.paper.records import Decision, Records
from kalshi_pipeline.paper.store import PaperStore, PaperStoreError
from kalshi_pipeline.paper.write_behind import WriteBehind
from kalshi_pipeline.sources.collector_tail import Cursor

SOURCE = "127.0.0.1:5432/collector"


def poll(step: int) -> Records:
    decision = Decision("MKT-A", step, 1_000 + step, "model-1", 0, bytes(208))
    return Records(decisions=[decision])


@pytest.fixture
def store(collector_db):
    paper = PaperStore(collector_db)
    paper.create()
    paper.begin(1, SOURCE, EnvConfig().to_json())
    yield paper
    paper.close()


def test_writes_the_database_lost_are_refused_by_name(store, collector_db):
    store.write(1, poll(0), Cursor(deltas=10), 1.0)
    store.write(1, poll(1), Cursor(deltas=20), 2.0)
    with closing(psycopg2.connect(collector_db)) as conn, conn.cursor() as cur:
        # What a server crash leaves when the last acknowledged commit never reached disk.
        cur.execute("DELETE FROM paper_decisions WHERE step = 1")
        cur.execute("DELETE FROM paper_polls WHERE poll = 2")
        cur.execute("UPDATE paper_sessions SET polls = 1, deltas_id = 10")
        conn.commit()
    with pytest.raises(PaperStoreError, match="session 1 has 1 writes.*made 2.*start the follower"):
        store.write(1, poll(2), Cursor(deltas=30), 3.0)
    assert store.load(1).cursor == Cursor(deltas=10)  # nothing of the refused write landed


def test_a_second_follower_of_the_session_is_refused(store, collector_db):
    store.write(1, poll(0), Cursor(deltas=10), 1.0)
    other = PaperStore(collector_db)
    other.write(1, poll(1), Cursor(deltas=20), 2.0)  # it starts from what it finds
    other.close()
    with pytest.raises(PaperStoreError, match="another follower"):
        store.write(1, poll(2), Cursor(deltas=30), 3.0)


def test_written_behind_a_refused_write_stops_the_writes_after_it_and_is_raised(
    store, collector_db
):
    """Behind the follow loop (:class:`WriteBehind`), the refusal is raised in the loop at
    its next write or flush, and no write queued after the refused one lands."""
    with WriteBehind(store) as writes:
        writes.write(1, poll(0), Cursor(deltas=10), 1.0)
        writes.flush()
        other = PaperStore(collector_db)
        other.write(1, poll(1), Cursor(deltas=20), 2.0)
        other.close()
        writes.write(1, poll(2), Cursor(deltas=30), 3.0)  # refused, on the writes' thread
        writes.write(1, poll(3), Cursor(deltas=40), 4.0)  # never lands
        with pytest.raises(PaperStoreError, match="another follower"):
            writes.flush()
        with pytest.raises(PaperStoreError, match="another follower"):
            writes.write(1, poll(4), Cursor(deltas=50), 5.0)
    stored = store.load(1)
    assert stored.cursor == Cursor(deltas=20)
    assert [d.step for d in stored.records.decisions] == [0, 1]
