"""The holdout stays untouched: changing only the holdout's data changes no trained or
selected model and no tuned hyperparameter (validation picks the checkpoints and scores
the trials; the holdout is read only by the report and the promotion check)."""

from __future__ import annotations

import dataclasses
import zipfile

import pyarrow as pa
import pyarrow.compute as pc

from kalshi_pipeline.market.split import split_markets
from kalshi_pipeline.sources import ParquetSessionStore
from kalshi_pipeline.sources.raw import RawSession
from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
from kalshi_pipeline.workflow import (
    PipelineConfig,
    SplitConfig,
    TrainingChoice,
    TuningChoice,
    load_split,
    run,
    tune,
)

CONFIG = PipelineConfig(
    split=SplitConfig(holdout_fraction=0.3, validation_fraction=0.3),
    training=TrainingChoice(profile="demo", timesteps_per_phase=2048, n_envs=2, seed=1),
)


def doubled_sizes(session: RawSession, tickers: set[str]) -> RawSession:
    """``session`` with every delta size of ``tickers`` doubled (other books untouched)."""
    deltas = session.deltas
    mine = pc.is_in(deltas.column("market_ticker"), pa.array(sorted(tickers)))
    sizes = pc.if_else(mine, pc.multiply(deltas.column("new_size"), 2), deltas.column("new_size"))
    index = deltas.schema.get_field_index("new_size")
    return dataclasses.replace(session, deltas=deltas.set_column(index, "new_size", sizes))


def weights(model) -> bytes:
    with zipfile.ZipFile(model) as archive:
        return archive.read("policy.pth")


def test_changing_only_the_holdouts_data_changes_no_selected_model(tmp_path):
    sessions = [simulate_session(i, i, SimulatorConfig(markets=10)) for i in (1, 2)]
    tickers = {t for s in sessions for t in s.info.market_tickers}
    _, holdout = split_markets(tickers, CONFIG.split.holdout_fraction, CONFIG.split.salt)
    assert holdout
    trained_on = set(tickers) - set(holdout)
    tuned = {}
    stores = {
        "original": sessions,
        "changed": [doubled_sizes(s, set(holdout)) for s in sessions],
        "control": [doubled_sizes(s, trained_on) for s in sessions],
    }
    for name, stored in stores.items():
        store = ParquetSessionStore(tmp_path / name / "store")
        for session in stored:
            store.write_session(session)
        run(store, tmp_path / name / "out", CONFIG, phases=(1, 2))
        tuned[name] = small_study(store, tmp_path / name / "tuning")

    for phase in (1, 2):
        original = tmp_path / "original" / "out" / "models" / f"phase{phase}"
        changed = tmp_path / "changed" / "out" / "models" / f"phase{phase}"
        assert (original / "best.json").read_text() == (changed / "best.json").read_text()
        for model in ("model.zip", "last_model.zip"):  # the selected and the trained model
            assert weights(original / model) == weights(changed / model), (phase, model)
    # The comparison can fail: the same change to markets outside the holdout shows.
    control = tmp_path / "control" / "out" / "models" / "phase1" / "last_model.zip"
    assert weights(control) != weights(
        tmp_path / "original" / "out" / "models" / "phase1" / "last_model.zip"
    )
    # Tuning: the same trials, scores, trained models and best hyperparameters; the same
    # change outside the holdout changes the trials' models.
    assert tuned["changed"] == tuned["original"]
    assert tuned["control"][2] != tuned["original"][2]


def small_study(store, where) -> tuple:
    """The hyperparameters written, the best trial, every trial's phase-3 weights."""
    choice = TuningChoice(trials=3, profile="demo", timesteps_per_phase=1024, seed=1)
    config = choice.pipeline(PipelineConfig(split=CONFIG.split))
    split, session_views = load_split(store, config)
    result = tune(
        split, session_views, config, choice, where / "journal", where, where / "best.json"
    )
    models = [  # the selected and the last (trained) model of each trial
        weights(where / f"trial-{n}" / "phase3" / name)
        for n in range(3)
        for name in ("model.zip", "last_model.zip")
    ]
    return result["hyperparameters"], result["best"], models
