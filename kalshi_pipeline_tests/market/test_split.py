"""The train/holdout split: by market ticker, by hash, stable as data grows."""

from __future__ import annotations

import json
from collections import defaultdict

import pyarrow as pa
import pytest

from kalshi_pipeline.market import build_market_views
from kalshi_pipeline.market.difficulty import FilterConfig
from kalshi_pipeline.market.split import (
    DEFAULT_SALT,
    VALIDATION_SALT,
    MarketKind,
    Split,
    SplitName,
    SplitTooSmall,
    holdout_score,
    is_holdout,
    market_kinds,
    needed_sides,
    split_markets,
    split_views,
    validation_markets,
)
from kalshi_pipeline.pipeline_config import TIGHT_SPREAD_CENTS, SplitConfig
from kalshi_pipeline.sources.simulator import (
    Population,
    SimulatorConfig,
    simulate_session,
    simulate_sessions,
    ticker_pool,
)
from kalshi_pipeline.training.evaluation import wins_needed
from kalshi_pipeline.workflow import describe_split, select_views, views_for

TICKERS = [f"KXTEST-{i:04d}" for i in range(2000)]


def test_the_split_is_deterministic_and_sorted():
    first = split_markets(reversed(TICKERS[:300]), 0.3)
    second = split_markets(TICKERS[:300] + TICKERS[:50], 0.3)

    assert first == second
    train, holdout = first
    assert train == sorted(train) and holdout == sorted(holdout)
    assert set(train) | set(holdout) == set(TICKERS[:300])
    assert not set(train) & set(holdout)
    assert all(is_holdout(t, 0.3) for t in holdout)
    assert all(0.0 <= holdout_score(t) < 1.0 for t in TICKERS)


def test_markets_keep_their_side_as_new_tickers_arrive():
    _, holdout_before = split_markets(TICKERS[:100], 0.2)
    train_after, holdout_after = split_markets(TICKERS, 0.2)

    assert set(holdout_before) == set(holdout_after) & set(TICKERS[:100])
    assert set(TICKERS[:100]) - set(holdout_before) <= set(train_after)


def test_the_holdout_share_is_the_fraction_over_many_markets():
    for fraction in (0.1, 0.2, 0.5):
        _, holdout = split_markets(TICKERS, fraction)
        # About 4 standard deviations of a binomial share over 2000 markets at most.
        assert abs(len(holdout) / len(TICKERS) - fraction) < 0.045
    assert split_markets(TICKERS, 0.0)[1] == []
    assert split_markets(TICKERS, 1.0)[0] == []


def test_a_larger_fraction_only_adds_markets_to_the_holdout():
    _, small = split_markets(TICKERS, 0.1)
    _, large = split_markets(TICKERS, 0.3)

    assert set(small) < set(large)


def test_the_salt_changes_the_assignment():
    _, default = split_markets(TICKERS[:200], 0.5)
    _, salted = split_markets(TICKERS[:200], 0.5, salt="another-experiment")

    assert salted != default
    assert split_markets(TICKERS[:200], 0.5, salt="another-experiment")[1] == salted


def three_sessions_of_views(markets: int) -> list:
    """Every view of simulated sessions 1, 2 and 3 (markets recur across sessions)."""
    return [
        view
        for session_id in (1, 2, 3)
        for view in build_market_views(
            simulate_session(
                session_id,
                seed=session_id,
                config=SimulatorConfig(population=Population.TWO_CLASS, markets=markets),
            )
        )
    ]


