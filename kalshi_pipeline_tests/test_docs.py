"""Every reference to a document resolves inside the repository.

The spec the code cites lives in ``docs/``; a reference to a file that is not there, or to
the design notes this project was once planned from (outside the repository), leaves a
reader with nothing to read. This test scans every Markdown file of the repository (README
included) and the Python files of ``kalshi_pipeline/``, ``kalshi_pipeline_tests/`` and
``benchmarks/`` and reports, as ``path:line: what``, each reference that does not resolve:

* a relative Markdown link or link definition whose target does not exist (in a Markdown
  file any target, relative to that file; in Python only ``.md`` targets, relative to the
  repository root), or whose
  ``#anchor`` names no heading of the Markdown file it points to;
* a backticked or bare ``docs/<name>.md`` path (relative to the repository root) that is
  not a file;
* any mention of the old design file or of a ``../shared`` directory;
* in a Markdown file, a path to code that names no file or directory of the repository.
  Only what is quoted as code is read: backticked spans and fenced blocks (prose may say
  "views" or "cleaning" freely; a link target is already checked above). A word there is
  a path to code when it is one of three forms, each with its own rule:

  - a full path, starting ``kalshi_pipeline/``, ``kalshi_pipeline_tests/`` or
    ``benchmarks/``: it exists, relative to the repository root;
  - a short path, ``<dir>/<more>`` whose first part is the name of a directory of the
    code (``market/views/``, ``training/phases.py``, ``sources/test_raw.py``,
    ``assets/data_assets.py``): the full path of some file or directory of the code ends
    with it. Words whose first part names no code directory (``OUT/models/``,
    ``artifacts/raw/``, ``deploy/``) are not code and not read;
  - a bare module file, ``<name>.py``: some file of the code has that name. (This catches
    a module that is gone, such as the former ``cli.py``; a short name another module
    still has is left to the reader, which is why the docs prefer the longer forms.)

  A trailing ``/``, ``...`` or ``…`` ("everything under it") is dropped before the
  check. A dotted name starting ``kalshi_pipeline.`` (``kalshi_pipeline.pipeline_config.
  DEMO``, ``kalshi_pipeline.definitions:defs``) is checked too: its modules exist, and the
  first name after the last module is defined or imported at that module's top level.

The Markdown link grammar is ``test_readme``'s (one grammar for both tests); the README's
own checks (its set-up, the feature layout, no ``../`` at all) stay there. The checks run
on a small repository of known faults too, so that they cannot pass by finding nothing.
"""

from __future__ import annotations

import ast
import os
import re
from functools import cache
from pathlib import Path

from kalshi_pipeline_tests.test_readme import _EXTERNAL, _FENCE, _LINK, _REFERENCE, line_of

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("kalshi_pipeline", "kalshi_pipeline_tests", "benchmarks")
# These two tests quote bad references on purpose, as the faults their checks must find.
FIXTURES = ("kalshi_pipeline_tests/test_readme.py", "kalshi_pipeline_tests/test_docs.py")

_DOCS_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*?\.md\b")
_FORBIDDEN = re.compile(r"\bDESIGN(?:\.md)?\b|\.\./shared")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)
_CODE_SPAN = re.compile(r"(`+)(.+?)\1", re.DOTALL)
# A word of a code span that may be a path: letters, digits, _ . / - and a trailing
# ellipsis; not preceded by a path character (so ``$HOME/x.py`` or ``a:b/c.py`` is not
# read as ``x.py`` or ``b/c.py``).
_PATH_WORD = re.compile(r"(?<![\w./$:~-])[\w][\w./-]*(?:\.\.\.|\u2026)?")
_LOWERCASE_PATH = re.compile(r"[a-z0-9_]+(?:/[a-z0-9_]+)*(?:\.[a-z0-9]+)?")
_DOTTED = re.compile(r"(?<![\w.])kalshi_pipeline(?:_tests)?(?:[.:]\w+)+")


def _skipped(name: str) -> bool:
    """Directories that are not the repository's content: git, caches, builds, homes."""
    return name.startswith(".") or name.endswith(".egg-info") or name == "__pycache__"


