"""Tags of a library, attached to books.  Tags are not searched, so tag writes touch only the
chronicle (attach/detach are events of the book's timeline)."""
from __future__ import annotations

import uuid

import psycopg

from .books import lock_book
from .context import WriteContext
from .errors import Conflict, NotFound
from .unit import WriteUnit, read_row, read_rows, write_unit


def _tag(unit: WriteUnit, tag_id: uuid.UUID) -> dict:
    tag = unit.fetchone("domain_tag_get", {"id": tag_id})
    if tag is None:
        raise NotFound("tag", tag_id)
    return tag


def create_tag(conn: psycopg.Connection, library_id: uuid.UUID, name: str, *, ctx: WriteContext | None = None) -> dict:
    try:
        with write_unit(conn, ctx) as unit:
            if unit.fetchone("domain_library_get", {"id": library_id}) is None:
                raise NotFound("library", library_id)
            return unit.fetchone("domain_tag_insert", {"id": uuid.uuid4(), "library_id": library_id, "name": name})
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"library {library_id} already has a tag named {name!r}") from None


def rename_tag(conn: psycopg.Connection, tag_id: uuid.UUID, name: str, *, ctx: WriteContext | None = None) -> dict:
    try:
        with write_unit(conn, ctx) as unit:
            row = unit.fetchone("domain_tag_rename", {"id": tag_id, "name": name})
            if row is None:
                raise NotFound("tag", tag_id)
            return row
    except psycopg.errors.UniqueViolation:
        raise Conflict(f"the library already has a tag named {name!r}") from None


def delete_tag(conn: psycopg.Connection, tag_id: uuid.UUID, *, ctx: WriteContext | None = None) -> dict:
    """Delete the tag; each book that carried it gets a book_tag_detached event."""
    with write_unit(conn, ctx) as unit:
        tag = _tag(unit, tag_id)
        book_ids = [r["book_id"] for r in unit.fetchall("domain_tag_book_ids", {"id": tag_id})]
        unit.chronicle("book_tag_detached", [(b, None, {"tag_id": tag_id, "tag": tag["name"], "reason": "tag_deleted"})
                                             for b in book_ids])
        unit.execute("domain_tag_delete", {"id": tag_id})
        return {"id": tag_id, "books_detached": len(book_ids)}


def attach_tag(conn: psycopg.Connection, book_id: uuid.UUID, tag_id: uuid.UUID, *, ctx: WriteContext | None = None) -> bool:
    """Attach; returns False when it was already attached (no event then)."""
    with write_unit(conn, ctx) as unit:
        book = lock_book(unit, book_id)
        tag = _tag(unit, tag_id)
        if tag["library_id"] != book["library_id"]:
            raise Conflict(f"tag {tag_id} belongs to another library than book {book_id}")
        if unit.fetchone("domain_book_tag_attach", {"book_id": book_id, "tag_id": tag_id}) is None:
            return False
        unit.chronicle("book_tag_attached", [(book_id, None, {"tag_id": tag_id, "tag": tag["name"]})])
        return True


def detach_tag(conn: psycopg.Connection, book_id: uuid.UUID, tag_id: uuid.UUID, *, ctx: WriteContext | None = None) -> bool:
    """Detach; returns False when it was not attached."""
    with write_unit(conn, ctx) as unit:
        lock_book(unit, book_id)
        tag = _tag(unit, tag_id)
        if unit.fetchone("domain_book_tag_detach", {"book_id": book_id, "tag_id": tag_id}) is None:
            return False
        unit.chronicle("book_tag_detached", [(book_id, None, {"tag_id": tag_id, "tag": tag["name"]})])
        return True


def get_tag(conn: psycopg.Connection, tag_id: uuid.UUID) -> dict:
    row = read_row(conn, "domain_tag_get", {"id": tag_id})
    if row is None:
        raise NotFound("tag", tag_id)
    return row


def list_book_tags(conn: psycopg.Connection, book_id: uuid.UUID) -> list[dict]:
    return read_rows(conn, "domain_book_tags_list", {"book_id": book_id})
