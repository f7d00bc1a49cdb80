"""Import books through the domain write path (the same functions the API calls).

Re-running an import never duplicates: the library is reused by name and each book replaces any
book of the same title in it (hard delete + create, one transaction per book).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Callable, Iterable

import psycopg

from .. import domain
from ..domain import WriteContext

_BLANK_LINES = re.compile(r"\n[ \t]*\n")


def split_paragraphs(text: str) -> list[str]:
    """Paragraphs are separated by blank lines (whitespace-only lines count as blank)."""
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    return [p.strip("\n").rstrip() for p in _BLANK_LINES.split(text) if p.strip()]


@dataclass(frozen=True)
class BookSource:
    title: str
    paragraphs: list[str]


@dataclass(frozen=True)
class ImportSummary:
    library_id: object
    library_name: str
    books: int
    blocks: int
    replaced: int

    def line(self) -> str:
        return (f"Imported {self.books} books, {self.blocks} blocks into library {self.library_name} "
                f"(id {self.library_id})")


def import_books(conn: psycopg.Connection, library_name: str, books: Iterable[BookSource], *,
                 ctx: WriteContext, on_book: Callable[[BookSource], None] | None = None) -> ImportSummary:
    library = domain.find_library_by_name(conn, library_name) or domain.create_library(conn, library_name, ctx=ctx)
    n_books = n_blocks = n_replaced = 0
    for source in books:
        _, blocks, replaced = domain.replace_book_by_title(conn, library["id"], source.title, source.paragraphs, ctx=ctx)
        n_books += 1
        n_blocks += len(blocks)
        n_replaced += replaced
        if on_book:
            on_book(source)
    return ImportSummary(library["id"], library["name"], n_books, n_blocks, n_replaced)
