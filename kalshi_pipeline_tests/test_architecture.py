"""The architecture, enforced: the import contracts in ``pyproject.toml`` hold.

``[tool.importlinter]`` states the layers of ``docs/architecture.md`` (sources < market <
env < training < workflow and pipeline_config < defs < cli and demo), that the domain
never imports Dagster or ``defs/``, that ``config_fields`` imports nothing of the package,
and that neither the library nor the benchmarks import the tests. These tests run
import-linter on the checkout, and show that each contract has teeth: the same linter, run
on a copy of the package with one forbidden import added, fails and names the module that
broke it.

Also here: the facts that used to be written twice are defined once.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def lint_imports(root: Path) -> subprocess.CompletedProcess:
    """Run import-linter on the contracts in ``root/pyproject.toml``, against the packages
    under ``root`` (the linter puts its working directory first on the path)."""
    command = "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"
    return subprocess.run(
        [sys.executable, "-c", command, "--no-cache", "--no-logo"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_the_import_contracts_hold():
    result = lint_imports(REPO)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout, result.stdout


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    """A copy of the packages and the contracts, to break on purpose."""
    ignore = shutil.ignore_patterns("__pycache__")
    for package in ("kalshi_pipeline", "benchmarks"):
        shutil.copytree(REPO / package, tmp_path / package, ignore=ignore)
    shutil.copy(REPO / "pyproject.toml", tmp_path / "pyproject.toml")
    return tmp_path


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        (
            "kalshi_pipeline/market/split.py",
            "import dagster",
            "kalshi_pipeline.market.split -> dagster",
        ),
        (
            "kalshi_pipeline/market/features.py",
            "from kalshi_pipeline.env.execution import HOLD",
            "kalshi_pipeline.market.features -> kalshi_pipeline.env.execution",
        ),
        (
            "kalshi_pipeline/sources/raw.py",
            "from kalshi_pipeline.market.cleaning import CleanEvents",
            "kalshi_pipeline.sources.raw -> kalshi_pipeline.market.cleaning",
        ),
        (
            "kalshi_pipeline/sources/redaction.py",
            "import kalshi_pipeline.cli",
            "kalshi_pipeline.sources.redaction -> kalshi_pipeline.cli",
        ),
        (
            "kalshi_pipeline/env/samplers.py",
            "from kalshi_pipeline.training.config import TrainingConfig",
            "kalshi_pipeline.env.samplers -> kalshi_pipeline.training.config",
        ),
        (
            "kalshi_pipeline/training/callbacks.py",
            "import kalshi_pipeline.defs",
            "kalshi_pipeline.training.callbacks -> kalshi_pipeline.defs",
        ),
        (
            "kalshi_pipeline/training/evaluation/statistics.py",
            "from dagster import asset",
            "kalshi_pipeline.training.evaluation.statistics -> dagster",
        ),
        (
            "kalshi_pipeline/market/views/__init__.py",
            "from kalshi_pipeline_tests.factories import make_session",
            "kalshi_pipeline.market.views -> kalshi_pipeline_tests",
        ),
        (
            "benchmarks/bench_env.py",
            "from kalshi_pipeline_tests.factories import make_session",
            "benchmarks.bench_env -> kalshi_pipeline_tests",
        ),
        (
            "kalshi_pipeline/defs/sensors.py",
            "import kalshi_pipeline.demo",
            "kalshi_pipeline.defs.sensors -> kalshi_pipeline.demo",
        ),
        (
            "kalshi_pipeline/pipeline_config.py",
            "import kalshi_pipeline.cli",
            "kalshi_pipeline.pipeline_config -> kalshi_pipeline.cli",
        ),
        (
            "kalshi_pipeline/config_fields.py",
            "from kalshi_pipeline.paths import HOME_ENV",
            "kalshi_pipeline.config_fields -> kalshi_pipeline.paths",
        ),
    ],
    ids=[
        "market imports dagster",
        "market imports env",
        "sources imports market",
        "sources imports the cli",
        "env imports training",
        "training imports defs",
        "training imports dagster",
        "the library imports the tests",
        "a benchmark imports the tests",
        "defs imports the demo runner",
        "the pipeline config imports the cli",
        "config_fields imports the package",
    ],
)
def test_a_forbidden_import_breaks_the_contract_naming_its_module(checkout, module, line, broken):
    path = checkout / module
    path.write_text(path.read_text() + f"\n{line}  # added by the test\n")
    result = lint_imports(checkout)
    assert result.returncode == 1, result.stdout + result.stderr
    assert broken in result.stdout, result.stdout


def module_level_definitions(matches) -> list[str]:
    """``path:line name`` of every module-level function or assignment in the library
    whose name ``matches``."""
    found = []
    for path in sorted((REPO / "kalshi_pipeline").rglob("*.py")):
        for node in ast.parse(path.read_text(), str(path)).body:
            if isinstance(node, ast.FunctionDef):
                names = [node.name]
            elif isinstance(node, ast.Assign):
                names = [t.id for t in node.targets if isinstance(t, ast.Name)]
            elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                names = [node.target.id]
            else:
                continue
            where = path.relative_to(REPO)
            found += [f"{where}:{node.lineno} {name}" for name in names if matches(name)]
    return found


def test_the_number_of_price_levels_is_defined_once_beside_the_raw_schema():
    assert [d.split(":")[0] for d in module_level_definitions(lambda n: n == "LEVELS")] == [
        "kalshi_pipeline/sources/raw.py"
    ]


def test_the_fee_formula_is_defined_once():
    definitions = module_level_definitions(lambda name: name.endswith("fee_cents"))
    assert [d.split(":")[0] for d in definitions] == ["kalshi_pipeline/market/fees.py"], definitions
