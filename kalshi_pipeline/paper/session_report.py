"""A paper-traded session in figures: played after the fact, summed up, plotted.

:func:`paper_after_the_fact` plays a stored session through the paper trader as the
collector committed it (:func:`~.replay.by_millisecond`: one receive millisecond at a
time) and closes it: the records the live follower would have written.
:func:`summarize` makes a session's records a :class:`PaperSummary` (P&L per market in
cents, what was decided and filled, which models played), and :func:`pnl_plot` draws the
session's cumulative P&L against its receive time. A market's P&L is its portfolio's
value after its last played step minus the starting cash (its final ``value_cents``).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Self

import numpy as np
from matplotlib.figure import Figure

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.market.views import MarketSessionView
from kalshi_pipeline.paper.backtest import backtest
from kalshi_pipeline.paper.model_choice import PlayedModel
from kalshi_pipeline.paper.records import MarketRecord, Records, compare
from kalshi_pipeline.paper.replay import by_millisecond
from kalshi_pipeline.paper.trader import REJECTED_BY_CLEANING, ChosenModel, PaperTrader
from kalshi_pipeline.sources.raw import RawSession

STARTING_CASH_CENTS = EnvConfig().starting_cash_cents
StartingCash = int | Mapping[str, int]  # one amount, or each market's


def paper_after_the_fact(
    raw_session: RawSession, config: EnvConfig, choose: Callable[[str], ChosenModel]
) -> Records:
    """The paper trader's records of ``raw_session``, fed one receive millisecond at a
    time (every row of a millisecond together, milliseconds in increasing order) and
    closed."""
    trader = PaperTrader(raw_session.info, config, choose)
    records = Records()
    for snapshots, deltas, trades in by_millisecond(raw_session):
        records.extend(trader.add(snapshots, deltas, trades))
    records.extend(trader.close())
    return records


@dataclass(frozen=True)
class Agreement:
    """A session's records against its backtest: the backtest's records, the
    differences (empty when they agree bit for bit), and the markets traded live until
    the live cleaning rejected them that have no batch view either (the batch cleaning
    rejected them too: left out of the comparison)."""

    backtest: Records
    differences: tuple[str, ...]
    without_batch_view: tuple[str, ...]


def against_backtest(
    paper: Records, views: Iterable[MarketSessionView], models: Mapping[str, PlayedModel]
) -> Agreement:
    """Backtest the session's batch ``views``, each market with the model (and its env
    config) ``models`` says the records played it with, and compare the two
    (:func:`~.records.compare`). A batch view of a market never traded live is a
    difference. A market traded live without a batch view is named, not compared, when
    the live cleaning rejected it too (its record ends so); one the live path traded
    without rejecting it is a difference: the live path accepted what the batch cut."""
    batch = {view.market_ticker: view for view in views}
    latest = {m.market: m for m in paper.markets}
    traded = set(latest)
    rejected = {market for market, m in latest.items() if _rejected_live(m)}
    without = tuple(sorted((traded - batch.keys()) & rejected))
    records = Records()
    for market in sorted(traded & batch.keys()):
        played = models[market]
        records.extend(backtest([batch[market]], played.config, lambda _, p=played: p.chosen))
    untraded = [
        f"{market}: a batch view of {len(batch[market])} steps, never traded live"
        for market in sorted(batch.keys() - traded)
    ]
    decided = Counter(d.market for d in paper.decisions)
    accepted = [
        f"{market}: {decided[market]} decisions traded live, the market never rejected, "
        "but the batch cleaning made no view of it"
        for market in sorted(traded - batch.keys() - rejected)
    ]
    differences = untraded + accepted + compare(_without(paper, traded - batch.keys()), records)
    return Agreement(records, tuple(differences), without)


def _rejected_live(market: MarketRecord) -> bool:
    """Whether the live cleaning rejected the market (its record ends with the reason)."""
    return market.ended and market.reason.startswith(REJECTED_BY_CLEANING)


def _without(records: Records, markets: set[str]) -> Records:
    """``records`` without the rows of ``markets``."""
    return Records(
        **{
            f.name: [row for row in getattr(records, f.name) if row.market not in markets]
            for f in fields(Records)
        }
    )


@dataclass(frozen=True)
class MarketResult:
    """One market's paper trading: its model, P&L and activity."""

    market: str
    model: str
    pnl_cents: int
    decisions: int
    fills: int
    contracts: int
    fees_cents: int


@dataclass(frozen=True)
class ModelUse:
    """A model that played ``markets`` markets of the session (``registry_id``: its id in
    the model history, when the history knows its file)."""

    name: str
    path: str
    markets: int
    registry_id: int | None = None


