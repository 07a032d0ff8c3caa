"""Arrays that grow with a session, kept in memory or, for a session too big to hold,
in a file that is memory-mapped when read (the kernel pages it in and out, so it need not
fit in memory).

The session-wide parts of cleaning and of the views' statistics (the sequence numbers'
median, the tally of sequence numbers, the receive times behind coverage) hold one value
per event. They are appended group by group, then read once, sorted or partitioned in
place and scanned a chunk at a time (:data:`CHUNK`), so nothing about them needs to be in
memory at once when they live in a file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

CHUNK = 1 << 20  # values scanned at a time


class GrowingArray:
    """An append-only 1-D array of ``dtype``: in memory, or in the file ``path``."""

    def __init__(self, dtype, path: Path | None = None) -> None:
        self.dtype = np.dtype(dtype)
        self._path = path
        self._parts: list[np.ndarray] = []
        if path is not None:
            path.write_bytes(b"")

    def append(self, values: np.ndarray) -> None:
        values = np.ascontiguousarray(values, dtype=self.dtype)
        if self._path is None:
            self._parts.append(values)
        else:
            with open(self._path, "ab") as fh:
                values.tofile(fh)

    def array(self, copy: Path | None = None) -> np.ndarray:
        """Everything appended, as a new array the caller may change in place: in memory
        a concatenation; in a file, the file memory-mapped (or a copy of it at ``copy``,
        when the appended values must stay as they are)."""
        if self._path is None:
            if not self._parts:
                return np.zeros(0, self.dtype)
            return np.concatenate(self._parts)
        source = self._path
        if copy is not None:
            shutil.copyfile(self._path, copy)
            source = copy
        if source.stat().st_size == 0:
            return np.zeros(0, self.dtype)
        return np.memmap(source, self.dtype, mode="r+")


def median(values: np.ndarray) -> float:
    """``np.median(values)``, found by partitioning ``values`` in place (no copy: they
    may be a memory-mapped file)."""
    half = len(values) // 2
    if len(values) % 2:
        values.partition(half)
        return float(values[half])
    values.partition([half - 1, half])
    return (float(values[half - 1]) + float(values[half])) / 2