def files_to_check(root: Path = REPO) -> list[Path]:
    """Every ``*.md`` under ``root`` and every ``*.py`` under its code directories."""
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not _skipped(d))
        here = Path(folder)
        in_code = here.relative_to(root).parts[:1] in [(d,) for d in CODE_DIRS]
        for name in sorted(files):
            if name.endswith(".md") or (in_code and name.endswith(".py")):
                found.append(here / name)
    return found


def slug(heading: str) -> str:
    """The anchor a heading gets on GitHub: lowercase, punctuation dropped, spaces to -."""
    text = re.sub(r"[`*_]|\[([^\]]*)\]\([^)]*\)", r"\1", heading).strip().lower()
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def anchors(markdown: str) -> set[str]:
    """Every heading anchor of a Markdown text (repeats get ``-1``, ``-2``, ...)."""
    seen: dict[str, int] = {}
    out = set()
    prose = _FENCE.sub(lambda block: "\n" * block.group().count("\n"), markdown)
    for heading in _HEADING.finditer(prose):
        base = slug(heading.group(1))
        count = seen.get(base, 0)
        seen[base] = count + 1
        out.add(base if count == 0 else f"{base}-{count}")
    return out


def _link_problem(target: str, source: Path, root: Path) -> str | None:
    """What is wrong with one relative link target of ``source``, if anything."""
    path_part, _, anchor = target.partition("#")
    # Markdown links are relative to their file; a docstring's paths are the repository's.
    base = source.parent if source.suffix == ".md" else root
    path = (base / path_part).resolve() if path_part else source
    if not (path.is_relative_to(root) and path.exists()):
        return f"link {target} does not exist"
    if anchor and path.suffix == ".md" and anchor not in anchors(path.read_text()):
        return f"link {target}: no heading #{anchor} in {path.relative_to(root)}"
    return None


def _links(text: str, source: Path, root: Path) -> list[tuple[int, str]]:
    prose = _FENCE.sub(lambda block: "\n" * block.group().count("\n"), text)
    problems = []
    for link in [*_LINK.finditer(prose), *_REFERENCE.finditer(prose)]:
        target = link.group(1)
        if _EXTERNAL.match(target) and not target.startswith("#"):
            continue
        if source.suffix == ".py" and not target.split("#")[0].endswith(".md"):
            continue
        problem = _link_problem(target, source, root)
        if problem:
            problems.append((line_of(prose, link.start()), problem))
    return problems


def _code_quotes(markdown: str) -> list[tuple[int, str]]:
    """The offset and text of every fenced block and backticked span of a Markdown text."""
    quotes = [(block.start(), block.group()) for block in _FENCE.finditer(markdown)]
    prose = _FENCE.sub(lambda block: " " * len(block.group()), markdown)
    quotes += [(span.start(2), span.group(2)) for span in _CODE_SPAN.finditer(prose)]
    return sorted(quotes)


@cache
def _code_paths(root: Path) -> tuple[frozenset[str], frozenset[str]]:
    """Every file and directory of the code (as ``a/b/c``), and every directory's name."""
    paths, dir_names = set(), set()
    for top in CODE_DIRS:
        for folder, dirs, files in os.walk(root / top):
            dirs[:] = [d for d in dirs if not _skipped(d)]
            here = Path(folder).relative_to(root)
            paths.add(here.as_posix())
            dir_names.add(here.name)
            paths.update((here / name).as_posix() for name in files)
    return frozenset(paths), frozenset(dir_names)


def _path_problem(word: str, root: Path) -> str | None:
    """What is wrong with one word of a code span, if it is a path to code that is not."""
    path = re.sub(r"(\.\.\.|\u2026)$", "", word).rstrip("/.")
    paths, dir_names = _code_paths(root)
    first, slash, _ = path.partition("/")
    if not _LOWERCASE_PATH.fullmatch(path):
        return None
    if first in CODE_DIRS and slash:
        found = (root / path).exists()
    elif slash and first in dir_names:
        found = any(code.endswith("/" + path) for code in paths)
    elif not slash and path.endswith(".py") and re.fullmatch(r"\w+\.py", path):
        found = any(code.endswith("/" + path) for code in paths) or (root / path).is_file()
    else:
        return None
    return None if found else f"{path} names no file or directory of the code"


