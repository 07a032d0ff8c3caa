"""The model history shown to people: the champion's one line and the Markdown table.

``kalshi-pipeline models`` prints both, and ``production_model`` puts them in its Dagster
metadata. The champion comes first, then every other record, newest first; a record's
sessions are shown as ranges (``1-3, 7``) so a long history stays one cell. Records are
those of :mod:`kalshi_pipeline.training.registry`; a record written by hand may lack
fields, which show as ``None`` or an empty cell.
"""

from __future__ import annotations

from collections.abc import Sequence

from kalshi_pipeline.training.registry import RegistryRecord, champion_of

HISTORY_COLUMNS = (
    "id", "status", "at", "model", "sessions", "views", "profile", "seed", "against",
    "markets", "interval", "reason",
)  # fmt: skip


def history_rows(records: Sequence[RegistryRecord]) -> list[dict]:
    """The champion first, then every other record, newest first, as display strings."""
    champion = champion_of(records)
    others = [r for r in reversed(records) if r is not champion]
    return [_display(r) for r in ([champion] if champion else []) + others]


def history_markdown(records: Sequence[RegistryRecord]) -> str:
    """The history as a Markdown table (the champion first)."""
    if not records:
        return "(no model has been a candidate yet)"
    lines = [
        "| " + " | ".join(HISTORY_COLUMNS) + " |",
        "|" + "---|" * len(HISTORY_COLUMNS),
    ]
    for row in history_rows(records):
        cells = [str(row[c]).replace("|", "/") for c in HISTORY_COLUMNS]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def describe_champion(record: RegistryRecord | None) -> str:
    """One line on the model in production: what it is, what it beat and by how much."""
    if record is None:
        return "no champion: no candidate has beaten always-HOLD on the holdout yet"
    shown = _display(record)
    return (
        f"champion: model {record.model_path} (id {record.id}, since {record.at}; "
        f"sessions {shown['sessions']}, {record.views} views, profile "
        f"{record.profile}, seed {record.seed}); beat {record.against} "
        f"over {record.markets} holdout markets, interval {shown['interval']}"
    )


def _display(record: RegistryRecord) -> dict:
    interval = record.interval
    return {
        "id": record.id,
        "status": record.status.value if record.status is not None else None,
        "at": record.at,
        "model": record.model_path,
        "sessions": _ranges(record.sessions),
        "views": record.views,
        "profile": record.profile or "",
        "seed": record.seed,
        "against": record.against or "",
        "markets": record.markets if record.markets is not None else "",
        "interval": f"[{interval[0]:+.4f}, {interval[1]:+.4f}]" if interval else "",
        "reason": record.reason or "",
    }


def _ranges(ids: Sequence[int]) -> str:
    """``[1, 2, 3, 7]`` as ``1-3, 7``: a long history of sessions stays one cell."""
    parts, ids = [], sorted(ids)
    start = prev = None
    for i in ids + [None]:
        if start is not None and i == prev + 1:
            prev = i
            continue
        if start is not None:
            parts.append(str(start) if start == prev else f"{start}-{prev}")
        start = prev = i
    return ", ".join(parts)
