"""Every reference to a Markdown page in code, tests, recipes and docs resolves.

A reference is ``name.md`` or ``dir/name.md``, optionally followed by ``§N`` (a section
number). It resolves when the file exists in the repository (relative to the repository
root, or to the citing Markdown file for relative links) and, with ``§N``, when the page has
a heading numbered ``N.``.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SOURCES = ("zoom_agent", "tools", "graphs", "training", "tests", "benchmarks", "examples", "docs", ".ci")
SUFFIXES = {".py", ".md", ".yaml", ".yml", ".toml", ""}
REF = re.compile(r"(?<![\w/.-])((?:\.\./|\./)?(?:[\w-]+/)*[\w-]+\.md)\b(?:\s*§\s*(\d+(?:\.\d+)*))?")
HEADING = re.compile(r"^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s", re.M)
# Files the project writes (an evaluation's report, the ablation's table), not references:
OUTPUT_FILES = {"report.md", "table.md"}


def _files() -> list[Path]:
    found = [ROOT / "README.md", ROOT / "pyproject.toml"]
    for top in SOURCES:
        for path in sorted((ROOT / top).rglob("*")):
            if (
                path.is_file()
                and path.suffix in SUFFIXES
                and "__pycache__" not in path.parts
                and path != Path(__file__).resolve()
            ):
                found.append(path)
    return [p for p in found if p.is_file()]


def _references() -> list[tuple[str, str, str | None]]:
    refs = []
    for path in _files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in REF.finditer(text):
            if match.group(1) in OUTPUT_FILES:
                continue
            refs.append((str(path.relative_to(ROOT)), match.group(1), match.group(2)))
    return refs


def _resolve(citing: str, target: str) -> Path | None:
    bases = [ROOT]
    if citing.endswith(".md"):
        bases.insert(0, (ROOT / citing).parent)
    for base in bases:
        candidate = (base / target).resolve()
        if candidate.is_file() and ROOT in candidate.parents:
            return candidate
    return None


def test_the_scan_finds_references() -> None:
    targets = {t for _, t, _ in _references()}
    assert "docs/method.md" in targets  # the scan works (the code cites the method page)


def test_every_markdown_reference_resolves_inside_the_repository() -> None:
    broken = []
    for citing, target, section in _references():
        page = _resolve(citing, target)
        if page is None:
            broken.append(f"{citing}: {target} (no such file in the repository)")
            continue
        if section is not None:
            numbers = set(HEADING.findall(page.read_text(encoding="utf-8")))
            if section not in numbers:
                broken.append(f"{citing}: {target} §{section} (sections: {sorted(numbers)})")
    assert not broken, "broken references:\n" + "\n".join(sorted(set(broken)))


@pytest.mark.parametrize("page", ["architecture", "method", "training", "evaluation", "quality"])
def test_the_project_ships_its_docs(page: str) -> None:
    path = ROOT / "docs" / f"{page}.md"
    assert path.is_file(), f"docs/{page}.md is missing"
    assert len(path.read_text(encoding="utf-8").split()) > 200