def test_every_view_of_a_market_lands_on_the_same_side():
    views = three_sessions_of_views(markets=8)
    sessions_of = defaultdict(set)
    for view in views:
        sessions_of[view.market_ticker].add(view.session_id)
    assert any(len(s) > 1 for s in sessions_of.values()), "some market should span sessions"

    keep_all = FilterConfig(min_episode_length=1, min_coverage=0.0, min_data_quality=0.0)
    split = split_views(
        select_views([v.describe() for v in views], keep_all),
        SplitConfig(holdout_fraction=0.5, walk_forward_sessions=0),
    )
    by_session = defaultdict(list)
    for view in views:
        by_session[view.session_id].append(view)
    train = views_for(split, SplitName.TRAIN, by_session.__getitem__)
    holdout = views_for(split, SplitName.HOLDOUT, by_session.__getitem__)
    difficulty = split.difficulty

    train_tickers = {v.market_ticker for v in train}
    holdout_tickers = {v.market_ticker for v in holdout}
    assert train and holdout
    assert not train_tickers & holdout_tickers
    assert holdout_tickers == {t for t in sessions_of if is_holdout(t, 0.5)}
    # Every view of a holdout market (from every session) is in the holdout.
    assert len(holdout) == sum(len(sessions_of[t]) for t in holdout_tickers)
    assert set(difficulty) == {v.key for v in views}


def test_validation_markets_come_from_training_and_keep_their_side():
    train, holdout = split_markets(TICKERS, 0.3)
    validating = validation_markets(train, 0.2)

    assert set(validating) < set(train) and not set(validating) & set(holdout)
    assert abs(len(validating) / len(train) - 0.2) < 0.05
    # Stable as markets arrive, and independent of the holdout fraction.
    assert set(validation_markets(train[:300], 0.2)) == set(validating) & set(train[:300])
    wider_train, _ = split_markets(TICKERS, 0.5)
    assert set(validation_markets(wider_train, 0.2)) == set(validating) & set(wider_train)


def test_each_kind_of_market_validates_at_least_a_few_of_its_markets():
    train, _ = split_markets(TICKERS[:200], 0.3)
    score = {t: holdout_score(t, DEFAULT_SALT + VALIDATION_SALT) for t in train}
    # A rare kind that the hash alone gives no validation market: eight above the fraction.
    tight = [t for t in train if score[t] >= 0.2][:8]
    kinds = {t: "tight" if t in tight else "wide" for t in train}
    plain = validation_markets(train, 0.2)
    validating = validation_markets(train, 0.2, kinds=kinds, min_per_kind=4)

    assert not set(plain) & set(tight)  # what the minimum is for
    assert set(plain) <= set(validating)  # the fraction's markets stay
    chosen_tight = set(validating) & set(tight)
    assert len(chosen_tight) == 4
    # The kind's lowest-hash markets, so the choice is the same however the kinds arrive.
    by_hash = sorted(tight, key=lambda t: holdout_score(t, DEFAULT_SALT + VALIDATION_SALT))
    assert chosen_tight == set(by_hash[:4])
    assert len(set(validating) - set(plain)) == 4  # the wide kind had enough already
    assert validation_markets(reversed(train), 0.2, kinds=kinds, min_per_kind=4) == validating
    # Never more than half of a kind, and nothing with a fraction of 0.
    few = tight[:5]
    assert len(validation_markets(few, 0.0001, kinds=kinds, min_per_kind=4)) == 2
    assert validation_markets(train, 0.0, kinds=kinds, min_per_kind=4) == []


def views_and_liquidity(sessions: int, seed: int, markets: int) -> tuple[list, dict[str, bool]]:
    """Every view of a simulated store, and whether the simulator made each market liquid."""
    config = SimulatorConfig(population=Population.TWO_CLASS, markets=markets)
    views = [
        view
        for session in simulate_sessions(sessions, seed=seed, config=config)
        for view in build_market_views(session)
    ]
    return views, {m.ticker: m.liquid for m in ticker_pool(seed, config)}


def test_tight_markets_are_the_ones_liquid_enough_to_trade():
    views, liquid = views_and_liquidity(2, seed=8, markets=40)
    kinds = market_kinds((v.describe() for v in views), TIGHT_SPREAD_CENTS)

    assert {t: kind == "tight" for t, kind in kinds.items()} == {t: liquid[t] for t in kinds}
    assert "tight" in kinds.values() and "wide" in kinds.values()


