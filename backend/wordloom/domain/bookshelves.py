"""Bookshelves: optional grouping inside a library; not searched, no timeline of their own."""
from __future__ import annotations

import uuid

import psycopg

from .context import WriteContext
from .errors import NotFound
from .unit import read_row, write_unit


def create_bookshelf(conn: psycopg.Connection, library_id: uuid.UUID, name: str, *, ctx: WriteContext | None = None) -> dict:
    with write_unit(conn, ctx) as unit:
        if unit.fetchone("domain_library_get", {"id": library_id}) is None:
            raise NotFound("library", library_id)
        return unit.fetchone("domain_bookshelf_insert", {"id": uuid.uuid4(), "library_id": library_id, "name": name})


def rename_bookshelf(conn: psycopg.Connection, bookshelf_id: uuid.UUID, name: str, *, ctx: WriteContext | None = None) -> dict:
    with write_unit(conn, ctx) as unit:
        row = unit.fetchone("domain_bookshelf_rename", {"id": bookshelf_id, "name": name})
        if row is None:
            raise NotFound("bookshelf", bookshelf_id)
        return row


def delete_bookshelf(conn: psycopg.Connection, bookshelf_id: uuid.UUID, *, ctx: WriteContext | None = None) -> None:
    """Books on the shelf stay in the library (FK ON DELETE SET NULL)."""
    with write_unit(conn, ctx) as unit:
        if unit.fetchone("domain_bookshelf_delete", {"id": bookshelf_id}) is None:
            raise NotFound("bookshelf", bookshelf_id)


def get_bookshelf(conn: psycopg.Connection, bookshelf_id: uuid.UUID) -> dict:
    row = read_row(conn, "domain_bookshelf_get", {"id": bookshelf_id})
    if row is None:
        raise NotFound("bookshelf", bookshelf_id)
    return row
