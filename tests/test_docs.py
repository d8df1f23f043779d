"""The docs hold what they promise: the README's two commands, every setting in the operations guide, and links
(files and headings) that lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from service.core.settings import Settings

ROOT = Path(__file__).resolve().parent.parent
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
SETTING_ROW = re.compile(r"^\| (`[A-Z0-9_]+`(?:, `[A-Z0-9_]+`)*) \|", re.MULTILINE)


def anchor(heading: str) -> str:
    """A heading's anchor, as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    return {anchor(line.lstrip("#")) for line in path.read_text().splitlines() if line.startswith("#")}


def test_readme_gives_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "    uv run devdir run " in readme
    assert "    uv run pytest " in readme
    assert len(readme.splitlines()) < 250


def test_operations_guide_lists_every_setting() -> None:
    table = (ROOT / "docs" / "operations.md").read_text().split("## Settings", 1)[1].split("\n## ", 1)[0]
    documented = [name.strip("`") for row in SETTING_ROW.findall(table) for name in row.split(", ")]
    assert sorted(documented) == sorted(Settings.env_names())


@pytest.mark.parametrize("doc", DOCS, ids=lambda path: str(path.relative_to(ROOT)))
def test_links_lead_somewhere(doc: Path) -> None:
    broken = []
    for target in LINK.findall(doc.read_text()):
        if re.match(r"[a-z]+:", target):
            continue  # another site
        file, _, fragment = target.partition("#")
        path = (doc.parent / file).resolve() if file else doc
        if not path.exists() or (fragment and path.is_file() and fragment not in anchors(path)):
            broken.append(target)
    assert broken == []
