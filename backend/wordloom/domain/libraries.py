"""Libraries: plain business rows; deleting one removes everything in it from both projections."""
from __future__ import annotations

import uuid

import psycopg

from .books import purge_books_in_unit
from .context import WriteContext
from .errors import NotFound
from .unit import read_row, write_unit


def create_library(conn: psycopg.Connection, name: str, *, ctx: WriteContext | None = None) -> dict:
    with write_unit(conn, ctx) as unit:
        return unit.fetchone("domain_library_insert", {"id": uuid.uuid4(), "name": name})


def rename_library(conn: psycopg.Connection, library_id: uuid.UUID, name: str, *, ctx: WriteContext | None = None) -> dict:
    # Search documents carry library_id, not the name, so a rename touches no projection.
    with write_unit(conn, ctx) as unit:
        row = unit.fetchone("domain_library_rename", {"id": library_id, "name": name})
        if row is None:
            raise NotFound("library", library_id)
        return row


def delete_library(conn: psycopg.Connection, library_id: uuid.UUID, *, ctx: WriteContext | None = None) -> dict:
    """Hard delete.  Queues search deletes for every book and block of the library and chronicle
    deletes for every chronicle event that the cascade removes, in the same transaction."""
    with write_unit(conn, ctx) as unit:
        if unit.fetchone("domain_library_lock", {"id": library_id}) is None:
            raise NotFound("library", library_id)
        book_ids = [r["id"] for r in unit.fetchall("domain_library_book_ids", {"id": library_id})]
        counts = purge_books_in_unit(unit, book_ids, "library_deleted")
        unit.execute("domain_library_delete", {"id": library_id})
        return {"id": library_id, **counts}


def get_library(conn: psycopg.Connection, library_id: uuid.UUID) -> dict:
    row = read_row(conn, "domain_library_get", {"id": library_id})
    if row is None:
        raise NotFound("library", library_id)
    return row


def find_library_by_name(conn: psycopg.Connection, name: str) -> dict | None:
    """The oldest library with exactly this name (the importer reuses it instead of duplicating)."""
    return read_row(conn, "domain_library_by_name", {"name": name})

