"""Issue 5's honesty criterion, end to end: train on simulated sessions with the signal
and on the no-signal control (the simulator's default markets, calibrated to Kalshi's),
through the CLI, with the default profile.

On the signal store the phase-3 model beats always-HOLD and random on holdout markets
(lower end of the 95% bootstrap interval of the paired difference above 0), or it never
trades, as the report's first line says (on the calibrated markets no market is liquid
enough for a taker: docs/learning.md); on the control it does not beat always-HOLD beyond
noise. Marked slow.

One seed candidate per phase (``--candidates 1``): the default's three candidates make
the check 20 to 30 minutes on two cores, too long for CI's budget next to the rest; this
single-seed run takes under 7 on a quiet machine, up to 18 under load.
``python benchmarks/honesty_check.py`` runs the full default (docs/learning.md gives both
figures).
"""

from __future__ import annotations

import pytest

from benchmarks.honesty_check import HonestyRun, run_honesty_check, verdict
from kalshi_pipeline.market.split import SplitName
from kalshi_pipeline.training.evaluation import PolicyName, difference_key

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def summaries(tmp_path_factory):
    return run_honesty_check(HonestyRun(candidates=1), tmp_path_factory.mktemp("honesty"))


def test_the_signal_model_beats_hold_or_never_trades_and_the_control_never_beats_hold(summaries):
    met, lines = verdict(summaries)
    assert met, "\n".join(lines)


def test_on_the_control_the_model_learns_not_to_trade_rather_than_to_lose(summaries):
    # Not beating HOLD could also mean losing money; the control's model should stay
    # close to HOLD, far above random.
    control = summaries["control"]["differences"]
    assert control[difference_key(PolicyName.RANDOM, SplitName.HOLDOUT)]["ci95"][0] > 0
    assert control[difference_key(PolicyName.HOLD, SplitName.HOLDOUT)]["mean_difference"] > -1.0