def _module_file(parts: list[str], root: Path) -> tuple[Path | None, list[str]]:
    """The file of the longest module prefix of ``parts``, and the names after it."""
    here, file = root, None
    for index, part in enumerate(parts):
        if (here / part / "__init__.py").is_file():
            here, file = here / part, here / part / "__init__.py"
        elif (here / f"{part}.py").is_file():
            return here / f"{part}.py", parts[index + 1 :]
        else:
            return file, parts[index:]
    return file, []


def _top_level_names(tree: ast.Module) -> set[str]:
    """The names a module defines, assigns or imports at its top level (``if`` and
    ``try`` blocks included, for ``TYPE_CHECKING`` and optional imports)."""
    names, pending = set(), list(tree.body)
    while pending:
        node = pending.pop()
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
            targets = node.targets if isinstance(node, ast.Assign) else [node.target]
            names.update(n.id for t in targets for n in ast.walk(t) if isinstance(n, ast.Name))
        elif isinstance(node, (ast.If, ast.Try)):
            pending.extend(ast.iter_child_nodes(node))
    return names


def _dotted_problem(name: str, root: Path) -> str | None:
    """What is wrong with a dotted ``kalshi_pipeline`` name, if anything."""
    file, rest = _module_file(re.split(r"[.:]", name), root)
    if file is None:
        return f"{name}: no such module"
    if rest and rest[0] not in _top_level_names(ast.parse(file.read_text(encoding="utf-8"))):
        module = file.relative_to(root).as_posix()
        return f"{name}: {module} has no {rest[0]} (no module of that name either)"
    return None


def code_path_problems(markdown: str, root: Path = REPO) -> list[tuple[int, str]]:
    """``(line, what)`` for each path to code or dotted module name of a Markdown text's
    code spans and blocks that does not resolve (the rules are the module docstring's)."""
    problems = []
    for offset, quote in _code_quotes(markdown):
        checks = [(w, _path_problem(w.group(), root)) for w in _PATH_WORD.finditer(quote)]
        checks += [(d, _dotted_problem(d.group(), root)) for d in _DOTTED.finditer(quote)]
        problems += [
            (line_of(markdown, offset + word.start()), problem)
            for word, problem in checks
            if problem
        ]
    return problems


def reference_problems(path: Path, root: Path = REPO) -> list[str]:
    """``path:line: what`` for each reference of one file that does not resolve."""
    text = path.read_text(encoding="utf-8")
    found = _links(text, path, root)
    if path.suffix == ".md":
        found += code_path_problems(text, root)
    for mention in _DOCS_PATH.finditer(text):
        if not (root / mention.group()).is_file():
            found.append((line_of(text, mention.start()), f"{mention.group()} does not exist"))
    for mention in _FORBIDDEN.finditer(text):
        what = f"{mention.group()!r}: cite the docs/ file that holds it"
        found.append((line_of(text, mention.start()), what))
    name = path.relative_to(root).as_posix()
    return list(
        dict.fromkeys(f"{name}:{line}: {what}" for line, what in sorted(found, key=lambda f: f[0]))
    )


def repository_problems(root: Path = REPO) -> list[str]:
    problems = []
    for path in files_to_check(root):
        if path.relative_to(root).as_posix() not in FIXTURES:
            problems.extend(reference_problems(path, root))
    return problems


def test_every_reference_to_a_document_resolves_inside_the_repository():
    problems = repository_problems()
    assert not problems, "references that do not resolve:\n" + "\n".join(problems)


