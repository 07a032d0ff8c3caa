"""The env's maker mode against hftbacktest 2.4.4's partial-fill exchange, fill by fill.

The env (``execution="maker"``, ample cash and position, orders that never expire) plays
a script of actions: BUY_YES places a BID order at the best YES bid, BUY_NO an ASK order
at the best NO bid, HOLD does nothing. The same script goes to hftbacktest
(:mod:`.hftbacktest_replay`): an action on a slot cancels that slot's previous order if it
is still live and sends a new one at the env's touch of that step, for ``order_size``.
Both must give the same fills: order, millisecond, side, price, contracts, maker. The
cases, on hand-made sessions (:mod:`.maker_sessions`):

1. joining the queue (no trade: no fill);
2. the queue shrinking by trades (exactly the queue: no fill; one contract more: 1);
3. the queue shrinking by cancels: a decrease caps it (risk_averse), moves it part-way
   (log_prob, power_prob); then a trade fills;
4. a trade through the order's price fills all that is left;
5. the other book reaching the order fills all that is left;
6. a partial fill followed by a full fill;
7. latency 0, 100 and 500 ms (trades before the order arrives do not count for it), and
   an order arriving exactly at the next step's millisecond (market rows first);
8. post-only: an order that would cross when it arrives is cancelled unfilled;
9. both slots at once;
10. a randomised sweep: random sessions x random scripts, all three queue models,
    latency 0 and 100 ms. Scripts that reach a 2.4.4 pitfall (a last partial fill of
    exactly what was left), or that cancel an order still in flight, are skipped and
    counted; the skipped share must stay small.

Deliberate differences from hftbacktest, each with its own test of the env's behaviour:

* a trade through an order fills at most the trade's contracts by default
  (``trade_through_fills="traded"``; hftbacktest fills all that is left): this module
  sets ``"all"``, hftbacktest's rule, and ``test_maker_rules.py`` holds the env's own
  (``test_a_trade_through_its_price_fills_at_most_its_contracts_and_clears_the_queue``);

* expiry is the env's own, at the exchange and without latency (hftbacktest's orders
  never expire);
* a cancel reaching an order sent but not yet arrived cancels it in the env (the cancel
  arrives after it), where hftbacktest refuses a cancel of an order in flight;
* the env sees the top 5 levels of each book: at a level beyond them it keeps its queue
  estimate, where hftbacktest sees the whole book.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

from kalshi_pipeline.env import BUY_NO, BUY_YES, HOLD, EnvConfig, MarketAgnosticKalshiEnv
from kalshi_pipeline.env.observation import MAKER_OBSERVATION_NAMES
from kalshi_pipeline_tests.env.hftbacktest_replay import (
    ASK,
    BID,
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
    random_steps,
    steps_of,
    view_of_steps,
)

ORDER_SIZE = 5
MAKER = dict(
    execution="maker",
    order_size=ORDER_SIZE,
    order_expiry_steps=1_000_000,
    starting_cash_cents=10_000_000,
    max_position=1_000_000,
    trade_through_fills="all",  # hftbacktest's rule (the env's default caps it: its own test)
)
BID_QUEUE = MAKER_OBSERVATION_NAMES.index("bid_order_queue")
ASK_QUEUE = MAKER_OBSERVATION_NAMES.index("ask_order_queue")


def play(view, actions: dict[int, int], **config):
    """The env over ``view`` with ``actions`` (step -> action, HOLD elsewhere): its fills
    and its observations (after each step)."""
    env = MarketAgnosticKalshiEnv(view, EnvConfig(**(MAKER | config)))
    env.reset(seed=0)
    fills, observations = [], []
    for t in range(len(view)):
        obs, _, terminated, _, info = env.step(actions.get(t, HOLD))
        fills += info["fills"]
        observations.append(obs)
        if terminated:
            break
    return fills, observations


def requests_of(view, actions: dict[int, int]) -> list[Request]:
    """The script as hftbacktest requests: each BUY_YES/BUY_NO with a touch to join is
    order 1, 2, ... (as the env numbers them), after a cancel of its slot's previous one."""
    requests, last = [], {BID: None, ASK: None}
    for t in sorted(actions):
        if actions[t] == HOLD:
            continue
        slot = {BUY_YES: BID, BUY_NO: ASK}[actions[t]]
        touch = int((view.best_yes_bid if slot == BID else view.best_no_bid)[t])
        if touch <= 0:
            continue
        if last[slot] is not None:
            requests.append(Request(t, slot, 0, 0, "cancel", last[slot]))
        last[slot] = sum(1 for r in requests if r.kind == "new") + 1
        requests.append(Request(t, slot, touch, ORDER_SIZE, "new", last[slot]))
    return requests


