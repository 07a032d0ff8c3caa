"""How a trained model's result depends on the execution assumptions it is judged under.

Takes a run of ``kalshi-pipeline train`` (its ``--out``) and the store it trained on, and
evaluates its phase-3 model again, against the same baselines on the same split, with
each variant of the execution settings: the latency (0, 100 and 500 ms by default), the
queue model (risk-averse against the probability ones), and the most generous reading of
all (no latency, the log-probability queue, hftbacktest's trade-through rule). Each
variant's report goes to ``OUT/robustness/<variant>/``; the script prints one Markdown
row per variant: model - HOLD and model - the quote rule on the holdout and the
walk-forward session, and the plan's target shares after phase 2 and 3. A result that
holds only with no latency and a generous queue is not a result: docs/learning.md reads
the table that way.

    python benchmarks/robustness.py OUT STORE [--holdout-fraction 0.4] [--seed 0]
        [--latencies 0 100 500] [--queue-models risk_averse log_prob]

The split must be the run's: give the holdout fraction and training seed it was trained
with (the honesty check's are the defaults here).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.honesty_check import difference_cell, share_cell  # noqa: E402
from kalshi_pipeline.market.split import SplitName  # noqa: E402
from kalshi_pipeline.pipeline_config import PipelineConfig, SplitConfig, TrainingChoice  # noqa: E402
from kalshi_pipeline.sources.parquet_store import ParquetSessionStore  # noqa: E402
from kalshi_pipeline.training.evaluation import PolicyName  # noqa: E402
from kalshi_pipeline.training.execution_choice import ExecutionChoice  # noqa: E402
from kalshi_pipeline.workflow import evaluate, load_split, progress_files, views_for  # noqa: E402


def variants(latencies: list[int], queue_models: list[str]) -> dict[str, ExecutionChoice]:
    """Each latency with the risk-averse queue, then each other queue model at 100 ms."""
    chosen = {
        f"latency {ms} ms, risk_averse": ExecutionChoice(latency_ms=ms, queue_model="risk_averse")
        for ms in latencies
    }
    for model in queue_models:
        if model != "risk_averse":
            chosen[f"latency 100 ms, {model}"] = ExecutionChoice(latency_ms=100, queue_model=model)
    # The most generous reading: no latency, cancels ahead of the order, and hftbacktest's
    # rule that any trade through an order fills all it has left.
    chosen["latency 0 ms, log_prob, trade through fills all"] = ExecutionChoice(
        latency_ms=0, queue_model="log_prob", trade_through_fills="all"
    )
    return chosen


def row(name: str, summary: dict) -> str:
    """One Markdown row: model - HOLD and - the quote rule, holdout then walk-forward, and
    the target shares (the honesty check's cells)."""
    cells = [
        difference_cell(summary, baseline, split)
        for split in (SplitName.HOLDOUT, SplitName.WALK_FORWARD)
        for baseline in (PolicyName.HOLD, PolicyName.QUOTE_RULE)
    ]
    shares = f"{share_cell(summary, 'phase2')} / {share_cell(summary, 'phase3')}"
    return f"| {name} | {' | '.join(cells)} | {shares} |"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("out", type=Path, help="a train run's --out")
    parser.add_argument("store", type=Path, help="the store it trained on")
    parser.add_argument("--holdout-fraction", type=float, default=0.4)
    parser.add_argument("--seed", type=int, default=0, help="the run's training seed")
    parser.add_argument("--latencies", type=int, nargs="+", default=[0, 100, 500])
    parser.add_argument("--queue-models", nargs="+", default=["risk_averse", "log_prob"])
    args = parser.parse_args()

    config = PipelineConfig(
        split=SplitConfig(holdout_fraction=args.holdout_fraction),
        training=TrainingChoice(seed=args.seed),
    )
    split, session_views = load_split(ParquetSessionStore(args.store), config, evaluate=True)
    views = {name: views_for(split, name, session_views) for name in SplitName}
    models = args.out / "models"
    rows = []
    for name, choice in variants(args.latencies, args.queue_models).items():
        slug = name.replace(" ", "").replace(",", "-")
        report = evaluate(
            models / "phase3" / "model.zip", config.training_config(), views[SplitName.TRAIN],
            views[SplitName.HOLDOUT], split, args.out / "robustness" / slug,
            progress_files(models), views[SplitName.WALK_FORWARD], execution=choice,
        )  # fmt: skip
        summary = json.loads((report.path.parent / "summary.json").read_text())
        rows.append(row(name, summary))
        print(rows[-1], flush=True)
    print(
        "| execution | model - HOLD, holdout | model - quote rule, holdout | model - HOLD, "
        "walk-forward | model - quote rule, walk-forward | share > 0 after phase 2 / 3 |"
    )
    print("|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
