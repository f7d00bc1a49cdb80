"""Blocks: content is the block's search text.  Every block write locks its book first."""
from __future__ import annotations

import uuid
from typing import Sequence

import psycopg

from .books import lock_book
from .context import WriteContext
from .errors import Conflict, NotFound
from .unit import WriteUnit, read_row, write_unit


def add_blocks_in_unit(unit: WriteUnit, book: dict, contents: Sequence[str],
                       start_position: int | None = None) -> list[dict]:
    """Insert many blocks of one locked, live book with one statement per table."""
    if not contents:
        return []
    if start_position is None:
        start_position = unit.fetchone("domain_block_next_position", {"book_id": book["id"]})["next_position"]
    ids = [uuid.uuid4() for _ in contents]
    blocks = unit.fetchall("domain_blocks_insert", {
        "book_id": book["id"], "ids": ids,
        "positions": list(range(start_position, start_position + len(contents))),
        "contents": list(contents),
    })
    unit.index("block_created", "block", [(b["id"], book["library_id"], b["content"]) for b in blocks])
    unit.chronicle("block_created", [(book["id"], b["id"], {"position": b["position"], "length": len(b["content"])})
                                     for b in blocks])
    return blocks


def _live_book(unit: WriteUnit, book_id: uuid.UUID) -> dict:
    book = lock_book(unit, book_id)
    if book["deleted_at"] is not None:
        raise Conflict(f"book {book_id} is deleted; restore it first")
    return book


def _locked_block(unit: WriteUnit, block_id: uuid.UUID) -> tuple[dict, dict]:
    """(book, block), both row-locked, book first (one lock order for every writer)."""
    found = unit.fetchone("domain_block_get", {"id": block_id})
    if found is None:
        raise NotFound("block", block_id)
    book = lock_book(unit, found["book_id"])
    block = unit.fetchone("domain_block_lock", {"id": block_id})
    if block is None:
        raise NotFound("block", block_id)
    return book, block


def create_block(conn: psycopg.Connection, book_id: uuid.UUID, content: str, position: int | None = None, *,
                 ctx: WriteContext | None = None) -> dict:
    with write_unit(conn, ctx) as unit:
        return add_blocks_in_unit(unit, _live_book(unit, book_id), [content], position)[0]


def add_blocks(conn: psycopg.Connection, book_id: uuid.UUID, contents: Sequence[str], *,
               start_position: int | None = None, ctx: WriteContext | None = None) -> list[dict]:
    """Many blocks of one book in one transaction (the importer's and the labs' bulk path)."""
    with write_unit(conn, ctx) as unit:
        return add_blocks_in_unit(unit, _live_book(unit, book_id), contents, start_position)


def update_block(conn: psycopg.Connection, block_id: uuid.UUID, *, content: str | None = None,
                 position: int | None = None, ctx: WriteContext | None = None) -> dict:
    """Change content and/or position.  Only a content change re-indexes (position is not searched)."""
    with write_unit(conn, ctx) as unit:
        book, block = _locked_block(unit, block_id)
        if book["deleted_at"] is not None or block["deleted_at"] is not None:
            raise Conflict(f"block {block_id} or its book is deleted; restore it first")
        changed = [f for f, v in (("content", content), ("position", position)) if v is not None and v != block[f]]
        if not changed:
            return block
        block = unit.fetchone("domain_block_update", {
            "id": block_id, "content": content if content is not None else block["content"],
            "position": position if position is not None else block["position"],
        })
        if "content" in changed:
            unit.index("block_updated", "block", [(block_id, book["library_id"], block["content"])])
        unit.chronicle("block_updated", [(book["id"], block_id, {"changed": changed, "length": len(block["content"])})])
        return block


def soft_delete_block(conn: psycopg.Connection, block_id: uuid.UUID, *, ctx: WriteContext | None = None) -> dict:
    """Mark deleted and remove from search.  Idempotent."""
    with write_unit(conn, ctx) as unit:
        book, block = _locked_block(unit, block_id)
        if block["deleted_at"] is not None:
            return block
        block = unit.fetchone("domain_block_set_deleted", {"id": block_id, "deleted": True})
        unit.unindex("block_soft_deleted", "block", [block_id])
        unit.chronicle("block_soft_deleted", [(book["id"], block_id, {})])
        return block


def restore_block(conn: psycopg.Connection, block_id: uuid.UUID, *, ctx: WriteContext | None = None) -> dict:
    """Undo a soft delete; re-index unless the book itself is deleted (restoring the book will).
    Idempotent."""
    with write_unit(conn, ctx) as unit:
        book, block = _locked_block(unit, block_id)
        if block["deleted_at"] is None:
            return block
        block = unit.fetchone("domain_block_set_deleted", {"id": block_id, "deleted": False})
        reindexed = book["deleted_at"] is None
        if reindexed:
            unit.index("block_restored", "block", [(block_id, book["library_id"], block["content"])])
        unit.chronicle("block_restored", [(book["id"], block_id, {"reindexed": reindexed})])
        return block


def get_block(conn: psycopg.Connection, block_id: uuid.UUID) -> dict:
    row = read_row(conn, "domain_block_get", {"id": block_id})
    if row is None:
        raise NotFound("block", block_id)
    return row