def key(fill) -> tuple:
    return (fill.order_id, fill.time_ms, fill.side, fill.price_cents, fill.contracts, fill.maker)


def in_order(fills) -> list[tuple]:
    """Fills by millisecond then order (each order's own fills keep their order)."""
    return sorted((key(f) for f in fills), key=lambda k: (k[1], k[0]))


def both(view, actions, *, queue_model="risk_averse", latency_ms=0, queue_power=2.0):
    """(the env's fills, hftbacktest's replay) of one script."""
    env_fills, _ = play(
        view, actions, queue_model=queue_model, latency_ms=latency_ms, queue_power=queue_power
    )
    reference = replay(
        view,
        requests_of(view, actions),
        queue_model=queue_model,
        queue_power=queue_power,
        latency_ms=latency_ms,
    )
    return env_fills, reference


def assert_same_fills(view, actions, expected, **settings) -> None:
    """The env and hftbacktest both fill exactly ``expected``: (order, step, side, price,
    contracts) maker fills."""
    env_fills, reference = both(view, actions, **settings)
    times = view.timestamps_ms.tolist()
    wanted = [(o, times[s], side, p, n, True) for o, s, side, p, n in expected]
    assert in_order(reference.fills) == wanted
    assert in_order(env_fills) == wanted


# -- 1-6: the queue and the fills ----------------------------------------------------------
def test_joining_the_queue_fills_nothing_without_trades():
    session = steps_of(
        ({40: 10, 39: 5}, {55: 9, 54: 4}, ()),
        ({40: 12, 39: 5}, {55: 9, 54: 4}, ()),  # size added behind the order
        ({40: 12, 39: 6}, {55: 9, 54: 4}, ((39, 3, YES),)),  # a trade elsewhere
    )
    view = view_of_steps(session)
    assert_same_fills(view, {0: BUY_YES}, [])
    _, observations = play(view, {0: BUY_YES})
    assert observations[0][BID_QUEUE] == 1.0  # all 10 shown are ahead of it
    assert observations[1][BID_QUEUE] == pytest.approx(10 / 12)


def test_the_queue_shrinks_by_trades_and_only_contracts_beyond_it_fill():
    # 10 traded: exactly the queue, nothing fills; then 1, 1, and a trade through.
    expected = [(1, 2, BID, 40, 1), (1, 3, BID, 40, 1), (1, 4, BID, 40, 3)]
    assert_same_fills(view_of_steps(QUEUE_USED_UP), {0: BUY_YES}, expected)


@pytest.mark.parametrize(
    ("queue_model", "contracts"),
    [
        ("risk_averse", 0),  # 10 ahead stay 10: the 9 traded leave 1 ahead
        ("log_prob", round(9 - prob_front(10, 6, 4, math.log1p))),  # 7.79 ahead: 1
        ("power_prob", round(9 - prob_front(10, 6, 4, lambda x: x**2))),  # 7.06 ahead: 2
    ],
)
def test_cancels_move_the_queue_by_the_queue_model(queue_model, contracts):
    expected = [(1, 3, BID, 40, contracts)] if contracts else []
    assert_same_fills(
        view_of_steps(CANCELS_THEN_A_TRADE), {0: BUY_YES}, expected, queue_model=queue_model
    )


def test_a_size_decrease_caps_the_risk_averse_queue_then_a_trade_fills():
    session = steps_of(
        ({40: 2, 39: 5}, {55: 7, 54: 4}, ()),  # 8 cancelled: at most 2 ahead
        ({40: 2, 39: 5}, {55: 7, 54: 4, 53: 1}, ((40, 3, NO),)),
    )
    assert_same_fills(view_of_steps(session), {0: BUY_YES}, [(1, 2, BID, 40, 1)])


def test_a_trade_through_fills_all_that_is_left():
    session = steps_of(({40: 10, 39: 4}, {55: 7, 54: 4}, ((39, 1, NO),)))
    assert_same_fills(view_of_steps(session), {0: BUY_YES}, [(1, 1, BID, 40, 5)])


