"""A book per `.md` file: title = its first `#` heading (else the file stem), a block per paragraph."""
from __future__ import annotations

import re
from pathlib import Path

from .runner import BookSource, split_paragraphs

_HEADING = re.compile(r"^\s{0,3}#{1,6}\s+(?P<title>.+?)\s*#*\s*$")


def markdown_files(directory: Path) -> list[Path]:
    return sorted(p for p in Path(directory).rglob("*.md") if p.is_file())


def read_markdown_book(path: Path) -> BookSource:
    text = Path(path).read_text(encoding="utf-8-sig", errors="replace")
    paragraphs = split_paragraphs(text)
    title = None
    for index, paragraph in enumerate(paragraphs):
        m = _HEADING.match(paragraph.splitlines()[0])
        if m:
            title = m.group("title")
            if "\n" not in paragraph:
                # the heading alone is the title, not content: keep it out of the blocks
                paragraphs = paragraphs[:index] + paragraphs[index + 1:]
            break
    return BookSource(title or Path(path).stem, paragraphs)


def markdown_books(directory: Path) -> list[BookSource]:
    return [read_markdown_book(p) for p in markdown_files(directory)]