def test_the_split_gives_validation_its_tight_markets():
    # A store whose hash gives validation one of the ten or so tight (liquid) markets
    # outside the holdout: selection could not see a signal that pays on those only.
    views, liquid = views_and_liquidity(4, seed=25, markets=40)
    selection = select_views([v.describe() for v in views], FilterConfig())
    split = split_views(selection, SplitConfig(holdout_fraction=0.3, validation_fraction=0.2))
    plain = split_views(
        selection,
        SplitConfig(holdout_fraction=0.3, validation_fraction=0.2, min_validation_per_kind=0),
    )

    def tight(keys):
        return {k.split("/", 1)[1] for k in keys if liquid[k.split("/", 1)[1]]}

    assert len(tight(plain.validation)) == plain.validation_tight_markets < 3
    assert len(tight(plain.train) | tight(plain.validation)) >= 8
    assert len(tight(split.validation)) == split.validation_tight_markets == 4
    assert split.validation_tight_markets >= wins_needed(split.validation_markets)
    assert tight(plain.validation) < tight(split.validation)
    assert split.holdout == plain.holdout
    assert "cannot" in describe_split(plain) and "cannot" not in describe_split(split)
    # Spreads under the threshold make a market tight: with a threshold above every
    # spread, all markets are of one kind and the minimum adds nothing.
    one_kind = split_views(
        selection,
        SplitConfig(holdout_fraction=0.3, validation_fraction=0.2, tight_spread_cents=1000.0),
    )
    assert one_kind.validation_tight_markets == one_kind.validation_markets
    assert one_kind.validation == plain.validation


def test_a_market_is_of_its_kind_by_the_sessions_before_the_walk_forward():
    def stats(session_id, ticker, spread):
        return {
            "session_id": session_id, "market_ticker": ticker, "view_key": f"{session_id}/{ticker}",
            "passes_filters": True, "difficulty": 0.5, "avg_spread": spread,
        }  # fmt: skip

    tickers = [t for t in TICKERS if not is_holdout(t, 0.3)][:41]
    tight = set(tickers[:2])
    # Two markets tight in sessions 1 and 2, and so wide in session 3 (the walk-forward)
    # that over all three they would be wide; one market seen in session 3 only.
    rows = [stats(s, t, 1.0 if t in tight else 30.0) for s in (1, 2) for t in tickers[:40]]
    rows += [stats(3, t, 100.0) for t in tickers]
    split = split_views(
        pa.Table.from_pylist(rows), SplitConfig(holdout_fraction=0.3, validation_fraction=0.0001)
    )

    assert split.validation_tight_markets == 1  # half of the tight kind's two
    assert split.validation_markets == 1 + 4  # and the wide kind's minimum
    # The market seen only in the walk-forward session is on neither side.
    assert split.train_markets + split.validation_markets == 40


def test_the_split_puts_every_view_of_a_market_on_one_of_three_sides():
    views = three_sessions_of_views(markets=12)
    keep_all = FilterConfig(min_episode_length=1, min_coverage=0.0, min_data_quality=0.0)
    selection = select_views([v.describe() for v in views], keep_all)
    split = split_views(
        selection,
        SplitConfig(holdout_fraction=0.3, validation_fraction=0.4, walk_forward_sessions=0),
    )
    without = split_views(
        selection,
        SplitConfig(holdout_fraction=0.3, validation_fraction=0.0, walk_forward_sessions=0),
    )

    sides = {
        name: {key.split("/", 1)[1] for key in keys}
        for name, keys in (("train", split.train), ("validation", split.validation),
                           ("holdout", split.holdout))
    }  # fmt: skip
    assert all(sides.values())
    assert not (sides["train"] & sides["validation"] or sides["train"] & sides["holdout"])
    assert not sides["validation"] & sides["holdout"]
    assert len(split.train) + len(split.validation) + len(split.holdout) == len(views)
    assert split.holdout == without.holdout  # validation is carved from training only
    assert set(split.train) | set(split.validation) == set(without.train)
    assert (split.train_markets, split.validation_markets) == (
        len(sides["train"]),
        len(sides["validation"]),
    )