def test_the_other_book_reaching_the_order_fills_all_that_is_left():
    # An ASK order at NO 55 (a sell at YES 45): NO 55 goes, a YES bid at 45 appears.
    session = steps_of(({45: 2, 40: 10, 39: 5}, {54: 4}, ()))
    assert_same_fills(view_of_steps(session), {0: BUY_NO}, [(1, 1, ASK, 55, 5)])


def test_a_partial_fill_then_a_full_fill():
    session = steps_of(
        ({40: 3, 39: 5}, {55: 7, 54: 4}, ((40, 12, NO),)),  # 2 beyond the 10 ahead
        ({39: 5}, {55: 7, 54: 4}, ((40, 7, NO),)),  # 7 for the 3 left: all 3
    )
    expected = [(1, 1, BID, 40, 2), (1, 2, BID, 40, 3)]
    assert_same_fills(view_of_steps(session), {0: BUY_YES}, expected)


# -- 7-9: latency, post-only, both slots ---------------------------------------------------
LATENCY_SESSION = steps_of(  # steps 200 ms apart
    ({40: 3, 39: 5}, {55: 7, 54: 4}, ((40, 10, NO),)),
    ({39: 5}, {55: 7, 54: 4}, ((40, 4, NO),)),
    ({39: 5}, {55: 7, 54: 4, 53: 1}, ((40, 3, NO),)),
)


@pytest.mark.parametrize(
    ("latency_ms", "expected"),
    [
        (0, [(1, 2, BID, 40, 4), (1, 3, BID, 40, 1)]),  # behind 10, used up at step 1
        (100, [(1, 2, BID, 40, 4), (1, 3, BID, 40, 1)]),
        (200, [(1, 2, BID, 40, 1), (1, 3, BID, 40, 3)]),  # at step 1's ms: behind its 3
        (500, [(1, 3, BID, 40, 3)]),  # after step 2: nothing ahead, step 2's trade missed
    ],
)
def test_trades_before_an_order_arrives_do_not_count_for_it(latency_ms, expected):
    view = view_of_steps(LATENCY_SESSION, gap_ms=200)
    assert_same_fills(view, {0: BUY_YES}, expected, latency_ms=latency_ms)


def test_a_post_only_order_that_would_cross_on_arrival_is_cancelled_unfilled():
    # Decided on BOOK at YES 40, it arrives at step 1 when the YES ask is 40; step 2's
    # trade at 39 would have traded through it.
    session = steps_of(({39: 5}, {60: 3, 55: 7}, ()), ({39: 4}, {60: 3, 55: 7}, ((39, 1, NO),)))
    view = view_of_steps(session)
    env_fills, reference = both(view, {0: BUY_YES}, latency_ms=1_000)
    assert (env_fills, reference.fills, reference.post_only_cancelled) == ([], (), (1,))
    _, observations = play(view, {0: BUY_YES}, latency_ms=1_000)
    assert observations[1][BID_QUEUE] == -1.0  # no order any more


def test_both_slots_rest_and_fill_at_once():
    session = steps_of(
        ({40: 4, 39: 5}, {55: 1, 54: 4}, ((40, 6, NO), (45, 6, YES))),  # BID: 4 ahead
        ({40: 4, 39: 5}, {55: 1, 54: 3}, ((40, 5, NO), (45, 4, YES))),  # ASK: 1 ahead
    )
    expected = [(1, 2, BID, 40, 1), (2, 2, ASK, 55, 3)]
    assert_same_fills(view_of_steps(session), {0: BUY_YES, 1: BUY_NO}, expected)


# -- the deliberate differences: the env's own behaviour ---------------------------------
def test_expiry_removes_an_order_at_the_exchange_without_latency():
    # Placed at step 0 with order_expiry_steps 2: it meets step 2's events, not step 3's,
    # however long a cancel would take. hftbacktest's orders never expire.
    through_at = {
        step: steps_of(
            *[
                ({40: 10, 39: 5 - k}, {55: 7, 54: 4}, ((39, 1, NO),) if k == step else ())
                for k in range(1, 4)
            ]
        )
        for step in (2, 3)
    }
    expiring = dict(order_expiry_steps=2, latency_ms=0, cancel_latency_ms=5_000)
    fills, _ = play(view_of_steps(through_at[2]), {0: BUY_YES}, **expiring)
    assert [(f.step, f.contracts) for f in fills] == [(2, 5)]
    fills, _ = play(view_of_steps(through_at[3]), {0: BUY_YES}, **expiring)
    assert fills == []
    reference = replay(view_of_steps(through_at[3]), [Request(0, BID, 40, 5, "new", 1)])
    assert [f.contracts for f in reference.fills] == [5]


