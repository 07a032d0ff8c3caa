"""The evaluation report: a directory with Markdown, CSV, JSON and PNG plots.

:func:`write_report` (:mod:`.writer`) writes it from the episodes, the per-market rows
and the summary over markets; :mod:`.markdown` lays out ``report.md`` (results first,
lineage last), :mod:`.plots` draws the figures named in :data:`PLOTS`, and :mod:`.order`
fixes the order policies and splits are listed in.
"""

from kalshi_pipeline.training.report.plots import PLOTS
from kalshi_pipeline.training.report.writer import WrittenReport, write_report

__all__ = ["PLOTS", "WrittenReport", "write_report"]
