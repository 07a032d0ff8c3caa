"""The README's set-up and facts hold for a fresh clone of this repository.

Each check reads README.md as text (regexes, no network) and returns what is wrong, by
line, so a failure says where to look. The checks are also run on a small README with the
faults a fresh clone once hit (DAGSTER_HOME used before it existed, a stale feature layout
version, a path to a directory outside the repository), so that they cannot pass by
finding nothing to check.
"""

from __future__ import annotations

import re
from pathlib import Path

from kalshi_pipeline.market.features import FEATURE_LAYOUT, FEATURE_LAYOUT_VERSION

REPO = Path(__file__).resolve().parents[1]
README = REPO / "README.md"

_FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
_LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)", re.MULTILINE)
_EXTERNAL = re.compile(r"^(?:[a-z][a-z0-9+.-]*:|#)", re.IGNORECASE)  # http:, mailto:, #anchor
_LAYOUT_NAME = re.compile(r"kalshi-market-[a-z0-9-]*\d")  # how layouts are named


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def dagster_setup_problems(text: str) -> list[str]:
    """In the block that copies dagster.yaml, ``mkdir -p "$DAGSTER_HOME"`` must come first."""
    blocks = [
        block.group() for block in _FENCE.finditer(text) if "cp dagster.yaml" in block.group()
    ]
    if not blocks:
        return ["no code block copies dagster.yaml into $DAGSTER_HOME"]
    problems = []
    for block in blocks:
        lines = block.splitlines()
        copy = next(i for i, line in enumerate(lines) if "cp dagster.yaml" in line)
        made = [
            i
            for i, line in enumerate(lines)
            if re.match(r'\s*mkdir -p "?\$DAGSTER_HOME"?(\s|$)', line)
        ]
        if not made or made[0] > copy:
            problems.append(f"{lines[copy].split('#')[0].strip()!r} without mkdir -p before it")
    return problems


def feature_layout_problems(text: str) -> list[str]:
    """Every layout version and name the README gives is the code's."""
    problems, versions, code = [], 0, f"the code is at version {FEATURE_LAYOUT_VERSION}"
    for paragraph in re.finditer(r"(?:[^\n]+\n?)+", text):
        if "layout" not in paragraph.group().lower():
            continue
        for version in re.finditer(r"\bversion (\d+)", paragraph.group()):
            versions += 1
            if int(version.group(1)) != FEATURE_LAYOUT_VERSION:
                line = line_of(text, paragraph.start() + version.start())
                problems.append(f"line {line}: feature layout {version.group()}, {code}")
    for name in _LAYOUT_NAME.finditer(text):
        if name.group() != FEATURE_LAYOUT:
            line = line_of(text, name.start())
            problems.append(f"line {line}: layout {name.group()}, the code's is {FEATURE_LAYOUT}")
    if not versions:
        problems.append("the feature layout's version is not given")
    return problems


def outside_path_problems(text: str, root: Path = REPO) -> list[str]:
    """No ``../`` anywhere; every relative link target exists inside the repository."""
    problems = [
        f"line {line_of(text, found.start())}: {found.group()!r} points outside the repository"
        for found in re.finditer(r"\S*\.\./\S*", text)
    ]
    prose = _FENCE.sub(lambda block: "\n" * block.group().count("\n"), text)
    for link in [*_LINK.finditer(prose), *_REFERENCE.finditer(prose)]:
        target = link.group(1).split("#")[0]
        if not target or _EXTERNAL.match(link.group(1)):
            continue
        path = (root / target.lstrip("/")).resolve()
        if not (path.is_relative_to(root) and path.exists()):
            problems.append(f"line {line_of(prose, link.start())}: link {target} does not exist")
    return problems


def test_the_dagster_setup_makes_dagster_home_before_copying_into_it():
    assert dagster_setup_problems(README.read_text()) == []


def test_the_feature_layout_version_and_name_are_the_codes():
    assert feature_layout_problems(README.read_text()) == []


def test_the_readme_stands_alone_every_link_inside_the_repository():
    assert outside_path_problems(README.read_text()) == []


FAULTY = f"""\
Phased PPO training. See `../shared/DESIGN.md` for the whole plan, and
[the cleaning](kalshi_pipeline/market/no_such_module.py), [views](kalshi_pipeline/market/views/).

The layout's name and version (`{FEATURE_LAYOUT}`, version {FEATURE_LAYOUT_VERSION - 1}) are
stored with every view; `{FEATURE_LAYOUT}0` was another.

```bash
export DAGSTER_HOME=$PWD/.kalshi-pipeline/dagster
cp dagster.yaml $DAGSTER_HOME/
mkdir -p "$DAGSTER_HOME"
```
"""


def test_the_checks_find_the_faults_a_fresh_clone_hit():
    assert dagster_setup_problems(FAULTY) == [
        "'cp dagster.yaml $DAGSTER_HOME/' without mkdir -p before it"
    ]
    assert feature_layout_problems(FAULTY) == [
        f"line 4: feature layout version {FEATURE_LAYOUT_VERSION - 1}, the code is at version "
        f"{FEATURE_LAYOUT_VERSION}",
        f"line 5: layout {FEATURE_LAYOUT}0, the code's is {FEATURE_LAYOUT}",
    ]
    assert outside_path_problems(FAULTY) == [
        "line 1: '`../shared/DESIGN.md`' points outside the repository",
        "line 2: link kalshi_pipeline/market/no_such_module.py does not exist",
    ]