def test_a_cancel_reaching_an_order_sent_before_it_cancels_it():
    # Steps 200 ms apart, latency 500 ms. Order 1 (step 0) arrives at 500 ms; BUY_YES
    # again at step 1 sends its cancel then order 2, both arriving at 700 ms: the env
    # cancels order 1 then. hftbacktest refuses a cancel sent while its order is in
    # flight, so there both orders rest and both fill at step 4's trade through.
    session = steps_of(
        ({40: 10, 39: 5}, {55: 7, 54: 3}, ()),
        ({40: 10, 39: 5}, {55: 7, 54: 3, 53: 1}, ()),
        ({40: 10, 39: 5}, {55: 7, 54: 3, 53: 2}, ()),
        ({40: 10, 39: 4}, {55: 7, 54: 3, 53: 2}, ((39, 1, NO),)),
    )
    view = view_of_steps(session, gap_ms=200)
    env_fills, reference = both(view, {0: BUY_YES, 1: BUY_YES}, latency_ms=500)
    assert [(f.order_id, f.step, f.contracts) for f in env_fills] == [(2, 4, 5)]
    assert reference.refused_cancels == (1,)
    assert sorted(f.order_id for f in reference.fills) == [1, 2]


def test_beyond_the_top_five_levels_the_env_keeps_its_queue_estimate():
    # The order's level (40) drops below five better YES bids; unseen, it shrinks to 2
    # and grows back to 12, then shows again. hftbacktest, seeing the whole book, would
    # cap the queue ahead at 2; the env, which sees 5 levels, keeps 10 ahead.
    better = {45: 1, 44: 1, 43: 1, 42: 1, 41: 1}
    session = steps_of(
        ({**better, 40: 10, 39: 5}, {54: 4}, ()),
        ({**better, 40: 2, 39: 5}, {54: 4}, ()),
        ({**better, 40: 12, 39: 5}, {54: 4}, ()),
        ({40: 12, 39: 5}, {54: 4}, ()),
        ({40: 7, 39: 5}, {54: 4}, ((40, 5, NO),)),  # 5 traded: nothing fills (3 would)
    )
    fills, observations = play(view_of_steps(session, deep=True), {0: BUY_YES})
    assert fills == []
    assert observations[3][BID_QUEUE] == pytest.approx(10 / 12)  # not 2 / 12
    assert observations[4][BID_QUEUE] == pytest.approx(5 / 7)


# -- 10: the randomised sweep ----------------------------------------------------------------
SWEEP_SESSIONS = 60
SWEEP_STEPS = 25


def random_actions(rng: np.random.Generator, steps: int) -> dict[int, int]:
    """About one step in seven places an order, on either slot."""
    return {t: int(rng.choice([BUY_YES, BUY_NO])) for t in range(steps) if rng.random() < 0.15}


def sweep(queue_model: str) -> tuple[int, int, int, int]:
    """(scripts compared, skipped, fills, partial fills) over the sweep's sessions."""
    compared = skipped = fills = partial = 0
    for seed in range(SWEEP_SESSIONS):
        rng = np.random.default_rng(seed)
        steps = random_steps(rng, SWEEP_STEPS)
        view = view_of_steps(steps, gap_ms=rng.integers(50, 300, len(steps) - 1).tolist())
        actions = random_actions(rng, len(steps))
        for latency_ms in (0, 100):
            try:
                env_fills, reference = both(
                    view, actions, queue_model=queue_model, latency_ms=latency_ms
                )
            except ReferencePitfall:
                skipped += 1
                continue
            if reference.refused_cancels:  # a deliberate difference (module docstring)
                skipped += 1
                continue
            assert in_order(env_fills) == in_order(reference.fills), (seed, latency_ms)
            compared += 1
            fills += len(env_fills)
            partial += sum(f.contracts < ORDER_SIZE for f in env_fills)
    return compared, skipped, fills, partial


@pytest.mark.parametrize("queue_model", ["risk_averse", "log_prob", "power_prob"])
def test_random_sessions_and_scripts_fill_as_hftbacktest(queue_model):
    compared, skipped, fills, partial = sweep(queue_model)
    assert skipped <= 0.12 * (compared + skipped), (compared, skipped)
    assert fills >= 50 and partial >= 10  # the sweep reaches fills, partial ones among them
