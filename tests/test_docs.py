"""The README is a front page that sends readers into docs/: every relative link there (and
between the docs) must reach a file, and every #anchor a heading of it."""

from __future__ import annotations

import re
from pathlib import Path

from msa.testing import ROOT

LINK = re.compile(r"\]\(([^)\s]+)\)")


def _anchor(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _headings(path: Path) -> set[str]:
    inside_code, out = False, set()
    for line in path.read_text().splitlines():
        if line.startswith("```"):
            inside_code = not inside_code
        elif not inside_code and line.startswith("#"):
            out.add(_anchor(line.lstrip("#")))
    return out


def broken_links(page: Path) -> list[str]:
    broken = []
    for link in LINK.findall(page.read_text()):
        if link.startswith(("http://", "https://", "mailto:")):
            continue
        path, _, anchor = link.partition("#")
        target = (page.parent / path) if path else page
        if not target.exists():
            broken.append(f"{link}: no such file")
        elif anchor and target.suffix == ".md" and anchor not in _headings(target):
            broken.append(f"{link}: no heading #{anchor}")
    return broken


def test_every_link_of_the_readme_and_the_docs_resolves() -> None:
    pages = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
    assert {p.name for p in pages} >= {"README.md", "app.md", "finetune.md", "training.md", "contributing.md"}
    broken = {p.name: b for p in pages if (b := broken_links(p))}
    assert not broken, broken


def test_the_checker_sees_a_broken_file_and_a_broken_anchor(tmp_path: Path) -> None:
    (tmp_path / "a.md").write_text("# Title\n\n## A part\n\n```\n# not a heading\n```\n")
    page = tmp_path / "b.md"
    page.write_text("[ok](a.md#a-part) [gone](c.md) [no anchor](a.md#not-a-heading) [self](#x)\n\n# X\n")
    assert broken_links(page) == ["c.md: no such file", "a.md#not-a-heading: no heading #not-a-heading"]
