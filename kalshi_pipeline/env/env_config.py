"""EnvConfig: the arguments of the trading environment, with their defaults and help.

Each field is declared with :func:`~kalshi_pipeline.config_fields.described`, so the
command line and Dagster's run config show the same help; the rules they set are the
environment's docstring (:class:`~kalshi_pipeline.env.trading_env.MarketAgnosticKalshiEnv`)
and docs/environment.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Self

from kalshi_pipeline.config_fields import CHOICES, Values, described
from kalshi_pipeline.env.fees import FEE_TYPES
from kalshi_pipeline.env.latency import LATENCY_DISTRIBUTIONS
from kalshi_pipeline.env.queue import QUEUE_MODELS

EXECUTION_MODES = ("taker", "maker")
TRADE_THROUGH_FILLS = ("traded", "all")


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
    trade_through_fills: str = described(
        "traded",
        "maker: a trade through an order's price fills at most its own contracts (traded), "
        "or all the order has left, as hftbacktest does (all)",
        choices=TRADE_THROUGH_FILLS,
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

    def __post_init__(self) -> None:
        """Refuse a setting outside its choices, or an order size, position limit or expiry
        below 1, naming it. The ranges of the fee, latency and queue settings are checked
        by their own models when an environment is built (the fees in both modes, the
        latency and queue in maker mode only), and first by the command line and the
        pipeline's config."""
        for f in fields(self):
            value, choices = getattr(self, f.name), f.metadata.get(CHOICES)
            if choices and value not in choices:
                raise ValueError(f"env {f.name} must be one of {', '.join(choices)}, got {value!r}")
        for name in ("order_size", "max_position", "order_expiry_steps"):
            if getattr(self, name) < 1:
                raise ValueError(f"env {name} must be at least 1, got {getattr(self, name)!r}")

    def to_json(self) -> dict:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping) -> Self:
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items()})
