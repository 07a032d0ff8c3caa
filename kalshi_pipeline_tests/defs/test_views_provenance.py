"""A views file is used only in the home whose raw copy of the session it was built from.

Session ids are a collector's own: two homes filled from two collectors both have a
session 1. Session 1's views file copied from one home into the other holds session 1,
and its digests match its data, yet it is another session's views. Each views file
records the SHA-256 of the ``digests.json`` of the raw copy it was built from, and the
pipeline's reads check it against their home's raw copy: the copied file is refused,
naming it, wherever it is read, until its ``market_views`` partition is built again.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest

from kalshi_pipeline.defs.resources import PipelineResource
from kalshi_pipeline.paths import HOME_ENV, artifacts_dir
from kalshi_pipeline.sources.simulator import simulate_session
from kalshi_pipeline_tests.defs.conftest import SMALL, ingest, store_at

SCORES_AND_SPLIT = [dg.AssetKey("difficulty_scores"), dg.AssetKey("train_holdout_split")]


def failed_step(result: dg.ExecuteInProcessResult) -> tuple[str, str]:
    """The first failed step's key and its error as Dagster shows it (with causes)."""
    event = next(e for e in result.all_events if e.is_step_failure)
    return event.step_key, event.step_failure_data.error.to_string()


@pytest.fixture
def other_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pipeline_home, definitions):
    """A second home, ingested from another collector's session 1 (other rows); the
    environment points at ``pipeline_home`` again afterwards."""
    home = tmp_path / "other-home"
    store_at(home).write_session(simulate_session(1, 7, SMALL))
    monkeypatch.setenv(HOME_ENV, str(home))
    with dg.instance_for_test() as other_instance:
        (result,) = ingest(definitions, other_instance, "1")
        assert result.success
    monkeypatch.setenv(HOME_ENV, str(pipeline_home))
    return home


def test_views_copied_from_another_homes_session_are_refused_naming_the_file(
    pipeline_home, other_home, instance, definitions
):
    ingest(definitions, instance, "1", "2")
    training = definitions.resolve_job_def("train_and_evaluate")
    made = training.execute_in_process(instance=instance, asset_selection=SCORES_AND_SPLIT)
    assert made.success
    views = artifacts_dir(pipeline_home) / "views" / "session-1.parquet"
    shutil.copyfile(artifacts_dir(other_home) / "views" / "session-1.parquet", views)
    expected = f"views file {views} is not used: it was built from another raw copy of session 1"

    # Read by a training step after the split (the split pinned this home's version).
    with pytest.raises(dg.Failure, match="built from another raw copy of session 1") as read:
        PipelineResource().session_views(1)
    assert str(read.value.description).startswith(expected)
    assert "materialise the market_views partition 1 again" in read.value.description

    # Read for the statistics of a new training run: the whole run stops there.
    result = training.execute_in_process(
        instance=instance, asset_selection=SCORES_AND_SPLIT, raise_on_error=False
    )
    assert not result.success
    step, message = failed_step(result)
    assert step == "difficulty_scores"
    assert expected in message
    assert "materialise the market_views partition 1 again" in message

    # Built again from this home's raw copy, as the message says: used again.
    (again,) = ingest(definitions, instance, "1")
    assert again.success
    assert PipelineResource().session_views(1)
    assert training.execute_in_process(instance=instance, asset_selection=SCORES_AND_SPLIT).success

    # This home's raw copy loses its digests.json: the copied file is still not its own.
    (PipelineResource().raw_store(1).path / "session-1" / "digests.json").unlink()
    shutil.copyfile(artifacts_dir(other_home) / "views" / "session-1.parquet", views)
    with pytest.raises(dg.Failure, match="built from another raw copy of session 1"):
        PipelineResource().session_views(1)


def test_views_of_a_home_without_the_raw_copy_are_refused(pipeline_home, instance, definitions):
    """Views whose raw copy is gone cannot be told from another home's: refused, naming
    the missing raw copy."""
    ingest(definitions, instance, "1")
    raw = PipelineResource().raw_store(1).path
    shutil.rmtree(raw)
    with pytest.raises(dg.Failure, match="this home has no raw copy of session 1") as read:
        PipelineResource().session_views(1)
    assert str(raw) in read.value.description
