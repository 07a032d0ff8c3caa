"""The one Definitions object ``dagster dev`` loads (through ``workspace.yaml``)."""

from pathlib import Path

import dagster as dg

import kalshi_pipeline.defs
from kalshi_pipeline.runtime import keep_freed_memory

keep_freed_memory()


@dg.definitions
def defs() -> dg.Definitions:
    # load_defs, not load_from_defs_folder: it needs no [tool.dg] table, which would take
    # precedence over workspace.yaml, and works from an installed (non-editable) package.
    return dg.load_defs(kalshi_pipeline.defs, project_root=Path(__file__).parent.parent)
