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
* any mention of the old design file or of a ``../shared`` directory.

The Markdown link grammar is ``test_readme``'s (one grammar for both tests); the README's
own checks (its set-up, the feature layout, no ``../`` at all) stay there. The checks run
on a small repository of known faults too, so that they cannot pass by finding nothing.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from kalshi_pipeline_tests.test_readme import _EXTERNAL, _FENCE, _LINK, _REFERENCE, line_of

REPO = Path(__file__).resolve().parents[1]
CODE_DIRS = ("kalshi_pipeline", "kalshi_pipeline_tests", "benchmarks")
# These two tests quote bad references on purpose, as the faults their checks must find.
FIXTURES = ("kalshi_pipeline_tests/test_readme.py", "kalshi_pipeline_tests/test_docs.py")

_DOCS_PATH = re.compile(r"(?<![\w./-])docs/[\w./-]*?\.md\b")
_FORBIDDEN = re.compile(r"\bDESIGN(?:\.md)?\b|\.\./shared")
_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(.*?)\s*#*\s*$", re.MULTILINE)


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


def reference_problems(path: Path, root: Path = REPO) -> list[str]:
    """``path:line: what`` for each reference of one file that does not resolve."""
    text = path.read_text(encoding="utf-8")
    found = _links(text, path, root)
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
