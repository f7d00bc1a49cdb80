"""`cli.py dev import`: Markdown files or CPython's help topics into a library, via the write path."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from ..db.connect import connect
from ..domain import WriteContext
from ..importers.markdown import markdown_books
from ..importers.pydocs import DEFAULT_LIBRARY, python_doc_books
from ..importers.runner import import_books
from ..settings import database_url
from .base import Command, CommandError


class ImportCommand(Command):
    name = "import"
    help = "import Markdown files or the Python help topics as books"
    guards_environment = True
    description = (
        "Import books through the same write path as the API (each book with its blocks in one "
        "transaction, projected to search and the chronicle by the workers). --markdown DIR: a book "
        "per .md file (title = first heading, else the file name), a block per paragraph (paragraphs "
        "are separated by blank lines). --python-docs: a book per topic of CPython's pydoc_data, a block "
        "per paragraph. Re-running does not duplicate: the library of the same name is reused and a "
        "book with the same title in it is REPLACED (the old book, its blocks and its timeline are "
        "deleted, then the new one is written)."
    )

    def add_arguments(self, parser: argparse.ArgumentParser) -> None:
        source = parser.add_mutually_exclusive_group(required=True)
        source.add_argument("--markdown", metavar="DIR", type=Path, help="directory of .md files (searched recursively)")
        source.add_argument("--python-docs", action="store_true", help="CPython's help topics (pydoc_data)")
        parser.add_argument("--library", metavar="NAME",
                            help=f"library name (default: {DEFAULT_LIBRARY!r}, or the directory's name for --markdown)")

    def handle(self, args: argparse.Namespace) -> int:
        if args.markdown is not None:
            if not args.markdown.is_dir():
                raise CommandError(f"--markdown: not a directory: {args.markdown}", code=2)
            books = markdown_books(args.markdown)
            library = args.library or args.markdown.resolve().name
            ctx = WriteContext(source="import", provenance="import:markdown", actor_kind="system")
        else:
            books = python_doc_books()
            library = args.library or DEFAULT_LIBRARY
            ctx = WriteContext(source="import", provenance="import:python-docs", actor_kind="system")
        url = database_url()
        with connect(url, autocommit=True) as conn:
            # tqdm writes to stderr and switches itself off when stderr is not a terminal.
            with tqdm(total=len(books), desc="import", unit="book", file=sys.stderr, disable=None) as bar:
                summary = import_books(conn, library, books, ctx=ctx, on_book=lambda _: bar.update(1))
        if summary.replaced:
            print(f"replaced {summary.replaced} existing books of the same title", file=sys.stderr)
        print(summary.line())
        return 0


COMMAND = ImportCommand()
