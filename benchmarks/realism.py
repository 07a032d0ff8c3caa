"""The realism benchmark's API: measure sessions, compare them with recorded Kalshi data.

    from benchmarks.realism import all_passed, compare, format_table, load_reference, measure

    figures = measure(sessions)            # any iterable of RawSession, read one at a time
    rows = compare(figures, load_reference())
    print(format_table(rows))
    ok = all_passed(rows)

:func:`measure` (``benchmarks/realism_figures.py``) counts the figures;
:func:`load_reference` (``benchmarks/realism_reference.py``) reads
``benchmarks/kalshi_reference/``; :func:`compare` sets each figure beside its recorded
value as a :class:`Row`, with a tolerance where one is held (``passed`` is None for the
figures only printed). The tolerances:

* spread per observation (listed = true - 1): each of p10, p25, p50, p75, p90 within
  ``max(1 cent, 20%)`` of the recorded value; each band share (<2, 2-5, 5-10, >=10 cents)
  within 5 points;
* per market (at least 10 updates): KS distance (``scipy.stats.ks_2samp``) of the average
  listed spread <= 0.10 (markets whose listed average is exactly 0 left out on both
  sides), of the update frequency <= 0.15, of the median resting size per level <= 0.15;
* trades: each size-bucket share and the taker-YES share within 5 points. A run with no
  trade tape at all fails the trade figures: the calibrated population records one.

Everything else (spread volatility, pooled size shares, most common sizes, delta rates,
trade clustering) is printed without a tolerance. ``docs/realism.md`` explains each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.stats import ks_2samp

from benchmarks.realism_figures import (
    TRADE_SIZE_BUCKETS,
    SimulatedFigures,
    measure,
)
from benchmarks.realism_reference import Reference, load_reference

__all__ = [
    "Row",
    "SimulatedFigures",
    "all_passed",
    "compare",
    "format_table",
    "load_reference",
    "measure",
]

PERCENTILES = (10, 25, 50, 75, 90)
# The recorded spread bands (listed cents, [low, high)) and their keys in summary.json.
SPREAD_BANDS = (
    ("<2c", None, 2, "tight_lt_2c"),
    ("2-5c", 2, 5, "2_to_lt_5c"),
    ("5-10c", 5, 10, "5_to_lt_10c"),
    (">=10c", 10, None, "ge_10c"),
)
SHARE_POINTS = 0.05  # a share's tolerance: 5 percentage points
KS_LIMITS = {"avg_spread": 0.10, "update_frequency": 0.15, "resting_size": 0.15}


@dataclass(frozen=True)
class Row:
    """One figure: simulated beside recorded. ``passed`` is None for a figure printed
    without a tolerance; ``tolerance`` says what was held."""

    section: str
    name: str
    simulated: float | str | None
    recorded: float | str | None
    tolerance: str = ""
    passed: bool | None = None


def all_passed(rows: list[Row]) -> bool:
    """No tolerance failed."""
    return all(row.passed is not False for row in rows)


def compare(figures: SimulatedFigures, reference: Reference) -> list[Row]:
    """Every figure of ``figures`` beside ``reference``'s, tolerances applied."""
    return [
        *_spread_rows(figures, reference),
        *_market_rows(figures, reference),
        *_size_rows(figures, reference),
        *_trade_rows(figures, reference),
    ]


def _spread_rows(figures: SimulatedFigures, reference: Reference) -> list[Row]:
    section = "spread per observation (cents, listed = true - 1)"
    recorded = reference.spread_observations
    rows = [Row(section, "observations", figures.observations, recorded["observations"])]
    for p in PERCENTILES:
        want = recorded["spread_percentiles_cents"][f"p{p}"]
        got, allowed = figures.spread_quantile(p / 100), max(1.0, 0.2 * want)
        ok = bool(abs(got - want) <= allowed)
        rows.append(Row(section, f"p{p}", got, want, f"+-{allowed:.1f}c", ok))
    for name, low, high, key in SPREAD_BANDS:
        rows.append(
            _share_row(section, f"share {name}", figures.spread_share(low, high),
                       recorded["buckets"][key]["share"])
        )  # fmt: skip
    return rows


def _share_row(section: str, name: str, got: float, want: float) -> Row:
    ok = bool(abs(got - want) <= SHARE_POINTS + 1e-12)
    return Row(section, name, got, want, f"+-{SHARE_POINTS * 100:.0f} pts", ok)


def _market_rows(figures: SimulatedFigures, reference: Reference) -> list[Row]:
    markets = figures.profiled()
    avg = np.array([m.avg_listed_spread for m in markets if m.avg_listed_spread is not None])
    rows = [
        Row("markets (>= 10 updates)", "markets", len(markets), len(reference.markets["session"])),
        Row("markets (>= 10 updates)", "listed average spread exactly 0 (left out)",
            int((avg == 0).sum()), int((reference.markets["avg_spread_yes"] == 0).sum())),
    ]  # fmt: skip
    distributions = (
        ("average spread per market (listed cents, excl. 0)", "avg_spread",
         avg[avg != 0], reference.nonzero_avg_spread()),
        ("update frequency per market (per s)", "update_frequency",
         _values(markets, "update_frequency_per_s"), reference.markets["update_frequency_per_s"]),
        ("resting size per level (per-market median, contracts)", "resting_size",
         _values(markets, "resting_size_median"), reference.markets["order_size_median"]),
        ("spread volatility per market (cents)", None,
         _values(markets, "spread_volatility"), reference.markets["spread_volatility"]),
    )  # fmt: skip
    for section, key, simulated, recorded in distributions:
        rows.extend(_distribution_rows(section, key, simulated, recorded))
    return rows


