"""``production_model``: the graph ends with the promotion decision, its check and history.

The whole graph runs once (the ``trained`` fixture: two sessions, ``train_and_evaluate``
on a tiny budget). Its phase-3 model starts near always-HOLD and has had one rollout per
phase, so it cannot beat HOLD with confidence: the first decision is a refusal. A champion
that always buys (promoted while its markets rose) is then beaten by that same model on
today's holdout, and ``kalshi-pipeline models`` prints it.
"""

from __future__ import annotations

from pathlib import Path

import dagster as dg
import pytest

from kalshi_pipeline.cli import main
from kalshi_pipeline.env.execution import BUY_YES, HOLD
from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paths import artifacts_dir
from kalshi_pipeline.training.promotion import ALWAYS_HOLD
from kalshi_pipeline.training.registry import (
    Registry,
    RegistryRecord,
    RegistryStatus,
    registry_path,
)
from kalshi_pipeline.workflow import promote
from kalshi_pipeline_tests.defs.conftest import metadata
from kalshi_pipeline_tests.factories import make_session
from kalshi_pipeline_tests.training.test_promotion import fixed_model, rising_market

ACTIVE, RETIRED = RegistryStatus.ACTIVE, RegistryStatus.RETIRED
REFUSED, FAILED = RegistryStatus.REFUSED, RegistryStatus.FAILED
CHECK = dg.AssetCheckKey(dg.AssetKey("production_model"), "tested_champion")


def check_result(result: dg.ExecuteInProcessResult) -> dg.AssetCheckEvaluation:
    (evaluation,) = [e for e in result.get_asset_check_evaluations() if e.asset_check_key == CHECK]
    return evaluation


def registry_of(home: Path) -> Registry:
    return Registry(registry_path(artifacts_dir(home)))


def promote_production_only(
    definitions: dg.Definitions, trained, raise_on_error: bool = True
) -> dg.ExecuteInProcessResult:
    """``production_model`` alone, on the trained run's phase-3 model and split."""
    return definitions.resolve_job_def("train_and_evaluate").execute_in_process(
        instance=trained.instance,
        asset_selection=[dg.AssetKey("production_model")],
        raise_on_error=raise_on_error,
    )


@pytest.fixture(scope="module")
def rising_views():
    rows = [r for i, t in enumerate(("UP-A", "UP-B", "UP-C")) for r in rising_market(t, 30 + i)]
    return build_market_views(make_session(*rows, session_id=9))


def test_the_graph_ends_with_the_decision_and_a_refusal_warns(trained):
    result = trained.training
    assert result.success
    phase3 = result.output_for_node("phase3_model")
    split = result.output_for_node("train_holdout_split")

    shown = metadata(result, "production_model")

    assert shown["decision"] == REFUSED
    assert shown["against"] == "always-HOLD"
    assert shown["interval_low"] <= 0
    assert shown["markets"] == split.holdout_markets >= 2
    assert shown["challenger"] == phase3
    assert "no champion" in shown["champion"]
    assert "| 1 | refused |" in shown["history"] and phase3 in shown["history"]
    assert result.output_for_node("production_model") is None
    # The refusal is the system working: the run succeeds, the check warns and says why.
    check = check_result(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.WARN
    assert check.metadata["markets"].value == shown["markets"]
    assert check.metadata["interval_low"].value == shown["interval_low"]
    assert "refused" in check.metadata["reason"].value
    (record,) = registry_of(trained.home).read()
    assert (record.status, record.model_path) == (REFUSED, phase3)
    assert record.run == result.run_id and record.profile == "smoke"
    assert record.views == len(split.train)


def test_a_better_challenger_replaces_the_champion_and_models_prints_it(
    definitions, trained, rising_views, tmp_path, capsys
):
    phase3 = trained.training.output_for_node("phase3_model")
    registry = registry_of(trained.home)
    # A champion that always buys, promoted while its markets only rose.
    buys = fixed_model(tmp_path / "buys" / "model.zip", BUY_YES, rising_views)
    assert promote(buys, rising_views, registry.path).promoted

    result = promote_production_only(definitions, trained)

    shown = metadata(result, "production_model")
    assert shown["decision"] == ACTIVE
    assert shown["against"] == str(buys) and shown["interval_low"] > 0
    assert shown["champion_model"] == phase3
    assert result.output_for_node("production_model").model_path == phase3
    check = check_result(result)
    assert check.passed
    statuses = {r.model_path: r.status for r in registry.read()}
    assert statuses == {phase3: ACTIVE, str(buys): RETIRED}

    assert main(["models", "--home", str(trained.home)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith(f"champion: model {phase3} (id 3,")
    assert "beat " + str(buys) in out[0]
    rows = [line for line in out if line.startswith("| ") and not line.startswith("| id")]
    assert [row.split("|")[2].strip() for row in rows] == [ACTIVE, RETIRED, REFUSED]


def test_a_champion_whose_file_is_gone_is_recorded_lost_and_the_run_goes_on(
    definitions, trained, rising_views, tmp_path
):
    registry = registry_of(trained.home)
    gone = fixed_model(tmp_path / "gone" / "model.zip", BUY_YES, rising_views)
    assert promote(gone, rising_views, registry.path).promoted
    gone.unlink()

    result = promote_production_only(definitions, trained)

    # Not a failed promotion for ever after: the lost champion is recorded and the
    # challenger is judged against always-HOLD.
    shown = metadata(result, "production_model")
    assert str(gone) in shown["lost_champion"] and "missing" in shown["lost_champion"]
    assert shown["against"] == ALWAYS_HOLD
    statuses = {r.model_path: r.status for r in registry.read()}
    assert statuses[str(gone)] == RegistryStatus.LOST
    assert registry.champion() is None or registry.champion().model_path != str(gone)


def test_an_untested_champion_fails_the_check_with_error_and_the_run(
    definitions, trained, rising_views, tmp_path
):
    """A champion with no winning comparison on record (a history edited by hand) does
    not pass for a tested one: the challenger is judged against it as usual (refused
    here, so production does not change), the check fails with ERROR naming what is
    wrong and, being blocking, fails the step and the run."""
    registry = registry_of(trained.home)
    holds = fixed_model(tmp_path / "untested" / "model.zip", HOLD, rising_views)
    by_hand = {"model_path": str(holds), "status": "active", "reason": "by hand"}
    untested = registry.append(RegistryRecord.from_json(by_hand))

    result = promote_production_only(definitions, trained, raise_on_error=False)

    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "production_model"
    assert failure.step_failure_data.error.cls_name == "DagsterAssetCheckFailedError"
    shown = metadata(result, "production_model")
    assert shown["decision"] == REFUSED and shown["against"] == str(holds)
    assert registry.champion().id == untested.id
    check = check_result(result)
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    problems = check.metadata["problems"].value
    assert f"champion {untested.id} ({holds}) has no winning comparison" in problems


def test_models_without_history_is_one_line(tmp_path, capsys):
    assert main(["models", "--home", str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert err.startswith("error: no model has been a candidate for production in ")
