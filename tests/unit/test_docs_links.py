"""Links from docs/*.md into the README name headings that exist (issue 25: docs/ci-example.md named a missing one)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def slug(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    text = re.sub(r"[^\w\- ]", "", heading.strip().lower())
    return text.replace(" ", "-")


def test_readme_anchors_linked_from_docs_exist():
    anchors = {slug(line.lstrip("#")) for line in (ROOT / "README.md").read_text().splitlines()
               if line.startswith("#")}
    links = [(doc.name, anchor) for doc in (ROOT / "docs").glob("*.md")
             for anchor in re.findall(r"\(\.\./README\.md#([^)]+)\)", doc.read_text())]
    assert links, "the docs link into the README"
    assert [link for link in links if link[1] not in anchors] == []


def test_no_doc_names_a_readme_heading_in_quotes_that_does_not_exist():
    headings = {line.lstrip("#").strip() for line in (ROOT / "README.md").read_text().splitlines()
                if line.startswith("#")}
    quoted = [(doc.name, name) for doc in (ROOT / "docs").glob("*.md")
              for name in re.findall(r'"([^"]+)" in the README', doc.read_text())]
    assert [q for q in quoted if q[1] not in headings] == []
