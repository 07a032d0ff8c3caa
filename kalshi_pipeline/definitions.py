"""The one Definitions object ``dagster dev`` loads (through ``workspace.yaml``).

Everything in ``kalshi_pipeline/defs/`` is loaded: assets, checks, jobs, sensors,
schedules and resources (the project is described by ``kalshi_pipeline/dg.toml``).
Importing this module changes no process setting; the resource applies the memory setting
where runs execute (:meth:`kalshi_pipeline.defs.resources.PipelineResource.setup_for_execution`).
"""

from pathlib import Path

import dagster as dg


@dg.definitions
def defs() -> dg.Definitions:
    return dg.load_from_defs_folder(path_within_project=Path(__file__).parent)
