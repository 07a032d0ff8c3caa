"""What paper trading shows in Dagster: ``paper_trading``'s metadata and its check
``agrees_with_backtest``, and the champion's paper record on ``production_model``.

Tables are ``MetadataValue.table`` (sortable in the UI), the plot a PNG inside Markdown
(Dagster has no image metadata type), as the evaluation report attaches its plots.
"""

import base64
from pathlib import Path

import dagster as dg

from kalshi_pipeline.defs.checks import bullets
from kalshi_pipeline.paper.session_files import ModelSession, SessionReport, model_record
from kalshi_pipeline.paper.session_files import read_reports as read_session_reports
from kalshi_pipeline.paper.session_report import PaperSummary

AGREEMENT_CHECK = "agrees_with_backtest"
SHOWN_DIFFERENCES = 5  # the check names the first few; the JSON summary has them all
_SHOWN_CHARS = 240  # of each difference: its market, kind and step come first

_MARKET_COLUMNS = [
    dg.TableColumn("market", "string"),
    dg.TableColumn("model", "string"),
    dg.TableColumn("pnl_cents", "int", description="final portfolio value - starting cash"),
    dg.TableColumn("backtest_pnl_cents", "int"),
    dg.TableColumn("decisions", "int"),
    dg.TableColumn("fills", "int"),
    dg.TableColumn("contracts", "int"),
    dg.TableColumn("fees_cents", "int"),
]
_RECORD_COLUMNS = [
    dg.TableColumn("session", "int"),
    dg.TableColumn("pnl_cents", "int", description="in the markets the champion played"),
    dg.TableColumn("markets", "int"),
    dg.TableColumn("decisions", "int"),
    dg.TableColumn("agrees_with_backtest", "bool"),
]


def report_metadata(report: SessionReport, summary_path: Path, plot: Path) -> dict:
    """``paper_trading``'s metadata: P&L (a table per market, and overall), the models,
    the counts of paper trading and its backtest, the plot, and where the files are."""
    paper, backtest = report.paper, report.backtest
    return {
        "source": report.source.value,
        "pnl_cents": paper.pnl_cents,
        "backtest_pnl_cents": backtest.pnl_cents,
        "pnl_per_market": _market_table(paper, backtest),
        "models": dg.MetadataValue.md(_models_markdown(paper)),
        "markets": len(paper.markets),
        **compared_counts(report),
        "contracts": paper.total("contracts"),
        "fees_cents": paper.total("fees_cents"),
        "differences": len(report.differences),
        "without_batch_view": dg.MetadataValue.md(bullets(report.without_batch_view)),
        "pnl_plot": dg.MetadataValue.md(_image("cumulative P&L", plot)),
        "plot_path": dg.MetadataValue.path(str(plot)),
        "summary_path": dg.MetadataValue.path(str(summary_path)),
    }


def agreement_check(report: SessionReport) -> dg.AssetCheckResult:
    """Passes with the counts compared; fails (ERROR) naming the first differences."""
    shown = [d[:_SHOWN_CHARS] for d in report.differences[:SHOWN_DIFFERENCES]]
    description = None
    if shown:
        description = (
            f"session {report.session_id}: paper trading and its backtest differ in "
            f"{len(report.differences)} places; first: " + "; ".join(shown)
        )
    return dg.AssetCheckResult(
        check_name=AGREEMENT_CHECK,
        passed=report.agrees,
        severity=dg.AssetCheckSeverity.ERROR,
        description=description,
        metadata={
            **compared_counts(report),
            "markets_compared": len(report.backtest.markets),
            "differences": len(report.differences),
            "first_differences": dg.MetadataValue.md(bullets(shown)),
            "without_batch_view": dg.MetadataValue.md(bullets(report.without_batch_view)),
        },
    )


def compared_counts(report: SessionReport) -> dict[str, int]:
    """``paper_decisions``, ``backtest_decisions``, ...: the decisions and outcomes
    recorded on each side, and the fills (a taker order's, or each of a maker's)."""
    counts = {}
    for side, summary in (("paper", report.paper), ("backtest", report.backtest)):
        counts[f"{side}_decisions"] = summary.counts["decisions"]
        counts[f"{side}_outcomes"] = summary.counts["outcomes"]
        counts[f"{side}_fills"] = summary.total("fills")
    return counts


def champion_paper_metadata(paper_dir: Path, registry_id: int | None) -> dict:
    """``production_model``'s view of the champion's paper trading: per session its P&L,
    markets and decisions (from the sessions' summaries), and the totals."""
    record: list[ModelSession] = []
    if registry_id is not None:
        record = model_record(read_session_reports(paper_dir), registry_id)
    rows = [
        dg.TableRecord(
            {
                "session": s.session_id, "pnl_cents": s.pnl_cents, "markets": s.markets,
                "decisions": s.decisions, "agrees_with_backtest": s.agrees,
            }
        )
        for s in record
    ]  # fmt: skip
    return {
        "paper_record": dg.MetadataValue.table(rows, dg.TableSchema(_RECORD_COLUMNS)),
        "paper_sessions": len(record),
        "paper_pnl_cents": sum(s.pnl_cents for s in record),
        "paper_markets": sum(s.markets for s in record),
    }


def _market_table(paper: PaperSummary, backtest: PaperSummary) -> dg.MetadataValue:
    tested = {m.market: m.pnl_cents for m in backtest.markets}
    rows = [
        dg.TableRecord(
            {
                "market": m.market, "model": m.model, "pnl_cents": m.pnl_cents,
                "backtest_pnl_cents": tested.get(m.market), "decisions": m.decisions,
                "fills": m.fills, "contracts": m.contracts, "fees_cents": m.fees_cents,
            }
        )
        for m in paper.markets
    ]  # fmt: skip
    return dg.MetadataValue.table(rows, dg.TableSchema(_MARKET_COLUMNS))


def _models_markdown(summary: PaperSummary) -> str:
    lines = ["| model | history id | markets | file |", "|---|---:|---:|---|"]
    for m in summary.models:
        shown_id = "" if m.registry_id is None else m.registry_id
        lines.append(f"| {m.name} | {shown_id} | {m.markets} | {m.path or '(none)'} |")
    return "\n".join(lines)


def _image(title: str, png: Path) -> str:
    return f"![{title}](data:image/png;base64,{base64.b64encode(png.read_bytes()).decode()})"
