"""The replay through hftbacktest 2.4.4 (:mod:`.hftbacktest_replay`), on its own.

Before the env's maker mode is compared with it (test_hftbacktest_differential.py), the
replay is checked against fills worked out by hand: joining the queue, trades using it
up, partial fills, the probabilistic queue models, a trade through, the book crossing,
post-only, entry latency, cancels, and the 2.4.4 pitfall it reports. The sessions are
hand-made (:mod:`.maker_sessions`, ``BOOK`` there) and built into views the way the
pipeline builds them.
"""

from __future__ import annotations

import math

import pytest

from kalshi_pipeline_tests.env.hftbacktest_replay import (
    ASK,
    BID,
    Fill,
    ReferencePitfall,
    Request,
    replay,
)
from kalshi_pipeline_tests.env.maker_sessions import (
    CANCELS_THEN_A_TRADE,
    NO,
    QUEUE_USED_UP,
    YES,
    prob_front,
    step_time_ms,
    steps_of,
    view_of_steps,
)


def new(step: int, slot: int, price: int, qty: int, order_id: int) -> Request:
    return Request(step, slot, price, qty, "new", order_id)


def cancel(step: int, order_id: int) -> Request:
    return Request(step, 0, 0, 0, "cancel", order_id)


def fill(order_id: int, step: int, side: int, price: int, contracts: int) -> Fill:
    return Fill(order_id, step_time_ms(step), side, price, contracts, maker=True)


@pytest.mark.parametrize("queue_model", ["risk_averse", "log_prob", "power_prob"])
def test_replay_an_order_joining_the_queue_fills_nothing_without_trades(queue_model):
    session = steps_of(
        ({40: 10, 39: 5}, {55: 9, 54: 4}, ()),
        ({40: 12, 39: 5}, {55: 9, 54: 4}, ()),  # size added behind the order
        ({40: 12, 39: 6}, {55: 9, 54: 4}, ((39, 3, YES),)),  # a trade elsewhere
    )
    result = replay(view_of_steps(session), [new(0, BID, 40, 5, 1)], queue_model=queue_model)
    assert result.fills == ()


def test_replay_a_trade_of_exactly_the_queue_fills_nothing_and_one_more_fills_one():
    result = replay(view_of_steps(QUEUE_USED_UP), [new(0, BID, 40, 5, 1)])
    assert result.fills == (
        fill(1, 2, BID, 40, 1),
        fill(1, 3, BID, 40, 1),
        fill(1, 4, BID, 40, 3),
    )


def test_replay_an_ask_order_is_a_sell_at_100_minus_its_no_price():
    # ASK slot at NO 55 = a sell at YES 45, behind the 7 shown; YES takers lift it.
    session = steps_of(
        ({40: 10, 39: 5}, {55: 1, 54: 4}, ((45, 6, YES),)),
        ({40: 10, 39: 5}, {55: 1, 54: 2}, ((45, 3, YES),)),  # 1 ahead: 2 fill
    )
    result = replay(view_of_steps(session), [new(0, ASK, 55, 5, 1)])
    assert result.fills == (fill(1, 2, ASK, 55, 2),)


@pytest.mark.parametrize(
    ("queue_model", "contracts"),
    [
        ("risk_averse", 0),  # 10 ahead stay 10: the 9 traded leave 1 ahead
        # front 10 - (1 - ln 7 / (ln 7 + ln 11)) * 4 = 7.79: 9 traded leave 1.21 -> 1
        ("log_prob", round(9 - prob_front(10, 6, 4, lambda x: math.log1p(x)))),
        # front 10 - (1 - 36 / 136) * 4 = 7.06: 9 traded leave 1.94 -> 2
        ("power_prob", round(9 - prob_front(10, 6, 4, lambda x: x**2))),
    ],
)
def test_replay_cancels_move_the_queue_by_the_queue_model(queue_model, contracts):
    assert contracts == {"risk_averse": 0, "log_prob": 1, "power_prob": 2}[queue_model]
    result = replay(
        view_of_steps(CANCELS_THEN_A_TRADE), [new(0, BID, 40, 5, 1)], queue_model=queue_model
    )
    assert result.fills == ((fill(1, 3, BID, 40, contracts),) if contracts else ())


