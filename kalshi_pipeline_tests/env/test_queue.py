"""Queue position models (``kalshi_pipeline.env.queue``), rule by rule with hand-computed numbers.

``front`` is the queue ahead of the order. The probability models split a level's
decrease ``chg`` (beyond the trades already seen) with ``prob = f(back) / (f(back) +
f(front))``: ``est = front - (1 - prob) * chg + min(back - prob * chg, 0)``, capped at the
level's new size.
"""

from __future__ import annotations

import dataclasses
import math

import pytest

from kalshi_pipeline.config_fields import CHOICES
from kalshi_pipeline.env.env_config import EnvConfig
from kalshi_pipeline.env.queue import (
    QUEUE_MODELS,
    LogProbQueue,
    PowerProbQueue,
    QueuePosition,
    RiskAverseQueue,
    queue_model,
    rust_min,
    rust_round,
)

ALL_MODELS = [RiskAverseQueue(), LogProbQueue(), PowerProbQueue(2.0)]


@pytest.mark.parametrize(
    ("x", "rounded"),
    [
        (0.5, 1.0),
        (1.5, 2.0),
        (2.5, 3.0),
        (-0.5, -1.0),
        (-2.5, -3.0),
        (0.49999999999999994, 0.0),
        (2.4, 2.0),
        (-2.6, -3.0),
        (0.0, 0.0),
    ],
)
def test_rust_round_is_half_away_from_zero(x, rounded):
    assert rust_round(x) == rounded


def test_rust_round_keeps_nan_and_infinities():
    assert math.isnan(rust_round(math.nan))
    assert rust_round(-math.inf) == -math.inf


def test_rust_min_returns_the_other_operand_of_a_nan():
    assert rust_min(math.nan, 3.0) == 3.0
    assert rust_min(3.0, math.nan) == 3.0
    assert rust_min(2.0, 3.0) == 2.0 and rust_min(3.0, -1.0) == -1.0


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.name)
def test_join_puts_the_order_behind_the_visible_size(model):
    q = model.join(7)
    assert (q.front, q.traded) == (7.0, 0.0)
    assert type(q.front) is float
    assert model.ahead(q) == 7.0


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.name)
def test_trades_advance_the_order_then_fill_the_excess_then_fill_in_full(model):
    q = model.join(5)
    model.trade(q, 3)
    assert q.front == 2.0 and model.filled(q) == 0 and model.ahead(q) == 2.0
    model.trade(q, 2)  # exactly the queue ahead: the order is at the front, unfilled
    assert model.filled(q) == 0 and model.ahead(q) == 0.0
    model.trade(q, 4)  # all four are beyond the queue
    assert q.front == -4.0 and model.ahead(q) == 0.0
    assert model.filled(q) == 4 and q.front == 0.0
    assert model.filled(q) == 0  # a fill is reported once
    model.trade(q, 3)  # later trades fill their whole count
    assert model.filled(q) == 3


@pytest.mark.parametrize("model", ALL_MODELS, ids=lambda m: m.name)
def test_one_trade_beyond_the_queue_fills_only_the_excess(model):
    q = model.join(5)
    model.trade(q, 8)
    assert model.filled(q) == 3
    assert q.front == 0.0


@pytest.mark.parametrize(("front", "fills"), [(-0.5, 1), (-1.5, 2), (-2.5, 3), (-0.4, 0)])
def test_fractional_fill_rounds_half_away_from_zero(front, fills):
    model = LogProbQueue()
    q = QueuePosition(front)
    assert model.filled(q) == fills
    assert q.front == (0.0 if fills else front)


def test_prob_models_count_the_traded_volume():
    model = LogProbQueue()
    q = model.join(10)
    model.trade(q, 3)
    model.trade(q, 1)
    assert (q.front, q.traded) == (6.0, 4.0)
    risk_averse = RiskAverseQueue()
    q = risk_averse.join(10)
    risk_averse.trade(q, 3)
    assert (q.front, q.traded) == (7.0, 0.0)


def test_risk_averse_depth_only_caps():
    model = RiskAverseQueue()
    q = model.join(10)
    model.depth(q, 15, 12)  # 3 left the level: the order does not move
    assert q.front == 10.0
    model.depth(q, 12, 4)  # the level is now smaller than the queue ahead
    assert q.front == 4.0
    model.depth(q, 4, 20)  # a growing level leaves it
    assert q.front == 4.0