def test_the_latest_session_is_kept_for_the_walk_forward_evaluation():
    views = three_sessions_of_views(markets=12)
    keep_all = FilterConfig(min_episode_length=1, min_coverage=0.0, min_data_quality=0.0)
    selection = select_views([v.describe() for v in views], keep_all)
    split = split_views(
        selection, SplitConfig(holdout_fraction=0.3, validation_fraction=0.3)
    )  # one walk-forward session
    flat = split_views(
        selection,
        SplitConfig(holdout_fraction=0.3, validation_fraction=0.3, walk_forward_sessions=0),
    )

    def sessions(keys):
        return {int(k.split("/")[0]) for k in keys}

    assert split.walk_forward and sessions(split.walk_forward) == {3}
    # Every view of session 3, of every market, and nothing of sessions 1 and 2.
    assert set(split.walk_forward) == {v.key for v in views if v.session_id == 3}
    # Training and validation never see session 3; they keep the rest of their markets.
    assert sessions(split.train) | sessions(split.validation) <= {1, 2}
    assert set(split.train) == {k for k in flat.train if not k.startswith("3/")}
    assert set(split.validation) == {k for k in flat.validation if not k.startswith("3/")}
    # The market holdout is unchanged: its markets' views of every session.
    assert split.holdout == flat.holdout and not flat.walk_forward
    two = split_views(
        selection,
        SplitConfig(holdout_fraction=0.3, validation_fraction=0.3, walk_forward_sessions=2),
    )
    assert sessions(two.walk_forward) == {2, 3} and sessions(two.train) == {1}
    # With nothing earlier to train on, there is no walk-forward evaluation.
    alone = split_views(
        selection,
        SplitConfig(holdout_fraction=0.3, validation_fraction=0.3, walk_forward_sessions=3),
    )
    assert not alone.walk_forward and alone.train == flat.train


def test_the_split_says_what_beating_hold_on_validation_asks():
    views = three_sessions_of_views(markets=30)
    keep_all = FilterConfig(min_episode_length=1, min_coverage=0.0, min_data_quality=0.0)
    selection = select_views([v.describe() for v in views], keep_all)
    split = split_views(selection, SplitConfig(holdout_fraction=0.3, validation_fraction=0.2))
    wider = split_views(selection, SplitConfig(holdout_fraction=0.3, validation_fraction=0.9))
    none = split_views(selection, SplitConfig(holdout_fraction=0.3, validation_fraction=0.0))

    n = split.validation_markets
    assert 0 < n < wider.validation_markets
    line = describe_split(split)
    assert line.startswith(
        f"split: {split.train_markets} training, {n} validation "
        f"({split.validation_tight_markets} of tight spread) and "
        f"{split.holdout_markets} holdout markets; 1 walk-forward session"
    )
    assert f"must win on at least {wins_needed(n)} of the {n} validation markets" in line
    assert "more if it loses on any" in line
    # More validation markets ask a smaller share of them.
    assert f"({wins_needed(n) / n:.0%})" in line
    assert wins_needed(wider.validation_markets) / wider.validation_markets < wins_needed(n) / n
    assert describe_split(none).endswith(
        "no validation: each phase's output is its last checkpoint"
    )