def _values(markets, name: str) -> np.ndarray:
    return np.array([v for m in markets if (v := getattr(m, name)) is not None], np.float64)


def _distribution_rows(
    section: str, key: str | None, simulated: np.ndarray, recorded: np.ndarray
) -> list[Row]:
    """Quantiles side by side and the KS distance (held to its limit when ``key``)."""
    rows = []
    for p in PERCENTILES:
        got = float(np.percentile(simulated, p)) if len(simulated) else None
        rows.append(Row(section, f"p{p}", got, float(np.percentile(recorded, p))))
    distance = float(ks_2samp(simulated, recorded).statistic) if len(simulated) else None
    if key is None:
        rows.append(Row(section, "KS distance", distance, None))
        return rows
    limit = KS_LIMITS[key]
    ok = distance is not None and distance <= limit
    rows.append(Row(section, "KS distance", distance, None, f"<= {limit:.2f}", ok))
    return rows


def _size_rows(figures: SimulatedFigures, reference: Reference) -> list[Row]:
    section = "resting sizes, pooled level observations"
    sizes = figures.level_sizes
    total = max(sum(sizes.values()), 1)
    simulated = {
        "le_100": sum(n for s, n in sizes.items() if s <= 100) / total,
        "101_to_1000": sum(n for s, n in sizes.items() if 100 < s <= 1000) / total,
        "gt_1000": sum(n for s, n in sizes.items() if s > 1000) / total,
    }
    recorded = reference.pooled_size_shares()
    labels = {"le_100": "share <= 100", "101_to_1000": "share 101-1000", "gt_1000": "share > 1000"}
    rows = [Row(section, labels[k], simulated[k], recorded[k]) for k in labels]
    common = " ".join(str(s) for s, _ in sorted(sizes.items(), key=lambda i: (-i[1], i[0]))[:10])
    recorded_common = " ".join(str(s) for s in reference.most_common_sizes())
    rows.append(Row(section, "most common sizes", common, recorded_common))
    rates = [rate for _, rate in figures.deltas_per_market_hour if np.isfinite(rate)]
    rows.append(
        Row("deltas per market per hour (median over sessions)", "sessions >= 2.5 h recorded",
            float(np.median(rates)) if rates else None,
            float(np.median(reference.long_session_delta_rates())))
    )  # fmt: skip
    return rows


def _trade_rows(figures: SimulatedFigures, reference: Reference) -> list[Row]:
    section = "public trades"
    trades, recorded = figures.trades, reference.trades
    tape = f"{trades.sessions_with_tape} of {figures.sessions} sessions"
    if trades.trades == 0:
        return [Row(section, "trades (tape recorded in)", tape, recorded["resolved_trades"],
                    "some trades", False)]  # fmt: skip
    rows = [Row(section, "trades (tape recorded in)", f"{trades.trades:,} ({tape})",
                recorded["resolved_trades"])]  # fmt: skip
    shares = trades.size_shares()
    for name, _, _ in TRADE_SIZE_BUCKETS:
        rows.append(_share_row(section, f"size {name}", shares[name],
                               recorded["derived_size_shares"][name]))  # fmt: skip
    rows.append(_share_row(section, "taker YES", trades.taker_yes / trades.trades,
                           recorded["taker_side"]["derived_yes_share"]))  # fmt: skip
    follow = recorded["follow_within_5s_same_market"]
    rows.append(
        Row(
            section,
            "follows a trade of its market within 5 s",
            trades.follows / trades.trades,
            follow["derived_share_of_trades"],
        )
    )
    rows.append(Row(section, "... with the same taker side",
                    trades.follows_same_side / trades.trades,
                    follow["same_taker_side"] / recorded["resolved_trades"]))  # fmt: skip
    if trades.skipped:
        rows.append(Row(section, "rows skipped (unusable)", trades.skipped, None))
    return rows


def format_table(rows: list[Row]) -> str:
    """The rows as a text table, a block per section."""
    lines, section = [], None
    header = f"  {'figure':<44} {'simulated':>14} {'recorded':>14}  {'tolerance':<10} result"
    for row in rows:
        if row.section != section:
            section = row.section
            lines += ["", section, header]
        result = {None: "", True: "PASS", False: "FAIL"}[row.passed]
        if isinstance(row.simulated, str) and len(row.simulated) > 14:
            lines.append(f"  {row.name}:")
            lines.append(f"    simulated  {row.simulated}")
            lines.append(f"    recorded   {_show(row.recorded)}  {row.tolerance} {result}".rstrip())
            continue
        lines.append(
            f"  {row.name:<44} {_show(row.simulated):>14} {_show(row.recorded):>14}  "
            f"{row.tolerance:<10} {result}".rstrip()
        )
    failed = sum(row.passed is False for row in rows)
    held = sum(row.passed is not None for row in rows)
    lines += [
        "",
        f"{held - failed} of {held} tolerances held" + (f", {failed} FAILED" if failed else ""),
    ]
    return "\n".join(lines[1:])


def _show(value: float | str | None) -> str:
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, (int, np.integer)):
        return f"{value:,}"
    if abs(value) < 0.01 and value != 0:
        return f"{value:.3e}"
    return f"{value:,.3f}"