def test_log_prob_decrease_moves_the_front_by_the_formula():
    model = LogProbQueue()
    q = model.join(10)
    # 5 joined behind (15 at the level), then 6 left: back = 5,
    # prob = ln 6 / (ln 6 + ln 11) = 1.791759 / 4.189654 = 0.427663,
    # est = 10 - 0.572337 * 6 + min(5 - 2.565977, 0) = 6.565977.
    model.depth(q, 15, 9)
    assert q.front == pytest.approx(6.565977, abs=1e-6)
    prob = math.log(1.0 + 5.0) / (math.log(1.0 + 5.0) + math.log(1.0 + 10.0))
    assert q.front == 10.0 - (1.0 - prob) * 6.0 + min(5.0 - prob * 6.0, 0.0)


def test_power_prob_decrease_moves_the_front_by_the_formula():
    model = PowerProbQueue(2.0)
    q = model.join(10)
    # back = 5, prob = 25 / (25 + 100) = 0.2, est = 10 - 0.8 * 6 + min(5 - 1.2, 0) = 5.2.
    model.depth(q, 15, 9)
    assert q.front == pytest.approx(5.2, abs=1e-12)
    cubic = PowerProbQueue(3.0)
    q = cubic.join(10)
    # prob = 125 / (125 + 1000) = 1/9, est = 10 - (8/9) * 6 = 4.666667.
    cubic.depth(q, 15, 9)
    assert q.front == pytest.approx(14 / 3, abs=1e-12)


def test_prob_decrease_beyond_the_queue_behind_takes_from_the_front():
    model = PowerProbQueue(2.0)
    q = model.join(2)
    # 8 behind, then the level empties (10 left): prob = 64 / 68 = 0.941176,
    # est = 2 - 0.058824 * 10 + min(8 - 9.411765, 0) = 2 - 0.588235 - 1.411765 = 0.
    model.depth(q, 10, 0)
    assert q.front == pytest.approx(0.0, abs=1e-12)


@pytest.mark.parametrize("model", [LogProbQueue(), PowerProbQueue(2.0)], ids=lambda m: m.name)
def test_prob_increase_only_caps(model):
    q = model.join(10)
    model.depth(q, 10, 15)
    assert q.front == 10.0
    model.trade(q, 4)  # front 6, traded 4
    model.depth(q, 15, 13)  # chg = 2 - 4 < 0: trades explain more than the decrease
    assert (q.front, q.traded) == (6.0, 0.0)
    model.depth(q, 13, 5)  # chg = 8 > 0, prob moves it, and the cap of 5 applies
    assert q.front <= 5.0


@pytest.mark.parametrize("model", [LogProbQueue(), PowerProbQueue(2.0)], ids=lambda m: m.name)
def test_traded_volume_is_not_counted_twice(model):
    q = model.join(10)
    model.trade(q, 3)
    # the level lost exactly the 3 traded: chg = 0, the order stays at 7
    model.depth(q, 15, 12)
    assert (q.front, q.traded) == (7.0, 0.0)
    # the traded volume was reset: a later decrease of 2 is all cancellations
    model.depth(q, 12, 10)
    assert q.front < 7.0


def test_log_prob_nan_probability_sends_the_order_to_the_back():
    model = LogProbQueue()
    q = model.join(1)
    # 100 behind, 50 leave: prob = ln 101 / (ln 101 + ln 2) = 0.869421,
    # est = 1 - 0.130579 * 50 + min(100 - 43.471, 0) = -5.528940 (below the new size).
    model.depth(q, 101, 51)
    assert q.front == pytest.approx(-5.528940, abs=1e-6)
    # ln(1 - 5.53) is NaN as in Rust, so prob and est are NaN, and Rust's min(NaN, 40)
    # is 40: the order goes to the back of the level.
    model.depth(q, 51, 40)
    assert q.front == 40.0


def test_power_prob_fractional_power_of_a_negative_front_is_nan():
    model = PowerProbQueue(2.5)
    q = QueuePosition(-0.4)
    model.depth(q, 10, 8)  # (-0.4) ** 2.5 is NaN: the order goes to the back
    assert q.front == 8.0


def test_empty_level_with_nothing_ahead_stays_empty():
    model = PowerProbQueue(2.0)
    q = model.join(0)
    model.depth(q, 0, 0)  # 0 / 0 is NaN: front = min(NaN, 0) = 0
    assert q.front == 0.0


def test_queue_model_by_name():
    assert isinstance(queue_model("risk_averse"), RiskAverseQueue)
    assert isinstance(queue_model("log_prob"), LogProbQueue)
    power = queue_model("power_prob", power=3.0)
    assert isinstance(power, PowerProbQueue) and power.power == 3.0
    assert [queue_model(name).name for name in QUEUE_MODELS] == list(QUEUE_MODELS)
    with pytest.raises(ValueError, match="unknown queue model 'fifo'"):
        queue_model("fifo")
    for bad in (0.0, -1.0, math.nan, math.inf):
        with pytest.raises(ValueError, match="queue power"):
            queue_model("power_prob", power=bad)


