"""The recorded Kalshi reference, read from ``benchmarks/kalshi_reference/``.

``summary.json`` holds the figures published with the recordings (the per-observation
spread distribution, the session table, pooled resting sizes, the public trades);
``markets.csv`` one row per market per recorded session (1,932 rows, sessions 32 and 72).
``benchmarks/kalshi_reference/README.md`` names their source and caveats.

Only what the comparison uses is read: :class:`Reference` keeps the summary as parsed
and the per-market columns as arrays, both sessions pooled.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

REFERENCE_DIR = Path(__file__).resolve().parent / "kalshi_reference"
# The columns of markets.csv the comparison reads, as floats.
MARKET_COLUMNS = (
    "avg_spread_yes",
    "spread_volatility",
    "update_frequency_per_s",
    "order_size_median",
)
# Sessions of the session table at least this long (minutes): their delta rates are the
# steady ones; shorter sessions are dominated by their snapshots' reconnect bursts.
LONG_SESSION_MINUTES = 150.0


@dataclass(frozen=True)
class Reference:
    """The recorded figures: ``summary`` as in summary.json, ``markets`` the per-market
    columns of markets.csv (:data:`MARKET_COLUMNS`, plus ``session``)."""

    summary: dict[str, Any]
    markets: dict[str, np.ndarray]

    @property
    def spread_observations(self) -> dict[str, Any]:
        return self.summary["orderbook_spread_observations"]

    @property
    def trades(self) -> dict[str, Any]:
        return self.summary["public_trades"]["sample_100k_dec2025"]

    def nonzero_avg_spread(self) -> np.ndarray:
        """The markets' listed average spreads, without those of exactly 0 (ambiguous:
        always 1 cent wide, or never quoted on both sides)."""
        spreads = self.markets["avg_spread_yes"]
        return spreads[spreads != 0]

    def size_patterns(self) -> list[dict[str, Any]]:
        """The pooled resting-size figures of each profiled session."""
        sessions = self.summary["market_profile_sessions"]["sessions"]
        return [sessions[key]["size_patterns"] for key in sorted(sessions)]

    def pooled_size_shares(self) -> dict[str, float]:
        """Shares of level observations of size <= 100, 101..1000 and > 1000, the two
        sessions pooled by their level observations."""
        patterns = self.size_patterns()
        total = sum(p["level_observations"] for p in patterns)
        return {
            key: sum(p[f"share_pct_{key}"] * p["level_observations"] for p in patterns)
            / total
            / 100.0
            for key in ("le_100", "101_to_1000", "gt_1000")
        }

    def most_common_sizes(self, n: int = 10) -> list[int]:
        """The ``n`` most common resting sizes, the two sessions' counts added (only
        sizes in both sessions' top ten lists are complete)."""
        counts: dict[int, int] = {}
        for pattern in self.size_patterns():
            for entry in pattern["most_common_sizes"]:
                counts[entry["size"]] = counts.get(entry["size"], 0) + entry["count"]
        return sorted(counts, key=lambda size: (-counts[size], size))[:n]

    def long_session_delta_rates(self) -> list[float]:
        """Deltas per market per hour of the session table's long sessions."""
        return [
            s["derived_deltas_per_market_per_hour"]
            for s in self.summary["recorded_sessions"]["sessions"]
            if s.get("duration_minutes", 0) >= LONG_SESSION_MINUTES
        ]


def load_reference(path: str | Path = REFERENCE_DIR) -> Reference:
    """Read ``summary.json`` and ``markets.csv`` from ``path``; a missing or unreadable
    file raises naming it."""
    path = Path(path)
    summary_file, markets_file = path / "summary.json", path / "markets.csv"
    try:
        summary = json.loads(summary_file.read_text())
        with markets_file.open(newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, ValueError) as exc:
        raise ValueError(f"the Kalshi reference in {path} cannot be read: {exc}") from exc
    markets = {"session": np.array([int(r["session"]) for r in rows], np.int64)}
    for column in MARKET_COLUMNS:
        try:
            markets[column] = np.array([float(r[column]) for r in rows], np.float64)
        except (KeyError, ValueError) as exc:
            raise ValueError(f"{markets_file}: column {column} unreadable: {exc}") from exc
    return Reference(summary=summary, markets=markets)
