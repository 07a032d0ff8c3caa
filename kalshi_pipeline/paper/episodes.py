"""One market's episode, played a step at a time and recorded: the paper trader's and the
backtest's one loop.

:class:`MarketEpisode` is the evaluation's rollout (:func:`~kalshi_pipeline.training.
evaluation.rollouts.rollout`: ``reset(seed=0)``, then the policy's action on each
observation) on a view that may grow. :meth:`~MarketEpisode.advance` plays every action
whose next step is known (or, at the session's end, the last), so the paper trader calls
it as steps arrive and the backtest once on a whole view, and both make their records
here, the same way.
"""

from __future__ import annotations

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.env.trading_env import MarketAgnosticKalshiEnv
from kalshi_pipeline.paper.records import Decision, FillRecord, MarketRecord, Outcome, Records
from kalshi_pipeline.training.evaluation.policies import Policy


class MarketEpisode:
    """``policy`` (model ``model``) trading ``view`` in the env under ``config``."""

    def __init__(
        self, view, config: EnvConfig, model: str, model_path: str, policy: Policy
    ) -> None:
        self.view = view
        self.market = view.market_ticker
        self.model = model
        self.policy = policy
        self.env = MarketAgnosticKalshiEnv([view], config)
        self.done = False
        self._step = 0
        self._observation, _ = self.env.reset(seed=0)
        self.record = MarketRecord(market=self.market, model=model, model_path=model_path)

    def start(self) -> Records:
        """The market's record and the decision at its first step."""
        records = Records(markets=[self.record])
        self._decide(records)
        return records

    def advance(self, final: bool = False) -> Records:
        """Play every chosen action whose next step the view holds; with ``final`` (the
        session closed) the last one too. The outcomes, fills and next decisions."""
        records = Records()
        while not self.done and (final or self._step + 1 < len(self.view)):
            self._play(records)
        return records

    def stop(self, reason: str) -> Records:
        """End the episode early (its market was rejected): no more decisions."""
        self.done = True
        self.record = MarketRecord(
            market=self.market, model=self.model, model_path=self.record.model_path,
            ended=True, reason=reason,
        )  # fmt: skip
        return Records(markets=[self.record])

    def _decide(self, records: Records) -> None:
        self._action = int(self.policy(self._observation))
        records.decisions.append(
            Decision(
                market=self.market, step=self._step,
                step_ms=int(self.view.timestamps_ms[self._step]), model=self.model,
                action=self._action, observation=self._observation.tobytes(),
            )
        )  # fmt: skip

    def _play(self, records: Records) -> None:
        step = self._step
        observation, reward, terminated, truncated, info = self.env.step(self._action)
        records.outcomes.append(
            Outcome(
                market=self.market, step=step, reward=float(reward),
                cash_cents=int(info["cash_cents"]), position=int(info["position"]),
                value_cents=int(info["portfolio_value_cents"]), filled=int(info["filled"]),
                fees_cents=int(info["fees_cents"]), terminated=bool(terminated),
            )
        )  # fmt: skip
        for fill in info.get("fills", ()):
            records.fills.append(
                FillRecord(
                    market=self.market, step=step, order_id=fill.order_id,
                    time_ms=fill.time_ms, side=fill.side, price_cents=fill.price_cents,
                    contracts=fill.contracts, maker=fill.maker, fee_cents=fill.fee_cents,
                )
            )  # fmt: skip
        if terminated or truncated:
            reason = "the view ended" if self._step + 1 >= len(self.view) else "cannot trade"
            records.extend(self.stop(reason))
            return
        self._step = info["step"]
        self._observation = observation
        self._decide(records)