def test_a_split_round_trips_through_json_and_names_its_sides():
    views = three_sessions_of_views(markets=12)
    keep_all = FilterConfig(min_episode_length=1, min_coverage=0.0, min_data_quality=0.0)
    selection = select_views([v.describe() for v in views], keep_all)
    split = split_views(selection, SplitConfig(holdout_fraction=0.3, validation_fraction=0.3))

    assert split.train and split.validation and split.holdout and split.walk_forward
    data = split.to_json()
    assert {str(name) for name in SplitName} <= set(data)
    assert Split.from_json(json.loads(json.dumps(data))) == split


def test_market_kinds_are_market_kind_members():
    views, _ = views_and_liquidity(1, seed=8, markets=12)
    kinds = market_kinds((v.describe() for v in views), TIGHT_SPREAD_CENTS)

    assert kinds and all(isinstance(kind, MarketKind) for kind in kinds.values())


# -- a split too small for the run is refused before anything trains ------------------------
def small_store_selection():
    """``kalshi-pipeline generate --population two-class --sessions 3 --markets 6 --seed 0``'s
    views: none of their 8 markets falls in the default holdout."""
    config = SimulatorConfig(population=Population.TWO_CLASS, markets=6)
    views = [v for s in simulate_sessions(3, seed=0, config=config) for v in build_market_views(s)]
    return select_views([v.describe() for v in views], FilterConfig())


def test_a_store_without_a_holdout_market_is_refused_naming_what_to_add():
    selection = small_store_selection()
    rules = SplitConfig()
    assert not split_views(selection, rules).holdout  # the store's split, unchecked

    with pytest.raises(SplitTooSmall) as refused:
        split_views(selection, rules, needs=needed_sides(rules))

    markets = len({r["market_ticker"] for r in selection.to_pylist() if r["passes_filters"]})
    assert str(refused.value).startswith(
        f"the split has no holdout market: none of the {markets} markets whose views pass "
        "the filters ("
    )
    assert "in 3 sessions) falls in the holdout (about 20% of markets" in str(refused.value)
    assert str(refused.value).endswith(
        "nothing was trained (add sessions with more markets, or raise holdout_fraction, "
        "--holdout-fraction)"
    )
    # A run that never evaluates (phases 1-2, tuning) does not need the holdout.
    split = split_views(selection, rules, needs=needed_sides(rules, evaluate=False))
    assert split.train and split.validation


@pytest.mark.parametrize(
    ("rules", "expected"),
    [
        (SplitConfig(holdout_fraction=0.0), "the holdout fraction is 0, and evaluating"),
        (
            SplitConfig(holdout_fraction=0.9, validation_fraction=0.9),
            "the split leaves no market to train on: of the ",
        ),
        (
            SplitConfig(holdout_fraction=0.3, validation_fraction=0.01, min_validation_per_kind=0),
            "the split has no validation market: of the ",
        ),
    ],
)
def test_each_empty_side_a_run_reads_is_named(rules, expected):
    selection = small_store_selection()

    with pytest.raises(SplitTooSmall, match=f"^{expected}") as refused:
        split_views(selection, rules, needs=needed_sides(rules))
    assert "nothing was trained (" in str(refused.value)


def test_no_view_passing_the_filters_is_named_first():
    selection = small_store_selection()
    nothing = selection.set_column(
        selection.schema.get_field_index("passes_filters"),
        "passes_filters",
        pa.array([False] * selection.num_rows),
    )

    with pytest.raises(SplitTooSmall, match=f"^none of the {selection.num_rows} views passes"):
        split_views(nothing, SplitConfig(), needs=needed_sides(SplitConfig()))


def test_a_run_needs_validation_unless_its_fraction_is_zero():
    assert needed_sides(SplitConfig()) == {SplitName.TRAIN, SplitName.VALIDATION, SplitName.HOLDOUT}
    assert needed_sides(SplitConfig(validation_fraction=0.0), evaluate=False) == {SplitName.TRAIN}
    selection = small_store_selection()
    rules = SplitConfig(holdout_fraction=0.3, validation_fraction=0.0)
    assert not split_views(selection, rules, needs=needed_sides(rules)).validation
