"""The demo runner's instance settings: package data, the same file as the repository's.

``kalshi-pipeline demo`` gives a new local Dagster instance the settings shipped inside
the package (``kalshi_pipeline/dagster.yaml``), so an installed package behaves as a
checkout does. The repository root keeps ``dagster.yaml`` for users who copy it into
their ``DAGSTER_HOME``: the two must stay one file. The whole demo, run as a user runs it,
is in ``test_cli.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from importlib import resources
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGED = "kalshi_pipeline/dagster.yaml"


def test_the_packaged_instance_settings_are_the_repository_roots():
    packaged = resources.files("kalshi_pipeline").joinpath("dagster.yaml").read_text()

    assert packaged == (REPO / "dagster.yaml").read_text()
    assert "run_monitoring:" in packaged


def test_the_wheel_ships_the_instance_settings_and_no_runner_in_defs(tmp_path):
    # Built from a copy: setuptools writes build/ and egg-info next to pyproject.toml.
    source = tmp_path / "source"
    ignore = shutil.ignore_patterns("__pycache__")
    shutil.copytree(REPO / "kalshi_pipeline", source / "kalshi_pipeline", ignore=ignore)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(REPO / name, source / name)
    command = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation"]
    subprocess.run(
        [*command, "-w", str(tmp_path / "wheel"), str(source)],
        check=True, capture_output=True, timeout=300,
    )  # fmt: skip

    [wheel] = (tmp_path / "wheel").glob("kalshi_pipeline-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        assert archive.read(PACKAGED).decode() == (REPO / "dagster.yaml").read_text()
    assert "kalshi_pipeline/demo.py" in names
    assert "kalshi_pipeline/defs/demo.py" not in names
    assert "kalshi_pipeline/cli/__main__.py" in names
