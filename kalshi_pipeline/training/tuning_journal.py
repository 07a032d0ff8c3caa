"""A study's journal file, checked before Optuna replays it.

Optuna's journal (``JournalFileBackend``) is one JSON record per line, appended under a
lock. A record torn by a crash (a disk full, a killed copy, a file truncated by hand) is
not reported by Optuna: a torn last line is skipped, and once another record is appended
after it the two make one line that is not JSON, so every record after it is lost or the
study fails with a ``JSONDecodeError`` that names no file. :func:`journal_damage` reads
the file under Optuna's own lock (so a record another process is writing is never taken
for a torn one) and names the first line that is not a whole record, with what to do.

Nothing is repaired automatically: the records after a damaged line may be whole, and
only the user can say whether to keep them (truncate) or start afresh (move the file).
"""

from __future__ import annotations

import json
from pathlib import Path

from optuna.storages.journal import JournalFileSymlinkLock


def journal_damage(path: str | Path) -> str | None:
    """Why the journal at ``path`` cannot be replayed (its first damaged line named, with
    what to do), or ``None`` when every line is a whole record (or the file is absent)."""
    path = Path(path)
    if not path.is_file():
        return None
    lock = JournalFileSymlinkLock(str(path))
    lock.acquire()
    try:
        data = path.read_bytes()
    finally:
        lock.release()
    lines = data.split(b"\n")
    torn_tail = lines.pop()  # b"" when the file ends with a newline, as a whole one does
    for number, line in enumerate(lines, start=1):
        if not _is_record(line):
            return _advice(path, number, len(lines) + bool(torn_tail), "not a whole record")
    if torn_tail:
        return _advice(path, len(lines) + 1, len(lines) + 1, "a record cut short")
    return None


def _is_record(line: bytes) -> bool:
    try:
        record = json.loads(line)
    except ValueError:  # not JSON, or not UTF-8
        return False
    return isinstance(record, dict) and isinstance(record.get("op_code"), int)


def _advice(path: Path, number: int, total: int, what: str) -> str:
    keep = number - 1
    todo = (
        f", or keep its first {keep} line{'s' * (keep != 1)}, the last complete record "
        f"(head -n {keep} {path} > {path}.new && mv {path}.new {path})"
        if keep
        else " (it holds no complete record)"
    )
    return (
        f"the study's journal {path} is damaged at line {number} of {total} ({what}): "
        f"move it away to start the study afresh{todo}"
    )
