"""A session's records summed up and plotted (:mod:`kalshi_pipeline.paper.session_report`),
and the summary files a model's paper record is read from (:mod:`.session_files`).

The records are written by hand: two markets, one played by a taker model (its fills
are its outcomes'), one by a maker (each fill recorded), their steps interleaved in time.
"""

from __future__ import annotations

import numpy as np

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.paper.model_choice import always_hold
from kalshi_pipeline.paper.records import Decision, FillRecord, MarketRecord, Outcome, Records
from kalshi_pipeline.paper.session_files import (
    RecordSource,
    SessionReport,
    model_record,
    read_reports,
    write_report,
)
from kalshi_pipeline.paper.session_report import (
    against_backtest,
    paper_after_the_fact,
    pnl_curve,
    pnl_plot,
    summarize,
)
from kalshi_pipeline.paper.trader import REJECTED_BY_CLEANING
from kalshi_pipeline.sources.simulator import Population, SimulatorConfig, simulate_session

CASH = 10_000
KINDS = ("decisions", "outcomes", "fills", "markets")


def decision(market: str, step: int, ms: int, model: str) -> Decision:
    return Decision(market, step, ms, model, 0, b"")


def outcome(market: str, step: int, value: int, filled: int = 0, fees: int = 0) -> Outcome:
    return Outcome(market, step, 0.0, value, 0, value, filled, fees, False)


def fill(market: str, step: int, contracts: int) -> FillRecord:
    return FillRecord(market, step, 1, 0, 0, 50, contracts, True, 0)


def two_markets() -> Records:
    """TAKE (model-1) steps at 1000, 3000, 5000 ms; MAKE (model-2) at 2000, 4000 ms."""
    return Records(
        decisions=[
            *(decision("TAKE", s, ms, "model-1") for s, ms in enumerate((1000, 3000, 5000))),
            *(decision("MAKE", s, ms, "model-2") for s, ms in enumerate((2000, 4000))),
        ],
        outcomes=[
            outcome("TAKE", 0, CASH - 12, filled=10, fees=2),
            outcome("TAKE", 1, CASH - 30),
            outcome("TAKE", 2, CASH + 40, filled=-10, fees=3),
            outcome("MAKE", 0, CASH + 5, filled=7),
            outcome("MAKE", 1, CASH - 1),
        ],
        fills=[fill("MAKE", 0, 4), fill("MAKE", 0, 3)],
        markets=[
            MarketRecord("TAKE", "model-1", "/m/1.zip"),
            MarketRecord("MAKE", "model-2", "/m/2.zip"),
            MarketRecord("MAKE", "model-2", "/m/2.zip", ended=True, reason="the view ended"),
        ],
    )


def test_the_summary_is_per_market_and_per_model():
    summary = summarize(two_markets(), CASH).with_registry_ids({"/m/1.zip": 1})

    by_market = {m.market: m for m in summary.markets}
    assert (by_market["TAKE"].pnl_cents, by_market["MAKE"].pnl_cents) == (40, -1)
    assert summary.pnl_cents == 39
    # A taker's fills are its outcomes that filled; a maker's each fill recorded.
    assert (by_market["TAKE"].fills, by_market["TAKE"].contracts) == (2, 20)
    assert (by_market["MAKE"].fills, by_market["MAKE"].contracts) == (2, 7)
    assert by_market["TAKE"].fees_cents == 5
    assert (by_market["TAKE"].decisions, by_market["MAKE"].decisions) == (3, 2)
    uses = {m.name: (m.markets, m.registry_id) for m in summary.models}
    assert uses == {"model-1": (1, 1), "model-2": (1, None)}


def test_the_curve_sums_each_markets_value_change_in_receive_time_order(tmp_path):
    ms, pnl = pnl_curve(two_markets(), CASH)

    assert ms.tolist() == [1000, 2000, 3000, 4000, 5000]
    # TAKE -12, MAKE +5, TAKE -18, MAKE -6, TAKE +70
    assert pnl.tolist() == np.cumsum([-12, 5, -18, -6, 70]).tolist()
    assert pnl[-1] == summarize(two_markets(), CASH).pnl_cents
    png = pnl_plot(two_markets(), tmp_path / "pnl.png", CASH)
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_a_models_paper_record_reads_the_session_files(tmp_path):
    summary = summarize(two_markets(), CASH).with_registry_ids({"/m/1.zip": 1, "/m/2.zip": 2})
    for session_id in (3, 4):
        report = SessionReport(session_id, RecordSource.REPLAYED, summary, summary, (), ())
        write_report(report, tmp_path)

    reports = read_reports(tmp_path)

    assert [r.session_id for r in reports] == [3, 4] and reports[0].paper == summary
    record = model_record(reports, 1)
    assert [(s.session_id, s.pnl_cents, s.markets, s.decisions) for s in record] == [
        (3, 40, 1, 3),
        (4, 40, 1, 3),
    ]
    assert model_record(reports, 9) == []


def test_markets_cut_by_both_cleanings_are_named_and_any_other_mismatch_differs():
    config = SimulatorConfig(population=Population.TWO_CLASS, markets=3)
    raw = simulate_session(5, 0, config)
    hold = always_hold()
    paper = paper_after_the_fact(raw, hold.config, lambda _: hold.chosen)
    views = build_market_views(raw)
    models = {m.market: hold for m in paper.markets}

    agreement = against_backtest(paper, views, models)
    assert agreement.differences == () and agreement.without_batch_view == ()
    assert agreement.backtest.counts()["decisions"] == len(paper.decisions) > 0

    # The batch cleaning cut a market the live path traded to its end without rejecting
    # it: the live path accepted what the batch cut, a difference.
    cut = views[0].market_ticker
    agreement = against_backtest(paper, views[1:], models)
    (difference,) = agreement.differences
    assert difference.startswith(f"{cut}: ") and "made no view of it" in difference
    assert agreement.without_batch_view == ()

    # The live cleaning rejected it too (its record ends so): named, not a difference.
    rejected = MarketRecord(cut, hold.name, "", ended=True, reason=f"{REJECTED_BY_CLEANING}: x")
    both_cut = Records(**{k: list(getattr(paper, k)) for k in KINDS})
    both_cut.markets.append(rejected)
    agreement = against_backtest(both_cut, views[1:], models)
    assert agreement.without_batch_view == (cut,) and agreement.differences == ()

    # A batch view of a market the records never traded: a difference, named.
    untraded = Records(**{k: [r for r in getattr(paper, k) if r.market != cut] for k in KINDS})
    (difference,) = against_backtest(untraded, views, models).differences
    assert difference.startswith(f"{cut}: a batch view of {len(views[0])} steps")
