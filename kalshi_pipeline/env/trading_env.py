"""MarketAgnosticKalshiEnv: trade one Kalshi market through one recorded session.

The class docstring is the env's spec (docs/environment.md explains it): actions,
execution and fees (:mod:`kalshi_pipeline.env.execution`), the 52 observations
(:mod:`kalshi_pipeline.env.observation`), the reward on the portfolio's value
(:mod:`kalshi_pipeline.env.portfolio`) and when an episode ends. ``EnvConfig`` holds its
arguments; which view an episode plays is its sampler's choice
(:mod:`kalshi_pipeline.env.samplers`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Self

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from kalshi_pipeline.config_fields import Values, described
from kalshi_pipeline.env.execution import ACTION_NAMES, BUY_NO, HOLD, SELL_YES, execute
from kalshi_pipeline.env.observation import OBSERVATION_BOUND, OBSERVATION_SIZE, observe
from kalshi_pipeline.env.portfolio import NO_ORDER, Portfolio
from kalshi_pipeline.env.samplers import SequentialSampler, ViewSampler
from kalshi_pipeline.market.features import FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION
from kalshi_pipeline.market.views import MarketSessionView

# The choices of EnvConfig's execution settings (checked by their own modules when built).
EXECUTION_MODES = ("taker", "maker")
LATENCY_DISTRIBUTIONS = ("constant", "lognormal")
QUEUE_MODELS = ("risk_averse", "log_prob", "power_prob")
FEE_TYPES = ("quadratic", "quadratic_with_maker_fees")
_MIN_TRADE_CENTS = 2  # one contract at 1 cent plus its 1 cent fee


@dataclass(frozen=True, kw_only=True)
class EnvConfig:
    """Arguments of the environment (see the class docstring)."""

    starting_cash_cents: int = 10_000
    order_size: int = 10
    max_position: int = 100
    limit_slippage_cents: int = 2
    reward_scale: float = 1.0
    # How orders meet the book (the class docstring, "Execution and Fees"). The fields
    # below ``execution`` are read in maker mode only, except the fees, read by both.
    execution: str = described(
        "taker",
        "taker crosses the spread at once; maker rests a limit order at the touch",
        choices=EXECUTION_MODES,
    )
    order_expiry_steps: int = described(
        20, "maker: a resting order is removed after this many steps", values=Values.POSITIVE_INT
    )
    latency_ms: int = described(
        100,
        "maker: milliseconds from a decision to its order reaching the book",
        values=Values.NON_NEGATIVE_INT,
    )
    cancel_latency_ms: int | None = described(
        None,
        "maker: milliseconds from a decision to its cancel reaching the book (default: latency-ms)",
        values=Values.NON_NEGATIVE_INT,
    )
    latency_distribution: str = described(
        "constant",
        "maker: constant latencies, or lognormal ones with their median at the setting",
        choices=LATENCY_DISTRIBUTIONS,
    )
    latency_sigma: float = described(
        0.5, "maker: the lognormal latency's shape", values=Values.POSITIVE_FLOAT
    )
    queue_model: str = described(
        "risk_averse",
        "maker: how the queue ahead of a resting order moves (risk_averse: only trades advance it)",
        choices=QUEUE_MODELS,
    )
    queue_power: float = described(
        2.0, "maker: the power of the power_prob queue model", values=Values.POSITIVE_FLOAT
    )
    fee_type: str = described(
        "quadratic_with_maker_fees",
        "Kalshi's fee type of a series not named in series-fees (quadratic: no maker fee)",
        choices=FEE_TYPES,
    )
    fee_multiplier: float = described(
        1.0, "the fee multiplier of a series not named in series-fees", values=Values.POSITIVE_FLOAT
    )
    series_fees: tuple[str, ...] = described(
        (),
        "fees of named series, each SERIES:FEE_TYPE or SERIES:FEE_TYPE:MULTIPLIER",
        metavar="SERIES:FEE_TYPE[:MULTIPLIER]",
    )

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})


class MarketAgnosticKalshiEnv(gym.Env):
    """
    ## Description

    One episode trades one market (a :class:`MarketSessionView`) through one recorded
    session, step by step, against the real displayed book. The agent never sees the
    ticker: observations are market-agnostic, so one policy trades any market. Given
    several views, the env plays a new one at every ``reset()``, chosen by its view
    sampler (:mod:`kalshi_pipeline.env.samplers`).

    ## Action Space

    ``Discrete(5)``: 0 HOLD, 1 BUY_YES, 2 SELL_YES, 3 BUY_NO, 4 SELL_NO, each for up to
    ``order_size`` contracts.

    ## Execution and Fees

    As docs/environment.md ("Execution") has it, implemented in
    :mod:`kalshi_pipeline.env.execution`:
    buys walk the displayed asks (YES asks are ``100 - NO bid``) up to
    ``best ask + limit_slippage_cents`` and cancel the rest; buying a side nets held
    contracts of the other side first; sells only sell contracts actually held, walking
    the bids down to ``best bid - limit_slippage_cents``; buys are sized down to cash
    (fees included) and ``max_position``; each level filled pays Kalshi's taker fee
    ``ceil(0.07 * C * P * (1 - P))`` dollars rounded up to the cent; liquidity taken is
    gone for the rest of the step. Positive position = YES contracts, negative = NO.
    Cash is integer cents and never goes negative.

    ## Observation Space

    ``Box(-5, 5, (52,), float32)`` (finite, so that Gymnasium's checker is content; the
    unbounded portfolio ratios are clipped to it). Rows 0-35 are the view's precomputed features
    (their formulas and ranges: :mod:`kalshi_pipeline.market.features`); rows 36-51 are
    computed per step from the portfolio and the last order. "Order" below is
    ``order_size * 100`` cents, the most one order can move.

    | Num | Observation        | Meaning                                                 |
    |-----|--------------------|---------------------------------------------------------|
    | 0   | yes_bid            | best YES bid / 100                                      |
    | 1   | yes_ask            | YES ask (100 - best NO bid) / 100                       |
    | 2   | spread             | (ask - bid) / 100                                       |
    | 3   | relative_spread    | spread / (bid + ask)                                    |
    | 4   | spread_regime      | 0 tight (<= 3c), 0.5 medium (<= 10c), 1 wide           |
    | 5   | mid                | mid / 100                                               |
    | 6   | microprice         | size-weighted mid / 100                                 |
    | 7   | micro_edge         | (microprice - mid) / 20 cents                           |
    | 8   | top_imbalance      | (bid size - ask size) / sum at the top of book          |
    | 9   | depth_imbalance    | the same over the top 5 levels                          |
    | 10  | volume_imbalance   | the same over all resting size                          |
    | 11  | log_yes_bid_size   | log1p(best YES bid size) / 10                           |
    | 12  | log_yes_ask_size   | log1p(YES ask size) / 10                                |
    | 13  | log_yes_depth      | log1p(top-5 YES bid size) / 12                          |
    | 14  | log_no_depth       | log1p(top-5 NO bid size) / 12                           |
    | 15  | log_total_volume   | log1p(all resting size) / 14                            |
    | 16  | yes_concentration  | best YES bid size / all YES bid size                    |
    | 17  | no_concentration   | best NO bid size / all NO bid size                      |
    | 18  | yes_levels         | occupied top-5 YES levels / 5                           |
    | 19  | no_levels          | occupied top-5 NO levels / 5                            |
    | 20  | taker_fee          | fee of one contract at the ask, cents / 2               |
    | 21  | log_ask_depth_2c   | log1p(size buyable within 2c of the ask) / 10           |
    | 22  | yes_level_gap      | best - second YES bid price, / 100                      |
    | 23  | no_level_gap       | best - second NO bid price, / 100                       |
    | 24  | yes_depth_center   | best - size-weighted top-5 YES bid price, / 100         |
    | 25  | no_depth_center    | the same on the NO bids                                 |
    | 26  | log_gap            | log1p(ms since the market's previous update) / 15       |
    | 27  | activity_10s       | log1p(updates in the last 10 s) / 5                     |
    | 28  | activity_5min      | log1p(updates in the last 5 min) / 8                    |
    | 29  | activity_burst     | log(10 s rate / 5 min rate) / 4                         |
    | 30  | log_mean_gap       | log1p(mean of the last 20 gaps, ms) / 15                |
    | 31  | momentum_short     | mid change over 5 steps, cents / 10                     |
    | 32  | momentum_long      | mid change over 30 steps, cents / 30                    |
    | 33  | volatility_regime  | std of mid changes over 20 steps, cents / 5             |
    | 34  | price_stability    | share of the last 20 steps without a mid change         |
    | 35  | market_age         | log1p(seconds since the market's first update) / 10     |
    | 36  | cash_ratio         | cash / starting cash                                    |
    | 37  | exposure           | position value / portfolio value                        |
    | 38  | signed_position    | position / max_position (YES > 0, NO < 0)               |
    | 39  | unrealized_pnl     | (position value - its cost) / order                     |
    | 40  | total_return       | (portfolio value - starting cash) / starting cash      |
    | 41  | average_entry      | average price paid for the position / 100 (0 if flat)  |
    | 42  | entry_edge         | (held side's bid - average entry) / 100 (0 if flat)     |
    | 43  | holding_time       | log1p(steps since the position was opened) / 5          |
    | 44  | drawdown           | (peak portfolio value - value) / starting cash          |
    | 45  | fees_paid          | fees paid this episode / order                          |
    | 46  | buying_power       | min(cash / order, 1)                                    |
    | 47  | last_action        | last action / 4                                         |
    | 48  | last_fill_ratio    | contracts filled / requested by the last action         |
    | 49  | last_fill_price    | average price of the last fill / 100 (0 if none)        |
    | 50  | last_fee           | fee of the last fill, cents / 10                        |
    | 51  | steps_since_fill   | log1p(steps since the last fill) / 5                    |

    ## Rewards

    The change in portfolio value since the previous step, in dollars, times
    ``reward_scale``, from the very first step. Portfolio value = cash + the position
    valued at the bid of the held side (YES at the YES bid, NO at the NO bid): never at
    the mid, and never written off at the last step. Rewards therefore sum to the final
    value minus the starting cash; HOLD on an unchanged book earns exactly 0; a round trip
    at unchanged prices loses exactly the spread plus fees.

    ## Starting State

    Flat (no position), ``starting_cash_cents`` in cash, at the view's first step.

    ## Episode End

    1. Termination: the view's last step has been traded (an episode has ``len(view)``
       steps; the action at step ``t`` meets the book of step ``t``, and the reward values
       the portfolio at step ``t + 1``, or at the last step after the last action).
    2. Termination: the portfolio can no longer trade (flat with under 2 cents).
    There is no truncation.

    ## Arguments

    ``MarketAgnosticKalshiEnv(view, config=None, sampler=None, render_mode=None)``:
    ``view`` is one view or a sequence of views; ``config`` an :class:`EnvConfig`
    (``starting_cash_cents=10_000``, ``order_size=10``, ``max_position=100``,
    ``limit_slippage_cents=2``, ``reward_scale=1.0``); ``sampler`` a
    :class:`~kalshi_pipeline.env.samplers.ViewSampler` over the views (default:
    sequential, one episode per view). ``set_market_view(view)`` plays that view at the
    next ``reset()``. Every view must carry the feature layout this env was built for.
    Registered with Gymnasium as ``kalshi_pipeline/MarketAgnosticKalshi-v0``.

    ``info`` of ``reset()`` and ``step()``: ``portfolio_value_cents``, ``cash_cents``,
    ``position``, ``step`` and ``view`` (``"<session>/<ticker>"``); ``step()`` adds
    ``filled`` (signed contracts) and ``fees_cents``.

    ## Example

    >>> from kalshi_pipeline.env import MarketAgnosticKalshiEnv
    >>> from kalshi_pipeline.market import build_market_views
    >>> from kalshi_pipeline.sources.simulator import SimulatorConfig, simulate_session
    >>> views = build_market_views(simulate_session(1, seed=0, config=SimulatorConfig(markets=3)))
    >>> env = MarketAgnosticKalshiEnv(views)
    >>> obs, info = env.reset(seed=0)
    >>> obs.shape, obs.dtype, info["cash_cents"], info["position"]
    ((52,), dtype('float32'), 10000, 0)
    >>> obs, reward, terminated, truncated, info = env.step(0)
    >>> reward
    0.0
    """

    metadata = {"render_modes": ["ansi"], "render_fps": 4}

    def __init__(
        self,
        view: MarketSessionView | Sequence[MarketSessionView],
        config: EnvConfig | None = None,
        sampler: ViewSampler | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.config = config or EnvConfig()
        self.render_mode = render_mode
        self.observation_space = spaces.Box(
            -OBSERVATION_BOUND, OBSERVATION_BOUND, (OBSERVATION_SIZE,), np.float32
        )
        self.action_space = spaces.Discrete(len(ACTION_NAMES))
        self.views: list[MarketSessionView] = []
        self.set_views([view] if isinstance(view, MarketSessionView) else list(view), sampler)
        self._load(self.views[0])

    # -- views -------------------------------------------------------------------------
    def set_views(
        self, views: Sequence[MarketSessionView], sampler: ViewSampler | None = None
    ) -> None:
        """Replace the views (and their sampler) from the next ``reset()`` on."""
        if not views:
            raise ValueError("the environment needs at least one view")
        for v in views:
            _check_layout(v)
        sampler = sampler or SequentialSampler(len(views))
        # Check before assigning: a refused call must leave the env as it was.
        if sampler.n_views != len(views):
            raise ValueError(f"sampler covers {sampler.n_views} views, not {len(views)}")
        self.views = list(views)
        self.sampler = sampler
        self._next_view: MarketSessionView | None = None

    def set_sampler(self, sampler: ViewSampler) -> None:
        if sampler.n_views != len(self.views):
            raise ValueError(f"sampler covers {sampler.n_views} views, not {len(self.views)}")
        self.sampler = sampler

    def set_market_view(self, view: MarketSessionView) -> None:
        """Play ``view`` at the next ``reset()`` (then the sampler takes over again)."""
        _check_layout(view)
        self._next_view = view

    def sampler_call(self, method: str, *args):
        """Call a sampler method, e.g. ``vec_env.env_method("sampler_call", "set_stage", 2)``."""
        return getattr(self.sampler, method)(*args)

    @property
    def episode_counts(self) -> np.ndarray:
        """Episodes started per view so far (index = position in ``views``)."""
        return self.sampler.episode_counts.copy()

    # -- gymnasium API ---------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict | None = None):
        super().reset(seed=seed)
        if seed is not None:
            self.sampler.restart()
        if self._next_view is not None:
            view, self._next_view = self._next_view, None
        else:
            view = self.views[self.sampler.next_index(self.np_random)]
        self._load(view)
        self._portfolio = Portfolio(self.config.starting_cash_cents)
        self._t = 0
        return self._observation(0), self._info(0)

    def step(self, action):
        action = int(action)
        t = self._t
        portfolio = self._portfolio
        if action == HOLD:
            filled = fees = 0
            portfolio.last_order = NO_ORDER
        else:
            filled, fees = self._trade(action, t)
        terminated = t + 1 >= self._length
        # The action met step t's book; the portfolio is valued at the next step's (or at
        # the last one's after the last action), and the reward is its change in dollars.
        self._t = now = t if terminated else t + 1
        change = portfolio.revalue(portfolio.value_at(self._yes_bid[now], self._no_bid[now]))
        reward = change / 100 * self.config.reward_scale
        if portfolio.position == 0 and portfolio.cash < _MIN_TRADE_CENTS:
            terminated = True
        info = self._info(now)
        info["filled"], info["fees_cents"] = filled, fees
        return self._observation(now), float(reward), terminated, False, info

    def render(self):
        if self.render_mode != "ansi":
            return None
        t, portfolio = self._t, self._portfolio
        return (
            f"{self._view_key} step {t}/{self._length - 1}: YES bid {self._yes_bid[t]} "
            f"NO bid {self._no_bid[t]} | position {portfolio.position:+d} cash "
            f"{portfolio.cash / 100:.2f} value {portfolio.value / 100:.2f}"
        )

    # -- internals -------------------------------------------------------------------------
    def _load(self, view: MarketSessionView) -> None:
        self._view_key = view.key
        self._length = len(view)
        self._features = view.features
        self._yes_bid = view.best_yes_bid.tolist()
        self._no_bid = view.best_no_bid.tolist()
        self._yes_prices, self._yes_sizes = view.yes_bid_prices, view.yes_bid_sizes
        self._no_prices, self._no_sizes = view.no_bid_prices, view.no_bid_sizes

    def _trade(self, action: int, t: int) -> tuple[int, int]:
        """Send ``action``'s order to step ``t``'s book and book the fill: (signed
        contracts filled, fees in cents)."""
        c, portfolio = self.config, self._portfolio
        # An order only ever touches one book: build just that one.
        uses_yes_bids = action in (SELL_YES, BUY_NO)
        yes_bids = self._levels(self._yes_prices, self._yes_sizes, t) if uses_yes_bids else []
        no_bids = [] if uses_yes_bids else self._levels(self._no_prices, self._no_sizes, t)
        fill = execute(
            action, portfolio.position, portfolio.cash, yes_bids, no_bids,
            order_size=c.order_size, max_position=c.max_position,
            limit_slippage_cents=c.limit_slippage_cents,
        )  # fmt: skip
        if fill.contracts:
            portfolio.apply(fill, t)
        portfolio.last_order = (
            action / 4,
            fill.filled / fill.requested if fill.requested else 0.0,
            fill.average_price_cents / 100,
            fill.fees_cents / 10,
        )
        return fill.contracts, fill.fees_cents

    @staticmethod
    def _levels(prices: np.ndarray, sizes: np.ndarray, t: int) -> list[tuple[int, int]]:
        return [(p, s) for p, s in zip(prices[t].tolist(), sizes[t].tolist(), strict=True) if s > 0]

    def _observation(self, t: int) -> np.ndarray:
        c, portfolio = self.config, self._portfolio
        mark = self._yes_bid[t] if portfolio.position > 0 else self._no_bid[t]
        return observe(
            self._features[t], portfolio, t, mark,
            starting_cash_cents=c.starting_cash_cents, order_size=c.order_size,
            max_position=c.max_position,
        )  # fmt: skip

    def _info(self, t: int) -> dict:
        portfolio = self._portfolio
        return {
            "portfolio_value_cents": portfolio.value,
            "cash_cents": portfolio.cash,
            "position": portfolio.position,
            "step": t,
            "view": self._view_key,
        }


def _check_layout(view: MarketSessionView) -> None:
    if (view.feature_layout, view.feature_layout_version) != (
        FEATURE_LAYOUT,
        FEATURE_LAYOUT_VERSION,
    ):
        raise ValueError(
            f"view {view.key} has feature layout {view.feature_layout} "
            f"v{view.feature_layout_version}; this environment needs {FEATURE_LAYOUT} "
            f"v{FEATURE_LAYOUT_VERSION}"
        )
