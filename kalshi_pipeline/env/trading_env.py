"""MarketAgnosticKalshiEnv: trade one Kalshi market through one recorded session.

The class docstring is the env's spec (docs/environment.md explains it): actions,
execution and fees (:mod:`kalshi_pipeline.env.execution`), the 52 observations
(:mod:`kalshi_pipeline.env.observation`), the reward on the portfolio's value
(:mod:`kalshi_pipeline.env.portfolio`) and when an episode ends. ``EnvConfig`` holds its
arguments; which view an episode plays is its sampler's choice
(:mod:`kalshi_pipeline.env.samplers`).
"""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.env.episode_replay import replay_data
from kalshi_pipeline.env.execution import ACTION_NAMES, BUY_NO, HOLD, SELL_YES, execute
from kalshi_pipeline.env.fees import FeeModel
from kalshi_pipeline.env.observation import (
    OBSERVATION_BOUND,
    OBSERVATION_NAMES_OF,
    OBSERVATION_SIZE,
    check_layout,
    observation_layout,
    observe,
)
from kalshi_pipeline.env.portfolio import NO_ORDER, Portfolio
from kalshi_pipeline.env.resting_orders import RestingOrders, maker_rules
from kalshi_pipeline.env.samplers import SequentialSampler, ViewSampler
from kalshi_pipeline.market.views import MarketSessionView

