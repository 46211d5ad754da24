"""The documentation holds together: README.md is an entry point of at most 300 lines, and every
relative markdown link in README.md and docs/*.md names a file of the repository (and, for a
`#fragment` into a markdown page, one of its headings, slugged as GitHub does)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tasks.config import PROJECT_ROOT

README = PROJECT_ROOT / "README.md"
PAGES = [README, *sorted((PROJECT_ROOT / "docs").glob("*.md"))]
MAX_README_LINES = 300

FENCE = re.compile(r"^(```|~~~).*?^\1[ \t]*$", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"(`+)(?:(?!\1).)+?\1", re.DOTALL)
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}[ \t]+(.+?)[ \t]*#*[ \t]*$", re.MULTILINE)
EXTERNAL = re.compile(r"^[a-z][a-z0-9+.-]*:", re.IGNORECASE)  # http:, https:, mailto: ...


def prose(text: str) -> str:
    """The text without fenced code blocks and code spans, where brackets are no links."""
    return CODE_SPAN.sub("", FENCE.sub("", text))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, markup and punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link in a heading keeps its text
    text = re.sub(r"[^\w\- ]", "", text.lower().replace("`", ""))
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """Every heading anchor of a markdown page; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", page.read_text(encoding="utf-8"))):
        base = slug(heading)
        count = seen.get(base, 0)
        seen[base] = count + 1
        found.add(base if count == 0 else f"{base}-{count}")
    return found


def links(page: Path) -> list[str]:
    """The link targets of a page, in order, code left out."""
    return LINK.findall(prose(page.read_text(encoding="utf-8")))


def broken_links(page: Path, root: Path = PROJECT_ROOT) -> list[str]:
    """Each relative link of `page` whose file (or heading) does not exist in `root`, as `target: why`."""
    broken = []
    root = root.resolve()
    for target in links(page):
        if EXTERNAL.match(target):
            continue
        path_part, _, fragment = target.partition("#")
        resolved = (page.parent / path_part).resolve() if path_part else page.resolve()
        if root not in (resolved, *resolved.parents):
            broken.append(f"{target}: outside the repository")
        elif not resolved.exists():
            broken.append(f"{target}: no such file")
        elif fragment and resolved.suffix == ".md" and fragment not in anchors(resolved):
            broken.append(f"{target}: no heading #{fragment} in {resolved.relative_to(root)}")
    return broken


def test_readme_is_an_entry_point_of_at_most_300_lines() -> None:
    lines = README.read_text(encoding="utf-8").splitlines()
    assert len(lines) <= MAX_README_LINES, f"README.md has {len(lines)} lines; move detail into docs/"


def test_the_readme_links_every_docs_page() -> None:
    assert len(links(README)) >= len(PAGES)  # the link pattern finds links at all
    linked = {(README.parent / target.partition("#")[0]).resolve() for target in links(README)}
    unlinked = [page.name for page in PAGES[1:] if page.resolve() not in linked]
    assert not unlinked, f"docs pages the README does not link: {unlinked}"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(PROJECT_ROOT)))
def test_every_relative_link_resolves(page: Path) -> None:
    assert broken_links(page) == []


def test_the_link_checker_finds_a_missing_file_a_missing_heading_and_a_way_out(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("# Top\n", encoding="utf-8")
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "elt.md").write_text("# ELT\n\n## Table specs\n", encoding="utf-8")
    page = tmp_path / "docs" / "probe.md"
    page.write_text("# Probe\n\n[a](../README.md) [b](no-such-page.md) [c](elt.md#no-such-heading)"
                    " [d](elt.md#table-specs) [e](#probe) `[f](in-code.md)` [g](https://example.com/x.md)"
                    " [h](../../outside.md)\n\n```\n[i](in-a-fence.md)\n```\n", encoding="utf-8")
    assert broken_links(page, tmp_path) == ["no-such-page.md: no such file",
                                            "elt.md#no-such-heading: no heading #no-such-heading in docs/elt.md",
                                            "../../outside.md: outside the repository"]


def test_slugs_follow_github() -> None:
    assert slug("Reconcile: settling `unknown`") == "reconcile-settling-unknown"
    assert slug("After `make run`") == "after-make-run"
    assert slug("RunAll, cron and luigid") == "runall-cron-and-luigid"
