"""A phase's result survives JSON (the Dagster steps hand it on as plain data)."""

from __future__ import annotations

import json
from pathlib import Path

from kalshi_pipeline.training.jobs import PhaseResult


def test_a_phase_result_survives_a_json_round_trip():
    for result in (
        PhaseResult(phase=1, model_path=Path("out/phase1/model.zip"), timesteps=2048),
        PhaseResult(
            phase=3,
            model_path=Path("/abs/phase3/model.zip"),
            timesteps=4096,
            resumed_from=Path("/abs/phase3/checkpoints/model_512_steps.zip"),
        ),
    ):
        assert PhaseResult.from_json(json.loads(json.dumps(result.to_json()))) == result
