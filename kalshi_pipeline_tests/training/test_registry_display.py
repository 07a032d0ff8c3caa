"""The model history as people see it: the champion's line and the table, champion first."""

from __future__ import annotations

import subprocess
import sys

from kalshi_pipeline.training.registry import RegistryRecord, RegistryStatus
from kalshi_pipeline.training.registry_display import describe_champion, history_markdown
from kalshi_pipeline_tests.training.test_registry import legacy  # noqa: F401 (a fixture)

# As the pipeline has always shown LEGACY (test_registry): the champion (id 2) first,
# then the others newest first; sessions as ranges, an unknown profile as an empty cell.
TABLE = """\
| id | status | at | model | sessions | views | profile | seed | against | markets | interval | reason |
|---|---|---|---|---|---|---|---|---|---|---|---|
| 2 | active | 2026-01-02T00:00:00+00:00 | /h/runs/b/phase3/model.zip | 1-2 | 8 |  | 1 | /h/runs/a/phase3/model.zip | 4 | [+0.2500, +0.7500] | challenger minus /h/runs/a/phase3/model.zip over 4 holdout markets: mean +0.5000, 95% interval [+0.2500, +0.7500]; lower end above 0: promoted |
| 3 | failed | 2026-01-03T00:00:00+00:00 | /h/gone/model.zip |  | 0 |  | None | /h/runs/b/phase3/model.zip |  |  | not compared: model /h/gone/model.zip: the file or its model.json is missing |
| 1 | retired | 2026-01-01T00:00:00+00:00 | /h/runs/a/phase3/model.zip | 1-3, 7 | 12 | demo | 0 | always-HOLD | 3 | [+0.0625, +0.2500] | challenger minus always-HOLD over 3 holdout markets: mean +0.1250, 95% interval [+0.0625, +0.2500]; lower end above 0: promoted |"""  # noqa: E501

CHAMPION = (
    "champion: model /h/runs/b/phase3/model.zip (id 2, since 2026-01-02T00:00:00+00:00; "
    "sessions 1-2, 8 views, profile None, seed 1); beat /h/runs/a/phase3/model.zip over 4 "
    "holdout markets, interval [+0.2500, +0.7500]"
)


def test_the_history_and_its_champion_read_as_they_always_have(legacy):  # noqa: F811
    records = legacy.read()

    assert history_markdown(records) == TABLE
    assert describe_champion(legacy.champion()) == CHAMPION


def test_a_hand_made_champion_without_its_time_is_still_described():
    record = RegistryRecord(model_path="m.zip", status=RegistryStatus.ACTIVE, id=1)

    assert describe_champion(record) == (
        "champion: model m.zip (id 1, since None; sessions , None views, profile None, seed "
        "None); beat None over None holdout markets, interval "
    )
    assert history_markdown([record]).splitlines()[2] == (
        "| 1 | active | None | m.zip |  | None |  | None |  |  |  |  |"
    )


def test_no_history_and_no_champion_say_so():
    assert history_markdown([]) == "(no model has been a candidate yet)"
    assert describe_champion(None) == (
        "no champion: no candidate has beaten always-HOLD on the holdout yet"
    )


def test_showing_the_history_needs_none_of_the_models_machinery():
    """``kalshi-pipeline models`` reads and shows the history without torch, SB3 or the
    env: a fresh interpreter that imports the display has loaded none of them."""
    code = (
        "import sys, kalshi_pipeline.training.registry_display; "
        "print(sorted(m for m in ('torch', 'stable_baselines3', 'gymnasium') if m in sys.modules))"
    )
    shown = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert shown.stdout.strip() == "[]"
