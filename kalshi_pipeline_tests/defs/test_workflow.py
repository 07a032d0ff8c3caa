"""One workflow: ``kalshi-pipeline train`` and the Dagster graph train the same model.

Both call the steps of :mod:`kalshi_pipeline.workflow` with one :class:`PipelineConfig`;
given the same sessions, config and seed they must make the same split and the same
model. SB3's ``model.save()`` stamps each zip member with the time it was written and
keeps two wall-clock values in its attributes, so "the same model bytes" is checked member
by member: the policy's weights and the optimizer's state byte for byte, the saved
attributes but for those two times.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path

from stable_baselines3.common.save_util import json_to_data

from kalshi_pipeline.cli import main
from kalshi_pipeline.defs.config import TRAINING_CONFIGURED, run_config
from kalshi_pipeline.paths import artifacts_dir, sessions_dir
from kalshi_pipeline.pipeline_config import PipelineConfig, SplitConfig, TrainingChoice
from kalshi_pipeline_tests.defs.conftest import TINY_TIMESTEPS, ingest

CONFIG = PipelineConfig(
    split=SplitConfig(holdout_fraction=0.3),
    training=TrainingChoice(profile="smoke", timesteps_per_phase=TINY_TIMESTEPS, seed=4),
)


def members(model: Path) -> dict:
    """Every member of a saved model; in ``data`` the two wall-clock values (the training's
    ``start_time``, and each episode's time in ``ep_info_buffer``) are left out."""
    with zipfile.ZipFile(model) as archive:
        saved = {name: archive.read(name) for name in archive.namelist()}
    data = json_to_data(saved.pop("data").decode())
    data.pop("start_time")
    data["ep_info_buffer"] = [
        {k: v for k, v in episode.items() if k != "t"} for episode in data["ep_info_buffer"]
    ]
    return {**saved, "data": repr(sorted(data.items()))}


def test_the_cli_and_dagster_make_the_same_split_and_the_same_models(
    pipeline_home, instance, definitions, tmp_path, capsys
):
    ingest(definitions, instance, "1", "2")
    dagster_run = definitions.resolve_job_def("train_and_evaluate").execute_in_process(
        instance=instance, run_config=run_config(CONFIG)
    )
    split = dagster_run.output_for_node("train_holdout_split")

    out = tmp_path / "cli"
    argv = [
        "train", "--store", str(sessions_dir(pipeline_home)), "--out", str(out),
        "--profile", "smoke", "--timesteps", str(TINY_TIMESTEPS), "--seed", "4",
        "--holdout-fraction", "0.3",
    ]  # fmt: skip
    assert main(argv) == 0

    dagster_models = artifacts_dir(pipeline_home) / "models" / f"run-{dagster_run.run_id}"
    for phase in (1, 2, 3):
        ours = json.loads((out / "models" / f"phase{phase}" / "model.json").read_text())
        theirs = json.loads((dagster_models / f"phase{phase}" / "model.json").read_text())
        assert ours["views"] == theirs["views"] == list(split.train)
        assert ours["views_sha256"] == theirs["views_sha256"]
        assert ours["config"] == theirs["config"]
        assert members(out / "models" / f"phase{phase}" / "model.zip") == members(
            dagster_models / f"phase{phase}" / "model.zip"
        ), f"phase {phase}"
    dagster_report = Path(dagster_run.output_for_node("evaluation_report")).parent
    holdout_rows = [
        line
        for line in (dagster_report / "per_market.csv").read_text().splitlines()
        if ",holdout," in line
    ]
    assert holdout_rows and len(split.holdout) > 0
    assert (out / "report" / "per_market.csv").read_text() == (
        dagster_report / "per_market.csv"
    ).read_text()
    # The phase-3 model's parent is evaluated too: the plan's share after phase 2.
    targets = json.loads((dagster_report / "summary.json").read_text())["targets"]
    assert targets["phase2"]["measured"] and targets["phase3"]["measured"]
    holdout_markets = {key.split("/", 1)[1] for key in split.holdout}
    assert targets["phase2"]["splits"]["holdout"]["markets"] == len(holdout_markets)


def test_a_different_seed_makes_a_different_model(pipeline_home, tmp_path):
    """The comparison above can fail: another seed gives other weights."""
    store = str(sessions_dir(pipeline_home))
    common = ["--store", store, "--profile", "smoke", "--timesteps", str(TINY_TIMESTEPS)]
    common += ["--phases", "1"]
    assert main(["train", "--out", str(tmp_path / "a"), *common, "--seed", "4"]) == 0
    assert main(["train", "--out", str(tmp_path / "b"), *common, "--seed", "5"]) == 0

    a = members(tmp_path / "a" / "models" / "phase1" / "model.zip")
    b = members(tmp_path / "b" / "models" / "phase1" / "model.zip")
    assert a["policy.pth"] != b["policy.pth"]


def test_launchpad_hyperparameters_reach_the_models_and_must_agree(
    pipeline_home, instance, definitions
):
    """Run config as the launchpad writes it (plain dicts): learning rate, gamma, n_envs,
    net_arch, timesteps, the validation interval and the execution settings reach every
    phase's model (a maker here, which the report then evaluates as one); a phase
    configured unlike its parent is refused (it would train as its parent was configured)."""
    ingest(definitions, instance, "1", "2")
    training = {
        "profile": "smoke", "timesteps_per_phase": TINY_TIMESTEPS // 2, "learning_rate": 0.001,
        "gamma": 0.9, "n_envs": 4, "net_arch": [16, 16], "validate_every": 4096,
        "execution": "maker", "latency_ms": 0, "series_fees": ["KXBTC:quadratic"],
    }  # fmt: skip
    job = definitions.resolve_job_def("train_and_evaluate")
    run = job.execute_in_process(
        instance=instance,
        run_config={"ops": {name: {"config": training} for name in TRAINING_CONFIGURED}},
    )
    for phase in (1, 2, 3):
        lineage = json.loads(
            Path(run.output_for_node(f"phase{phase}_model")).with_suffix(".json").read_text()
        )
        hyper = lineage["config"]["hyperparameters"]
        assert (hyper["learning_rate"], hyper["gamma"], hyper["net_arch"]) == (0.001, 0.9, [16, 16])
        assert lineage["config"]["n_envs"] == 4 and lineage["config"]["validate_every"] == 4096
        env = lineage["config"]["env"]
        assert (env["execution"], env["latency_ms"], env["series_fees"]) == (
            "maker", 0, ["KXBTC:quadratic"],
        )  # fmt: skip
        saved = json_to_data(
            zipfile.ZipFile(run.output_for_node(f"phase{phase}_model")).read("data").decode()
        )
        assert saved["learning_rate"] == 0.001 and saved["gamma"] == 0.9
        assert saved["policy_kwargs"]["net_arch"] == [16, 16]

    report = Path(run.output_for_node("evaluation_report")).read_text().splitlines()
    assert report[2].startswith("Execution: maker (resting limit orders at the touch;")
    assert "model-vs-quote_rule/holdout" in "\n".join(report)

    other = {**training, "learning_rate": 0.05}
    ops = {
        name: {"config": training if name == "phase1_model" else other}
        for name in TRAINING_CONFIGURED
    }
    mixed = job.execute_in_process(instance=instance, run_config={"ops": ops}, raise_on_error=False)
    assert not mixed.success
    failure = next(e for e in mixed.all_events if e.is_step_failure)
    assert failure.step_key == "phase2_model.phase2_candidates"  # before any candidate trains
    assert "learning_rate" in str(failure.step_failure_data.error.to_string())


# -- views that are not what market_views wrote are never trained on ------------------------
def failed_step(result) -> tuple[str, str]:
    """The key of a failed run's first failed step and its root cause's message."""
    event = next(e for e in result.all_events if e.is_step_failure)
    error = event.step_failure_data.error
    while error.cause is not None:
        error = error.cause
    return event.step_key, error.message


def test_a_copied_or_damaged_views_file_fails_the_training_naming_it(
    pipeline_home, instance, definitions
):
    """Session 1's views file copied over session 2's would drop session 2 and count
    session 1 twice; a bit flipped in session 1's step data would change the prices
    training sees. The first is refused where the sessions' statistics are read, the
    second where phase 1 reads its views; neither trains anything."""
    ingest(definitions, instance, "1", "2")
    views = artifacts_dir(pipeline_home) / "views"
    first, second = views / "session-1.parquet", views / "session-2.parquet"
    written = {path: path.read_bytes() for path in (first, second)}
    job = definitions.resolve_job_def("train_and_evaluate")

    def train():
        return job.execute_in_process(
            instance=instance, run_config=run_config(CONFIG), raise_on_error=False
        )

    shutil.copyfile(first, second)
    step, message = failed_step(train())
    assert step == "difficulty_scores"
    assert f"views file {second} is not used" in message
    assert "it holds the views of session 1, not of session 2" in message
    assert "materialise the market_views partition 2 again" in message

    second.write_bytes(written[second])
    damaged = bytearray(written[first])
    damaged[len(damaged) // 3] ^= 0x10  # inside the step data, far from the footer
    first.write_bytes(bytes(damaged))  # session 1 trains (session 2 is the walk-forward)
    step, message = failed_step(train())
    assert step == "phase1_model.phase1_candidates"
    assert f"views file {first} is not used" in message
    assert not (artifacts_dir(pipeline_home) / "models").exists()