_MIN_TRADE_CENTS = 2  # one contract at 1 cent plus its 1 cent fee


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

    ``execution="maker"`` gives the same five actions resting limit orders instead
    (:mod:`kalshi_pipeline.env.resting_orders`, docs/environment.md, "Maker execution"):

    | Rule      | Maker mode                                                           |
    |-----------|----------------------------------------------------------------------|
    | slots     | one order on the YES bids (BUY_YES, SELL_NO), one on the NO bids     |
    |           | (BUY_NO, SELL_YES)                                                   |
    | action    | up to ``order_size`` at the touch of its book now, replacing its     |
    |           | slot's order (cancelled; the new one joins the back of the queue)    |
    | HOLD      | leaves resting orders alone                                          |
    | latency   | an order reaches the book ``latency_ms`` after the decision, a       |
    |           | cancel ``cancel_latency_ms``; constant or lognormal (the env's seed);|
    |           | a replacement never arrives before a cancel sent earlier for its slot|
    | post-only | an order that would cross the book on arrival is cancelled          |
    | queue     | it joins behind the visible size at its price; ``queue_model`` moves |
    |           | the queue ahead on trades there and on the level's size changes      |
    | fills     | trade contracts beyond the queue ahead fill it, partly if need be;   |
    |           | a trade through its price fills up to its contracts (or all that is  |
    |           | left: ``trade_through_fills``); the other book crossing it fills the |
    |           | rest; always at its price                                            |
    | fees      | maker fee ``ceil(0.0175 * C * P * (1 - P))`` per fill (0 for fee     |
    |           | type ``quadratic``); an unfilled order costs nothing                 |
    | expiry    | removed after ``order_expiry_steps`` steps, and at the episode's end |
    | cash      | a resting order reserves leaves x (price + one contract's maker fee);|
    |           | a buy is sized to the unreserved cash when it arrives                |
    | position  | position plus its slot's resting order within ``max_position``; a    |
    |           | sell rests only against contracts held                               |

    Fees of both modes come from ``fee_type``, ``fee_multiplier`` and ``series_fees``
    (:mod:`kalshi_pipeline.env.fees`: Kalshi's fee types, per series).

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

    In maker mode rows 46-51 are each resting order's place instead (buying power and
    the last order's values say nothing of an order that rests), YES-bid order first:

    | Num    | Observation                  | Meaning                                  |
    |--------|------------------------------|------------------------------------------|
    | 46, 49 | bid_/ask_order_distance      | (touch - order price) / 100 on its book  |
    | 47, 50 | bid_/ask_order_queue         | queue ahead / the level's visible size   |
    |        |                              | (1 in flight; -1 without an order)       |
    | 48, 51 | bid_/ask_order_age           | log1p(steps since placed) / 5            |

    Without an order a slot shows distance 0, queue -1, age 0; an empty book is a touch of
    0 (the details: :meth:`~.resting_orders.RestingOrders.observation`). ``env.observation_names``
    lists the mode's 52 names and ``env.observation_layout`` names its layout with the
    versions of both parts (:func:`~kalshi_pipeline.env.observation.observation_layout`).

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
    ``view`` is one view or a sequence of views; ``config`` an :class:`EnvConfig` (its
    fields, defaults and help: :mod:`kalshi_pipeline.env.env_config`); ``sampler`` a
    :class:`~kalshi_pipeline.env.samplers.ViewSampler` over the views (default: each in
    turn). ``set_market_view(view)`` plays that view at the next ``reset()``. Every view
    must carry the feature layout this env was built for. Registered with Gymnasium as
    ``kalshi_pipeline/MarketAgnosticKalshi-v0``. ``info``: ``portfolio_value_cents``,
    ``cash_cents``, ``position``, ``step``, ``view`` (``"<session>/<ticker>"``); ``step()``
    adds ``filled`` (signed contracts), ``fees_cents`` and in maker mode ``fills`` (each a
    :class:`~kalshi_pipeline.env.resting_orders.MakerFill`).

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
        self.config = config = config or EnvConfig()
        self.render_mode = render_mode
        self._fee_model = FeeModel.from_env(config)
        self._rules = maker_rules(config) if config.execution == "maker" else None
        self._orders: RestingOrders | None = None
        self._replay: dict[int, tuple] = {}  # maker mode: each view's replay_data, by id
        self.observation_names = OBSERVATION_NAMES_OF[config.execution]
        self.observation_layout = observation_layout(config.execution)
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
            check_layout(v)
        sampler = sampler or SequentialSampler(len(views))
        # Check before assigning: a refused call must leave the env as it was.
        if sampler.n_views != len(views):
            raise ValueError(f"sampler covers {sampler.n_views} views, not {len(views)}")
        self.views = list(views)
        self.sampler = sampler
        self._replay = {}
        self._next_view: MarketSessionView | None = None

    def set_sampler(self, sampler: ViewSampler) -> None:
        if sampler.n_views != len(self.views):
            raise ValueError(f"sampler covers {sampler.n_views} views, not {len(self.views)}")
        self.sampler = sampler

    def set_market_view(self, view: MarketSessionView) -> None:
        """Play ``view`` at the next ``reset()`` (then the sampler takes over again)."""
        check_layout(view)
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
        if self._rules is not None:
            if (cached := self._replay.get(id(view))) is None or cached[0] is not view:
                cached = self._replay[id(view)] = view, replay_data(view)
            self._orders = RestingOrders(
                cached[1], self._rules, self._fees, self._portfolio, self.np_random
            )
        self._t = 0
        return self._observation(0), self._info(0)

    def step(self, action):
        action = int(action)
        t = self._t
        portfolio = self._portfolio
        terminated = t + 1 >= len(self._yes_bid)  # a growing view's too (paper trading)
        if self._orders is not None:
            filled, fees, fills = self._orders.step(action, t, terminated)
        elif action == HOLD:
            filled = fees = 0
            portfolio.last_order = NO_ORDER
        else:
            filled, fees = self._trade(action, t)
        # The action met step t's book; the portfolio is valued at the next step's (or at
        # the last one's after the last action), and the reward is its change in dollars.
        self._t = now = t if terminated else t + 1
        change = portfolio.revalue(portfolio.value_at(self._yes_bid[now], self._no_bid[now]))
        reward = change / 100 * self.config.reward_scale
        if portfolio.position == 0 and portfolio.cash < _MIN_TRADE_CENTS:
            terminated = True
        info = self._info(now)
        info["filled"], info["fees_cents"] = filled, fees
        if self._orders is not None:
            info["fills"] = fills
        return self._observation(now), float(reward), terminated, False, info

    def render(self):
        if self.render_mode != "ansi":
            return None
        t, portfolio = self._t, self._portfolio
        return (
            f"{self._view_key} step {t}/{len(self._yes_bid) - 1}: YES bid {self._yes_bid[t]} "
            f"NO bid {self._no_bid[t]} | position {portfolio.position:+d} cash "
            f"{portfolio.cash / 100:.2f} value {portfolio.value / 100:.2f}"
        )

    # -- internals -------------------------------------------------------------------------
    def _load(self, view: MarketSessionView) -> None:
        self._view_key = view.key
        self._features = view.features
        self._yes_bid = view.best_yes_bid.tolist()
        self._no_bid = view.best_no_bid.tolist()
        self._yes_prices, self._yes_sizes = view.yes_bid_prices, view.yes_bid_sizes
        self._no_prices, self._no_sizes = view.no_bid_prices, view.no_bid_sizes
        self._fees = self._fee_model.for_market(view.market_ticker)

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
            limit_slippage_cents=c.limit_slippage_cents, taker_fee=self._fees.taker,
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
            resting=None if self._orders is None else self._orders.observation(t),
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
