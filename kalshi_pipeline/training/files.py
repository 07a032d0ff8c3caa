"""The small file helpers the training modules share: reading a CSV file's rows, and
writing JSON so that a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path


def read_csv_rows(path: Path) -> list[dict]:
    """The rows of a CSV file with a header; none if it does not exist."""
    try:
        with open(path, newline="") as fh:
            return list(csv.DictReader(fh))
    except FileNotFoundError:
        return []


def write_json_atomically(path: Path, value) -> None:
    """Write JSON through a temporary file and ``os.replace``: readers see old or new."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(json.dumps(value, indent=1, sort_keys=True))
    os.replace(partial, path)
