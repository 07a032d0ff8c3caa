"""The model history: records as today's file has them, the lock and the atomic write.

``LEGACY`` is a history exactly as the pipeline has written it (a retired champion, the
champion that beat it, a candidate whose files were gone): reading it and writing it back
gives the same bytes, so the typed records change nothing on disk.
"""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest

from kalshi_pipeline.training.registry import (
    PromotionError,
    Registry,
    RegistryRecord,
    RegistryStatus,
    champion_of,
    next_id,
    registry_path,
)

LEGACY = """{
 "models": [
  {
   "model_path": "/h/runs/a/phase3/model.zip",
   "profile": "demo",
   "run": "run-a",
   "at": "2026-01-01T00:00:00+00:00",
   "sessions": [
    1,
    2,
    3,
    7
   ],
   "views": 12,
   "seed": 0,
   "algorithm": "PPO",
   "timesteps": 4096,
   "id": 1,
   "status": "retired",
   "against": "always-HOLD",
   "markets": 3,
   "mean_difference": 0.125,
   "interval": [
    0.0625,
    0.25
   ],
   "reason": "challenger minus always-HOLD over 3 holdout markets: mean +0.1250, 95% interval [+0.0625, +0.2500]; lower end above 0: promoted",
   "retired_at": "2026-01-02T00:00:00+00:00",
   "retired_by": 2
  },
  {
   "model_path": "/h/runs/b/phase3/model.zip",
   "profile": null,
   "run": "",
   "at": "2026-01-02T00:00:00+00:00",
   "sessions": [
    1,
    2
   ],
   "views": 8,
   "seed": 1,
   "algorithm": "A2C",
   "timesteps": 2048,
   "id": 2,
   "status": "active",
   "against": "/h/runs/a/phase3/model.zip",
   "markets": 4,
   "mean_difference": 0.5,
   "interval": [
    0.25,
    0.75
   ],
   "reason": "challenger minus /h/runs/a/phase3/model.zip over 4 holdout markets: mean +0.5000, 95% interval [+0.2500, +0.7500]; lower end above 0: promoted"
  },
  {
   "model_path": "/h/gone/model.zip",
   "profile": null,
   "run": "",
   "at": "2026-01-03T00:00:00+00:00",
   "sessions": [],
   "views": 0,
   "seed": null,
   "algorithm": null,
   "id": 3,
   "status": "failed",
   "against": "/h/runs/b/phase3/model.zip",
   "reason": "not compared: model /h/gone/model.zip: the file or its model.json is missing"
  }
 ]
}
"""  # noqa: E501 (the reasons are as long as the pipeline writes them)


@pytest.fixture
def legacy(tmp_path) -> Registry:
    path = tmp_path / "models" / "registry.json"
    path.parent.mkdir()
    path.write_text(LEGACY)
    return Registry(path)


def test_a_history_written_by_the_pipeline_reads_and_writes_back_identically(legacy):
    records = legacy.read()

    retired, champion, failed = records
    assert [r.status for r in records] == ["retired", "active", "failed"]
    assert retired.status is RegistryStatus.RETIRED and retired.retired_by == 2
    assert retired.sessions == (1, 2, 3, 7) and retired.interval == (0.0625, 0.25)
    assert champion_of(records) == champion and champion.profile is None and champion.run == ""
    assert (failed.markets, failed.interval, failed.timesteps, failed.views) == (
        None,
        None,
        None,
        0,
    )
    with legacy.locked():
        legacy.write(records)
    assert legacy.path.read_text() == LEGACY
    assert [r.to_json() for r in records] == json.loads(LEGACY)["models"]


def test_a_record_round_trips_through_json(legacy):
    for record in [*legacy.read(), RegistryRecord(model_path="m.zip")]:
        assert RegistryRecord.from_json(json.loads(json.dumps(record.to_json()))) == record


def test_a_hand_made_record_reads_and_writes_back_as_it_was(tmp_path):
    """A record added by hand may lack anything but its model path ('at' too), and have
    keys of its own: it reads, and the history written back keeps it key for key."""
    path = tmp_path / "registry.json"
    by_hand = {"status": "active", "model_path": "m.zip", "note": "restored", "id": 4}
    Registry(path).write([RegistryRecord.from_json(by_hand)])
    registry = Registry(path)

    (record,) = registry.read()

    assert record == RegistryRecord(
        model_path="m.zip", status=RegistryStatus.ACTIVE, id=4, extra={"note": "restored"}
    )
    assert record.at is None and record.sessions == () and registry.champion() == record
    assert json.loads(path.read_text()) == {"models": [by_hand]}
    assert list(record.to_json()) == list(by_hand)
    # What it gains goes after its own keys, as a retired champion's retired_at did.
    appended = registry.append(RegistryRecord.from_json({"model_path": "n.zip"}))
    retired = replace(record, status=RegistryStatus.RETIRED, retired_at="then", retired_by=5)
    assert list(appended.to_json()) == ["model_path", "id"] and appended.id == 5
    assert list(retired.to_json()) == [*by_hand, "retired_at", "retired_by"]
    assert next_id(registry.read()) == 6


def test_a_record_made_here_has_the_pipelines_keys():
    record = RegistryRecord(model_path="m.zip", at="then", views=0, run="", timesteps=None)

    assert list(record.to_json()) == [
        "model_path", "profile", "run", "at", "sessions", "views", "seed", "algorithm", "id",
        "status",
    ]  # fmt: skip
    assert list(replace(record, timesteps=5, id=1).to_json())[8:10] == ["timesteps", "id"]


@pytest.mark.parametrize(
    "text", ["{", '{"history": []}', '{"models": [{"status": "active"}]}',
             '{"models": [{"model_path": "m", "status": "champion"}]}'],
)  # fmt: skip
def test_an_unreadable_history_says_so(tmp_path, text):
    path = tmp_path / "registry.json"
    path.write_text(text)

    with pytest.raises(PromotionError, match=f"the model history {path} is unreadable"):
        Registry(path).read()


def test_no_file_is_an_empty_history(tmp_path):
    assert Registry(tmp_path / "registry.json").read() == []
    assert Registry(tmp_path / "registry.json").champion() is None
    assert registry_path(tmp_path) == tmp_path / "models" / "registry.json"


REPO = Path(__file__).resolve().parents[2]
# Each writer waits for the go file, then appends its records one by one.
WRITER = """
import sys, time
from pathlib import Path
from kalshi_pipeline.training.registry import Registry, RegistryRecord, RegistryStatus
path, writer, count, go = sys.argv[1], sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():
    time.sleep(0.001)
registry = Registry(path)
for n in range(count):
    registry.append(
        RegistryRecord(model_path=f"writer{writer}/model{n}.zip", status=RegistryStatus.REFUSED)
    )
"""


def test_two_processes_writing_the_history_lose_nothing(tmp_path):
    path, go = tmp_path / "registry.json", tmp_path / "go"
    count = 100
    writers = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(w), str(count), str(go)], cwd=REPO
        )
        for w in (1, 2)
    ]
    go.touch()
    assert [w.wait(60) for w in writers] == [0, 0]

    records = Registry(path).read()

    assert len(records) == 2 * count
    assert sorted(r.id for r in records) == list(range(1, 2 * count + 1))
    assert {r.model_path for r in records} == {
        f"writer{w}/model{n}.zip" for w in (1, 2) for n in range(count)
    }
    assert not list(tmp_path.glob(".registry.json.*"))  # no temporary file left