def test_replay_a_size_decrease_caps_the_risk_averse_queue():
    session = steps_of(
        ({40: 2, 39: 5}, {55: 7, 54: 4}, ()),  # 8 cancelled: at most 2 ahead
        ({40: 2, 39: 5}, {55: 7, 54: 4, 53: 1}, ((40, 3, NO),)),
    )
    result = replay(view_of_steps(session), [new(0, BID, 40, 5, 1)])
    assert result.fills == (fill(1, 2, BID, 40, 1),)


def test_replay_a_trade_through_fills_all_that_is_left():
    session = steps_of(({40: 10, 39: 4}, {55: 7, 54: 4}, ((39, 1, NO),)))
    result = replay(view_of_steps(session), [new(0, BID, 40, 5, 1)])
    assert result.fills == (fill(1, 1, BID, 40, 5),)


def test_replay_the_other_book_reaching_the_order_fills_all_that_is_left():
    # A sell at YES 45 (NO 55): the NO 55 level goes and a YES bid at 45 appears.
    session = steps_of(({45: 2, 40: 10, 39: 5}, {54: 4}, ()))
    result = replay(view_of_steps(session), [new(0, ASK, 55, 5, 1)])
    assert result.fills == (fill(1, 1, ASK, 55, 5),)


@pytest.mark.parametrize(
    ("latency_ms", "filled"),
    [
        (0, [(2, 4), (3, 1)]),  # behind 10: step 1's 10 use the queue up
        (500, [(2, 4), (3, 1)]),
        (1_000, [(2, 1), (3, 3)]),  # arrives at step 1's millisecond, after its rows
        (1_500, [(2, 1), (3, 3)]),  # behind the 3 left after step 1
    ],
)
def test_replay_trades_before_an_order_arrives_do_not_count_for_it(latency_ms, filled):
    session = steps_of(
        ({40: 3, 39: 5}, {55: 7, 54: 4}, ((40, 10, NO),)),
        ({39: 5}, {55: 7, 54: 4}, ((40, 4, NO),)),
        ({39: 5}, {55: 7, 54: 4, 53: 1}, ((40, 3, NO),)),
    )
    result = replay(view_of_steps(session), [new(0, BID, 40, 5, 1)], latency_ms=latency_ms)
    assert result.fills == tuple(fill(1, step, BID, 40, n) for step, n in filled)


def test_replay_a_post_only_order_that_would_cross_on_arrival_is_cancelled():
    # Decided on BOOK (YES bid 40), it arrives a second later: the YES ask is then 40.
    session = steps_of(({39: 5}, {60: 3, 55: 7}, ()), ({39: 5}, {60: 2, 55: 7}, ((40, 1, YES),)))
    result = replay(view_of_steps(session), [new(0, BID, 40, 5, 1)], latency_ms=1_000)
    assert (result.fills, result.post_only_cancelled) == ((), (1,))


def test_replay_a_cancel_of_an_order_in_flight_is_refused():
    session = steps_of(
        ({40: 10, 39: 6}, {55: 7, 54: 4}, ()),
        ({40: 10, 39: 5}, {55: 7, 54: 4}, ((39, 1, NO),)),  # a trade through
    )
    result = replay(view_of_steps(session), [new(0, BID, 40, 5, 1), cancel(1, 1)], latency_ms=1_500)
    assert result.refused_cancels == (1,)
    assert result.fills == (fill(1, 2, BID, 40, 5),)


def test_replay_a_cancel_of_an_order_that_arrived_stops_its_fills():
    session = steps_of(
        ({40: 10, 39: 6}, {55: 7, 54: 4}, ()),
        ({40: 10, 39: 5}, {55: 7, 54: 4}, ((39, 1, NO),)),  # a trade through
    )
    script = [new(0, BID, 40, 5, 1), cancel(1, 1)]
    assert replay(view_of_steps(session), script, latency_ms=500).fills == ()
    assert replay(view_of_steps(session), script[:1], latency_ms=500).fills == (
        fill(1, 2, BID, 40, 5),
    )


def test_replay_reports_the_pitfall_of_a_last_partial_fill_of_exactly_what_was_left():
    # 5 beyond the queue fill all 5 but leave the order in hftbacktest's book; the next
    # trade at 40 fails there.
    session = steps_of(
        ({40: 5, 39: 5}, {55: 7, 54: 4}, ((40, 15, NO),)),
        ({40: 4, 39: 5}, {55: 7, 54: 4}, ((40, 1, NO),)),
    )
    with pytest.raises(ReferencePitfall):
        replay(view_of_steps(session), [new(0, BID, 40, 5, 1)])