@dataclass(frozen=True)
class PaperSummary:
    """A session's records summed up: per market, and over the session."""

    markets: tuple[MarketResult, ...]
    models: tuple[ModelUse, ...]
    counts: Mapping[str, int]  # rows of each kind of record (Records.counts)

    @property
    def pnl_cents(self) -> int:
        return sum(m.pnl_cents for m in self.markets)

    def total(self, field: str) -> int:
        """The sum over markets of a :class:`MarketResult` count (``fills``, ...)."""
        return sum(getattr(m, field) for m in self.markets)

    def with_registry_ids(self, ids: Mapping[str, int]) -> PaperSummary:
        """The summary with each model's id in the history (``ids``: by model file)."""
        models = tuple(replace(m, registry_id=ids.get(m.path)) for m in self.models)
        return replace(self, models=models)

    def to_json(self) -> dict:
        return {
            "markets": [vars(m) for m in self.markets],
            "models": [vars(m) for m in self.models],
            "counts": dict(self.counts),
            "pnl_cents": self.pnl_cents,
        }

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(
            markets=tuple(MarketResult(**m) for m in data["markets"]),
            models=tuple(ModelUse(**m) for m in data["models"]),
            counts=dict(data["counts"]),
        )


def summarize(
    records: Records, starting_cash_cents: StartingCash = STARTING_CASH_CENTS
) -> PaperSummary:
    """``records`` summed up per market (a market not yet played has a P&L of 0) and
    the models used, each with how many markets it played. ``starting_cash_cents``: one
    amount, or each market's (its model's env config's)."""
    models = {m.market: (m.model, m.model_path) for m in records.markets}
    decisions = Counter(d.market for d in records.decisions)
    outcomes, fills = _by_market(records.outcomes), _by_market(records.fills)
    rows = []
    for market, (model, _) in sorted(models.items()):
        played = sorted(outcomes.get(market, ()), key=lambda o: o.step)
        filled = fills.get(market, [])
        maker_steps = {f.step for f in filled}
        # A taker order's fill is its outcome's; a maker's are recorded one by one.
        taker = [o for o in played if o.filled and o.step not in maker_steps]
        final = played[-1].value_cents if played else _cash(starting_cash_cents, market)
        rows.append(
            MarketResult(
                market=market, model=model,
                pnl_cents=final - _cash(starting_cash_cents, market),
                decisions=decisions[market], fills=len(filled) + len(taker),
                contracts=sum(f.contracts for f in filled) + sum(abs(o.filled) for o in taker),
                fees_cents=sum(o.fees_cents for o in played),
            )
        )  # fmt: skip
    uses = Counter(models.values())
    return PaperSummary(
        markets=tuple(rows),
        models=tuple(ModelUse(name, path, n) for (name, path), n in sorted(uses.items())),
        counts=records.counts(),
    )


def pnl_curve(
    records: Records, starting_cash_cents: StartingCash = STARTING_CASH_CENTS
) -> tuple[np.ndarray, np.ndarray]:
    """(receive time in ms, cumulative P&L in cents): at each played step's receive
    time, the sum over markets of each market's value change so far."""
    times = {(d.market, d.step): d.step_ms for d in records.decisions}
    ms, changes = [], []
    for market, played in _by_market(records.outcomes).items():
        previous = _cash(starting_cash_cents, market)
        for outcome in sorted(played, key=lambda o: o.step):
            ms.append(times[(market, outcome.step)])
            changes.append(outcome.value_cents - previous)
            previous = outcome.value_cents
    order = np.argsort(np.array(ms, np.int64), kind="stable")
    return np.array(ms, np.int64)[order], np.cumsum(np.array(changes, np.int64)[order])


def pnl_plot(records: Records, path: Path, starting_cash_cents: int = STARTING_CASH_CENTS) -> Path:
    """The session's cumulative P&L over its receive time, in dollars, as one PNG."""
    ms, pnl = pnl_curve(records, starting_cash_cents)
    fig = Figure(figsize=(8, 4))  # no pyplot: no GUI backend, no global state
    ax = fig.subplots()
    if len(ms):
        minutes = (ms - ms[0]) / 60_000
        ax.step(minutes, pnl / 100, where="post")
    ax.axhline(0, color="grey", linewidth=0.8)
    ax.set_xlabel("minutes since the first decision")
    ax.set_ylabel("cumulative P&L (dollars)")
    total = pnl[-1] / 100 if len(pnl) else 0.0
    ax.set_title(f"Paper trading: cumulative P&L over the session ({total:+.2f} dollars)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    return path


def _by_market(rows: Iterable) -> dict[str, list]:
    grouped: dict[str, list] = {}
    for row in rows:
        grouped.setdefault(row.market, []).append(row)
    return grouped


def _cash(starting_cash_cents: StartingCash, market: str) -> int:
    if isinstance(starting_cash_cents, int):
        return starting_cash_cents
    return starting_cash_cents[market]