def test_the_checks_find_each_kind_of_bad_reference(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "kalshi_pipeline").mkdir()
    (tmp_path / "docs" / "guide.md").write_text("# The guide\n\n## Two words\n")
    (tmp_path / "README.md").write_text(
        "See [the guide](docs/guide.md#two-words) and [gone](docs/gone.md).\n"
        "Also [no such part](docs/guide.md#three-words), `docs/missing.md`, and\n"
        "the plan in DESIGN.md section 5.\n"
        "```\n[in a code block](nowhere/not-checked.md)\n```\n"
    )
    (tmp_path / "docs" / "other.md").write_text(
        "Back to [the README](../README.md), [the guide](guide.md#the-guide) and"
        " [here](#other).\n\n# Other\n\nNot [there](#nowhere); ../shared/notes.\n"
    )
    (tmp_path / "kalshi_pipeline" / "mod.py").write_text(
        '"""The rules of docs/environment.md; see [a](docs/guide.md), [b](x/y.py)."""\n'
    )
    (tmp_path / "notes.py").write_text('"""docs/outside-code-dirs-is-not-read.md"""\n')
    (tmp_path / ".cache").mkdir()
    (tmp_path / ".cache" / "skipped.md").write_text("[gone](nowhere.md)\n")

    assert repository_problems(tmp_path) == [
        "README.md:1: link docs/gone.md does not exist",
        "README.md:1: docs/gone.md does not exist",
        "README.md:2: link docs/guide.md#three-words: no heading #three-words in docs/guide.md",
        "README.md:2: docs/missing.md does not exist",
        "README.md:3: 'DESIGN.md': cite the docs/ file that holds it",
        "docs/other.md:5: link #nowhere: no heading #nowhere in docs/other.md",
        "docs/other.md:5: '../shared': cite the docs/ file that holds it",
        "kalshi_pipeline/mod.py:1: docs/environment.md does not exist",
    ]


def test_the_code_path_check_finds_each_stale_form_and_nothing_else(tmp_path):
    for module in ("kalshi_pipeline/market/views/__init__.py", "benchmarks/bench_env.py"):
        (tmp_path / module).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / module).write_text("from os import path\n\nDEMO = 1\n")
    (tmp_path / "kalshi_pipeline" / "__init__.py").write_text("")
    (tmp_path / "kalshi_pipeline" / "market" / "__init__.py").write_text("")
    (tmp_path / "kalshi_pipeline" / "workflow.py").write_text("def run():\n    pass\n")
    (tmp_path / "kalshi_pipeline_tests" / "market").mkdir(parents=True)
    (tmp_path / "kalshi_pipeline_tests" / "market" / "test_views.py").write_text("")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "guide.md").write_text(
        "Views: `kalshi_pipeline/market/views/` and `market/views/…`, tested in\n"
        "`market/test_views.py`; once `kalshi_pipeline/market/views.py`, `market/cleaning.py`\n"
        "and `cli.py`, still `workflow.py`; `python benchmarks/bench_env.py`.\n"
        "Not code: `OUT/models/phase<N>/`, `artifacts/raw/`, `deploy/`, `validation/timesteps`,\n"
        "`kalshi_pipeline/MarketAgnosticKalshi-v0`, and views.py or market/cleaning.py in prose.\n"
        "Names: `kalshi_pipeline.workflow.run`, `kalshi_pipeline.market.views.DEMO`, and\n"
        "`kalshi_pipeline.market.views.path`; gone: `kalshi_pipeline.workflow.DEMO`, and\n"
        "`kalshi_pipeline.cli` (a package now, `kalshi_pipeline/cli/`, in this repository not).\n"
        "```bash\npython benchmarks/bench_gone.py   # a fenced block is code too\n```\n"
    )

    assert repository_problems(tmp_path) == [
        "docs/guide.md:2: kalshi_pipeline/market/views.py names no file or directory of the code",
        "docs/guide.md:2: market/cleaning.py names no file or directory of the code",
        "docs/guide.md:3: cli.py names no file or directory of the code",
        "docs/guide.md:7: kalshi_pipeline.workflow.DEMO: kalshi_pipeline/workflow.py has no DEMO"
        " (no module of that name either)",
        "docs/guide.md:8: kalshi_pipeline.cli: kalshi_pipeline/__init__.py has no cli"
        " (no module of that name either)",
        "docs/guide.md:8: kalshi_pipeline/cli names no file or directory of the code",
        "docs/guide.md:10: benchmarks/bench_gone.py names no file or directory of the code",
    ]


_TEST_NAME = re.compile(r"`(test_\w+)`")


def test_every_test_the_faults_table_names_exists():
    """docs/faults.md says which tests hold each fault class: each must be a test."""
    defined = {
        node.name
        for path in (REPO / "kalshi_pipeline_tests").rglob("test_*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.FunctionDef)
    }
    named = set(_TEST_NAME.findall((REPO / "docs" / "faults.md").read_text()))
    assert len(named) > 50
    assert sorted(named - defined) == []