def test_queue_models_are_the_env_configs_choices():
    (field,) = [f for f in dataclasses.fields(EnvConfig) if f.name == "queue_model"]
    assert field.metadata[CHOICES] == QUEUE_MODELS


# Sequences on one bid level at 50 (the first entry is the level when a buy of 10 joins);
# the cross-check below runs each through hftbacktest's partial-fill exchange.
SEQUENCES = {
    "nan_prob_sends_to_back": [
        ("depth", 1),
        ("depth", 101),
        ("depth", 51),
        ("depth", 40),
        ("trade", 1),
    ],
    "negative_front_fills_on_next_trade": [
        ("depth", 1),
        ("depth", 101),
        ("depth", 51),
        ("trade", 1),
    ],
    "cancel_ahead_then_trades": [
        ("depth", 10),
        ("depth", 15),
        ("depth", 9),
        ("trade", 6),
        ("trade", 1),
    ],
    "one_trade_past_the_queue": [("depth", 10), ("depth", 15), ("depth", 9), ("trade", 7)],
    "exact_queue_then_more": [("depth", 5), ("trade", 5), ("trade", 3)],
}
MODEL_SETTINGS = [("risk_averse", 2.0), ("log_prob", 2.0), ("power_prob", 2.0), ("power_prob", 2.5)]


def our_filled(name: str, power: float, sequence, order_size: int = 10) -> int:
    model = queue_model(name, power)
    level = sequence[0][1]
    q = model.join(level)
    filled = 0
    for kind, size in sequence[1:]:
        if kind == "depth":
            model.depth(q, level, size)
            level = size
        else:
            model.trade(q, size)
            filled += min(model.filled(q), order_size - filled)
    return filled


def hftbacktest_filled(
    hbt_module, name: str, power: float, sequence, order_size: int = 10
) -> float:
    import numpy as np

    h = hbt_module
    flags = h.EXCH_EVENT | h.LOCAL_EVENT
    rows = [(h.DEPTH_EVENT | h.SELL_EVENT | flags, 1000, 1000, 90.0, 1.0, 0, 0, 0.0)]
    for i, (kind, size) in enumerate(sequence):
        ts = 2000 + 1000 * i
        kind_flags = (
            h.DEPTH_EVENT | h.BUY_EVENT if kind == "depth" else h.TRADE_EVENT | h.SELL_EVENT
        )
        rows.append((kind_flags | flags, ts, ts, 50.0, float(size), 0, 0, 0.0))
    rows.append((h.DEPTH_EVENT | h.SELL_EVENT | flags, 99_000, 99_000, 91.0, 1.0, 0, 0, 0.0))
    asset = (
        h.BacktestAsset()
        .data(np.array(rows, dtype=h.event_dtype))
        .linear_asset(1.0)
        .constant_order_latency(0, 0)
        .tick_size(1.0)
        .lot_size(1.0)
        .partial_fill_exchange()
        .trading_value_fee_model(0.0, 0.0)
    )
    if name == "risk_averse":
        asset = asset.risk_adverse_queue_model()
    elif name == "log_prob":
        asset = asset.log_prob_queue_model()
    else:
        asset = asset.power_prob_queue_model(power)
    hbt = h.HashMapMarketDepthBacktest([asset])
    hbt.elapse(1500)  # past the first level event at 2000 (the clock starts at 1000)
    hbt.submit_buy_order(0, 1, 50.0, float(order_size), h.GTX, h.LIMIT, False)
    hbt.elapse(1000 * len(sequence))
    leaves = hbt.orders(0).get(1).leaves_qty
    hbt.close()
    return order_size - leaves


@pytest.mark.parametrize(("name", "power"), MODEL_SETTINGS)
@pytest.mark.parametrize("sequence", SEQUENCES.values(), ids=SEQUENCES.keys())
def test_fills_match_hftbacktest(name, power, sequence):
    hbt_module = pytest.importorskip("hftbacktest")
    assert our_filled(name, power, sequence) == hftbacktest_filled(
        hbt_module, name, power, sequence
    )


def test_the_cross_checked_sequences_tell_the_models_apart():
    # so that the cross-check above could fail: the models disagree on these sequences
    fills = {
        setting: [our_filled(*setting, s) for s in SEQUENCES.values()] for setting in MODEL_SETTINGS
    }
    assert fills[("risk_averse", 2.0)] == [0, 0, 0, 0, 3]
    assert fills[("log_prob", 2.0)] == [0, 7, 0, 0, 3]
    assert fills[("power_prob", 2.0)] == [0, 0, 2, 2, 3]
