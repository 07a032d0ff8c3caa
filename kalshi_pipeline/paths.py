"""Where things live on disk (``docs/contracts.md``): one place for the environment variables.

``KALSHI_PIPELINE_HOME`` (default ``./.kalshi-pipeline``) holds the local session store in
``sessions/`` and models and reports in ``artifacts/``. ``KALSHI_COLLECTOR_URL``, when set,
makes the collector's Postgres the session source. Settings of one concern live beside it:
the collector's timeouts (``KALSHI_COLLECTOR_CONNECT_TIMEOUT_S``,
``KALSHI_COLLECTOR_STATEMENT_TIMEOUT_S``) in
:mod:`kalshi_pipeline.sources.collector_connection`, the ingest retry delay
(``KALSHI_SOURCE_RETRY_DELAY_SECONDS``) in :mod:`kalshi_pipeline.defs.resources`.
"""

from __future__ import annotations

import os
from pathlib import Path

HOME_ENV = "KALSHI_PIPELINE_HOME"
COLLECTOR_URL_ENV = "KALSHI_COLLECTOR_URL"
DEFAULT_HOME = ".kalshi-pipeline"


def pipeline_home(home: str | os.PathLike[str] | None = None) -> Path:
    """``home`` if given, else ``$KALSHI_PIPELINE_HOME``, else ``./.kalshi-pipeline``."""
    return Path(home or os.environ.get(HOME_ENV) or DEFAULT_HOME).resolve()


def sessions_dir(home: Path) -> Path:
    return home / "sessions"


def artifacts_dir(home: Path) -> Path:
    return home / "artifacts"


def tuning_dir(home: Path) -> Path:
    """Tuning studies (``studies.journal``, the default storage) and their trials' models."""
    return artifacts_dir(home) / "tuning"


def hyperparameters_file(home: Path, study: str) -> Path:
    """Where ``kalshi-pipeline tune`` writes a study's best hyperparameters."""
    return artifacts_dir(home) / "hyperparameters" / f"{study}.json"
