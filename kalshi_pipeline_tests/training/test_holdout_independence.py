"""The holdout stays untouched: changing only the holdout's data changes no trained or
selected model and no tuned hyperparameter (validation picks the checkpoints and scores
the trials; the holdout is read only by the report and the promotion check).

The change mirrors a market: every YES bid becomes a NO bid at the same price and back.
The mirrored market is as valid as the original, with the same events at the same times
and sequence numbers, so what the session as a whole records (its time steps, which
``market_coverage`` is a share of, and its sequence gaps, a factor of
``data_quality_score``) is unchanged, while a model that trades there earns otherwise.
Those session-wide statistics are the session's by definition (docs/training.md,
"Validation during training"): only a market's book is its own.

The models start from even action probabilities, so they trade from the first step and
every validation score is one a change to the validation markets moves. Two controls
show that each comparison can fail: the same change to the validation markets changes
what is selected and how the trials score, but no trained weight; to the training
markets, the trained weights.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile

import pyarrow as pa
import pyarrow.compute as pc
import pytest

from kalshi_pipeline.pipeline_config import (
    PipelineConfig,
    SplitConfig,
    TrainingChoice,
    TuningChoice,
)
from kalshi_pipeline.sources import ParquetSessionStore
from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.training.config import PROFILES
from kalshi_pipeline.training.files import read_csv_rows
from kalshi_pipeline.workflow import (
    load_split,
    run,
    tune,
    tuning_study,
)

SPLIT = SplitConfig(holdout_fraction=0.3, validation_fraction=0.3)
EVEN = (0.2, 0.2, 0.2, 0.2, 0.2)  # HOLD, then the four orders: all played from the start


def mirrored(session: RawSession, tickers: set[str]) -> RawSession:
    """``session`` with the books of ``tickers`` mirrored: YES bids become NO bids at the
    same prices and back (snapshots and deltas); every other column and market is kept."""
    snapshots, deltas = session.snapshots, session.deltas
    mine = pc.is_in(snapshots.column("market_ticker"), pa.array(sorted(tickers)))
    for yes, no in (("yes_bids", "no_bids"), ("yes_asks", "no_asks")):
        yes_column, no_column = snapshots.column(yes), snapshots.column(no)
        for name, now in ((yes, pc.if_else(mine, no_column, yes_column)),
                          (no, pc.if_else(mine, yes_column, no_column))):  # fmt: skip
            snapshots = snapshots.set_column(snapshots.schema.get_field_index(name), name, now)
    side = deltas.column("side")
    mine = pc.is_in(deltas.column("market_ticker"), pa.array(sorted(tickers)))
    swapped = pc.if_else(pc.equal(side, "yes"), "no", "yes")
    index = deltas.schema.get_field_index("side")
    deltas = deltas.set_column(index, "side", pc.if_else(mine, swapped, side))
    return dataclasses.replace(session, snapshots=snapshots, deltas=deltas)


def weights(model) -> bytes:
    with zipfile.ZipFile(model) as archive:
        return archive.read("policy.pth")


@pytest.mark.slow  # two trainings, 40 s: .ci/run runs it with the slow tests
def test_changing_only_the_holdouts_data_changes_no_selected_model(tmp_path):
    hyperparams = tmp_path / "even.json"
    even = dataclasses.replace(PROFILES["smoke"].hyperparameters, initial_action_probabilities=EVEN)
    hyperparams.write_text(json.dumps({"hyperparameters": dataclasses.asdict(even)}))
    config = PipelineConfig(
        split=SPLIT,
        training=TrainingChoice(
            profile="smoke", timesteps_per_phase=2048, n_envs=2, seed=1,
            checkpoint_every=1024, hyperparams=str(hyperparams),
        ),
    )  # fmt: skip
    sessions = [simulate_session(i, i, SimulatorConfig(markets=10)) for i in (1, 2)]
    original = store_of(tmp_path / "original", sessions)
    split, _ = load_split(original, config)
    sides = {
        side: {k.split("/", 1)[1] for k in getattr(split, side)}
        for side in ("train", "validation", "holdout")
    }
    assert all(sides.values()), sides
    stores = {"original": original} | {
        name: store_of(tmp_path / name, [mirrored(s, sides[side]) for s in sessions])
        for name, side in (("changed", "holdout"), ("validation", "validation"),
                           ("training", "train"))
    }  # fmt: skip
    tuned = {}
    for name, store in stores.items():
        phases = (1,) if name == "training" else (1, 2)
        run(store, tmp_path / name / "out", config, phases=phases)
        if name != "training":
            tuned[name] = small_study(store, tmp_path / name / "tuning")

    def phase_files(name: str, phase: int) -> dict:
        out = tmp_path / name / "out" / "models" / f"phase{phase}"
        return {
            "validation": (out / "validation.csv").read_text(),  # what selection reads
            "best": json.loads((out / "best.json").read_text()),
            "selected": weights(out / "model.zip"),
            "trained": weights(out / "last_model.zip"),
        }

    for phase in (1, 2):
        assert phase_files("changed", phase) == phase_files("original", phase), phase
    # The comparisons can fail. Validation picks the checkpoint: its markets' books move
    # the scores the best checkpoint is picked by, never the trained weights.
    selected, validated = phase_files("original", 1), phase_files("validation", 1)
    assert validated["validation"] != selected["validation"]
    assert validated["trained"] == selected["trained"]
    # The training markets' books move the trained weights.
    assert phase_files("training", 1)["trained"] != selected["trained"]

    # Tuning: the same trials, scores, trained models and best hyperparameters; the same
    # change to the validation markets changes how the trials score.
    assert tuned["changed"] == tuned["original"]
    assert any(float(score) for score in tuned["original"]["validated"])  # a trial traded
    assert tuned["validation"]["validated"] != tuned["original"]["validated"]


def store_of(where, sessions) -> ParquetSessionStore:
    store = ParquetSessionStore(where / "store")
    for session in sessions:
        store.write_session(session)
    return store


def small_study(store, where) -> dict:
    """The hyperparameters written, the best trial, every trial's result and validation
    scores and the weights of its phase-3 models (the selected and the last).

    The sampler's seed 9 has the second trial start at 21% HOLD, trading at once (the
    first is the profile as set, 95% HOLD, which never trades on this budget)."""
    choice = TuningChoice(trials=3, profile="smoke", timesteps_per_phase=1024, seed=9)
    config = choice.pipeline(PipelineConfig(split=SPLIT))
    split, session_views = load_split(store, config)
    result = tune(
        split, session_views, config, choice, where / "journal", where, where / "best.json"
    )
    study = tuning_study(choice, where / "journal").open()
    return {
        "hyperparameters": result.hyperparameters,
        "best": result.best,
        "trials": [(t.number, t.state, t.value, t.user_attrs.get("ci95")) for t in study.trials],
        "validated": [  # every validation of every trial's phases: its score (the mean)
            row["score"]
            for csv in sorted(where.glob("trial-*/phase*/validation.csv"))
            for row in read_csv_rows(csv)
        ],
        "models": [
            weights(where / f"trial-{n}" / "phase3" / name)
            for n in range(3)
            for name in ("model.zip", "last_model.zip")
            if (where / f"trial-{n}" / "phase3" / name).exists()  # a pruned trial has none
        ],
    }
