"""Where things live on disk (``docs/contracts.md``).

``KALSHI_PIPELINE_HOME`` (default ``./.kalshi-pipeline``) holds the local session store in
``sessions/`` and models and reports in ``artifacts/``. ``KALSHI_COLLECTOR_URL``, when set,
makes the collector's Postgres the session source. Every environment variable, these two
included, is read and checked in :mod:`kalshi_pipeline.sources.settings`.
"""

from __future__ import annotations

import os
from pathlib import Path

from kalshi_pipeline.sources.settings import COLLECTOR_URL, PIPELINE_HOME

HOME_ENV = PIPELINE_HOME.name
COLLECTOR_URL_ENV = COLLECTOR_URL.name
DEFAULT_HOME = PIPELINE_HOME.default


def pipeline_home(home: str | os.PathLike[str] | None = None) -> Path:
    """``home`` if given, else ``$KALSHI_PIPELINE_HOME``, else ``./.kalshi-pipeline``."""
    return Path(home or PIPELINE_HOME.read() or DEFAULT_HOME).resolve()


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
