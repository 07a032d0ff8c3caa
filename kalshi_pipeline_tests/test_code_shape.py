"""The code's shape, enforced: small modules, short functions, shallow branching.

A library module holds one job in at most :data:`MAX_MODULE_LINES` lines, and a function
does one step in at most :data:`MAX_FUNCTION_LINES` (docstring included), with no
exception today. Branching is held by ruff's C901 rule
(max-complexity 12, ``[tool.ruff.lint.mccabe]`` in ``pyproject.toml``), run here so that
the test suite, not only a developer's habit, keeps it.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "kalshi_pipeline"
MAX_MODULE_LINES = 400
MAX_FUNCTION_LINES = 60


def library_modules() -> list[Path]:
    return sorted(PACKAGE.rglob("*.py"))


def long_modules(paths: list[Path], root: Path = REPO) -> list[str]:
    return [
        f"{path.relative_to(root).as_posix()}: {lines} lines"
        for path in paths
        if (lines := len(path.read_text().splitlines())) > MAX_MODULE_LINES
    ]


def functions(node: ast.AST, prefix: str = ""):
    """(qualified name, lines) of every function under ``node``, nested ones too."""
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            name = f"{prefix}{child.name}"
            if not isinstance(child, ast.ClassDef):
                yield name, child.end_lineno - child.lineno + 1
            yield from functions(child, f"{name}.")
        else:
            yield from functions(child, prefix)


def long_functions(paths: list[Path], root: Path = REPO) -> list[str]:
    """Every function over the limit, as ``module:qualified.name: N lines``."""
    found = []
    for path in paths:
        module = path.relative_to(root).as_posix()
        for name, lines in functions(ast.parse(path.read_text())):
            key = f"{module}:{name}"
            if lines > MAX_FUNCTION_LINES:
                found.append(f"{key}: {lines} lines")
    return found


def test_no_library_module_is_over_the_limit():
    assert long_modules(library_modules()) == []


def test_no_function_is_over_the_limit():
    assert long_functions(library_modules()) == []


def test_the_limits_catch_what_they_are_for(tmp_path):
    """The checks find a long module and a long (nested) function, naming them."""
    body = "\n".join(f"        x{i} = {i}" for i in range(MAX_FUNCTION_LINES))
    source = tmp_path / "kalshi_pipeline" / "too_long.py"
    source.parent.mkdir()
    source.write_text(
        f"class Box:\n    def fits(self):\n        return 1\n\n\ndef outer():\n"
        f"    def inner():\n{body}\n    return inner\n" + "\n" * MAX_MODULE_LINES
    )
    assert long_functions([source], tmp_path) == [
        f"kalshi_pipeline/too_long.py:outer: {MAX_FUNCTION_LINES + 3} lines",
        f"kalshi_pipeline/too_long.py:outer.inner: {MAX_FUNCTION_LINES + 1} lines",
    ]
    lines = len(source.read_text().splitlines())
    assert lines > MAX_MODULE_LINES
    assert long_modules([source], tmp_path) == [f"kalshi_pipeline/too_long.py: {lines} lines"]


def test_ruff_passes_with_the_complexity_rule_on():
    """``ruff check`` (C901 with max-complexity 12 among its rules) passes on the repo."""
    ruff = shutil.which("ruff") or [sys.executable, "-m", "ruff"]
    command = [ruff] if isinstance(ruff, str) else ruff
    result = subprocess.run(
        [*command, "check", "--quiet", "."], cwd=REPO, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    config = (REPO / "pyproject.toml").read_text()
    assert '"C90"' in config and "max-complexity = 12" in config
