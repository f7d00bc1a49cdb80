"""Books: title + summary are the book's search text; soft delete takes the book and its blocks
out of search, restore puts back the book and its live blocks (v3 did neither)."""
from __future__ import annotations

import uuid
from typing import Sequence

import psycopg

from .context import WriteContext
from .errors import Conflict, NotFound
from .unit import WriteUnit, read_row, read_rows, write_unit


def book_search_text(book: dict) -> str:
    return f"{book['title']}\n{book['summary']}"


def lock_book(unit: WriteUnit, book_id: uuid.UUID) -> dict:
    """Row-lock the book: every block write locks its book first, so a soft delete or restore of
    the book can never interleave with a block write and leave a block in the wrong state."""
    book = unit.fetchone("domain_book_lock", {"id": book_id})
    if book is None:
        raise NotFound("book", book_id)
    return book


def create_book_in_unit(unit: WriteUnit, library_id: uuid.UUID, title: str, summary: str = "",
                        bookshelf_id: uuid.UUID | None = None) -> dict:
    if unit.fetchone("domain_library_get", {"id": library_id}) is None:
        raise NotFound("library", library_id)
    if bookshelf_id is not None:
        shelf = unit.fetchone("domain_bookshelf_get", {"id": bookshelf_id})
        if shelf is None or shelf["library_id"] != library_id:
            raise NotFound("bookshelf", bookshelf_id)
    book = unit.fetchone("domain_book_insert", {
        "id": uuid.uuid4(), "library_id": library_id, "bookshelf_id": bookshelf_id,
        "title": title, "summary": summary,
    })
    unit.index("book_created", "book", [(book["id"], library_id, book_search_text(book))])
    unit.chronicle("book_created", [(book["id"], None, {"title": title})])
    return book


def purge_books_in_unit(unit: WriteUnit, book_ids: Sequence[uuid.UUID], event_type: str) -> dict:
    """Hard-delete books: search deletes for them and all their blocks, chronicle deletes for the
    events the cascade removes, then the rows themselves."""
    if not book_ids:
        return {"books": 0, "blocks": 0}
    block_ids = [r["id"] for r in unit.fetchall("domain_books_all_block_ids", {"book_ids": list(book_ids)})]
    unit.unindex(event_type, "block", block_ids)
    unit.unindex(event_type, "book", book_ids)
    unit.forget_chronicle(event_type, book_ids)
    unit.execute("domain_books_delete", {"ids": list(book_ids)})
    return {"books": len(book_ids), "blocks": len(block_ids)}


def create_book(conn: psycopg.Connection, library_id: uuid.UUID, title: str, summary: str = "", *,
                bookshelf_id: uuid.UUID | None = None, ctx: WriteContext | None = None) -> dict:
    with write_unit(conn, ctx) as unit:
        return create_book_in_unit(unit, library_id, title, summary, bookshelf_id)


def create_book_with_blocks(conn: psycopg.Connection, library_id: uuid.UUID, title: str,
                            contents: Sequence[str], summary: str = "", *,
                            ctx: WriteContext | None = None) -> tuple[dict, list[dict]]:
    """A book and all its blocks in one transaction (set-based: a few statements for any size)."""
    from .blocks import add_blocks_in_unit

    with write_unit(conn, ctx) as unit:
        book = create_book_in_unit(unit, library_id, title, summary)
        return book, add_blocks_in_unit(unit, book, contents)


def replace_book_by_title(conn: psycopg.Connection, library_id: uuid.UUID, title: str,
                          contents: Sequence[str], summary: str = "", *,
                          ctx: WriteContext | None = None) -> tuple[dict, list[dict], int]:
    """Hard-delete every book of the library titled `title` (soft-deleted ones too) and create it
    afresh with `contents`, all in one transaction: a re-import never duplicates and never leaves
    the book missing.  Returns (book, blocks, number of books replaced)."""
    from .blocks import add_blocks_in_unit

    with write_unit(conn, ctx) as unit:
        if unit.fetchone("domain_library_get", {"id": library_id}) is None:
            raise NotFound("library", library_id)
        old = [r["id"] for r in unit.fetchall("domain_book_ids_by_title", {"library_id": library_id, "title": title})]
        purge_books_in_unit(unit, old, "book_replaced")
        book = create_book_in_unit(unit, library_id, title, summary)
        return book, add_blocks_in_unit(unit, book, contents), len(old)


def update_book(conn: psycopg.Connection, book_id: uuid.UUID, *, title: str | None = None,
                summary: str | None = None, ctx: WriteContext | None = None) -> dict:
    """Rename and/or re-summarize.  Re-indexes the book only: block documents do not hold the title."""
    with write_unit(conn, ctx) as unit:
        book = lock_book(unit, book_id)
        if book["deleted_at"] is not None:
            raise Conflict(f"book {book_id} is deleted; restore it first")
        changed = [f for f, v in (("title", title), ("summary", summary)) if v is not None and v != book[f]]
        if not changed:
            return book
        book = unit.fetchone("domain_book_update", {
            "id": book_id, "title": title if title is not None else book["title"],
            "summary": summary if summary is not None else book["summary"],
        })
        event = "book_renamed" if changed == ["title"] else "book_updated"
        unit.index(event, "book", [(book_id, book["library_id"], book_search_text(book))])
        unit.chronicle(event, [(book_id, None, {"changed": changed, "title": book["title"]})])
        return book


def soft_delete_book(conn: psycopg.Connection, book_id: uuid.UUID, *, ctx: WriteContext | None = None) -> dict:
    """Mark deleted and remove the book and its live blocks from search.  Idempotent."""
    with write_unit(conn, ctx) as unit:
        book = lock_book(unit, book_id)
        if book["deleted_at"] is not None:
            return book
        book = unit.fetchone("domain_book_set_deleted", {"id": book_id, "deleted": True})
        block_ids = [r["id"] for r in unit.fetchall("domain_book_live_block_ids", {"book_id": book_id})]
        unit.unindex("book_soft_deleted", "block", block_ids)
        unit.unindex("book_soft_deleted", "book", [book_id])
        unit.chronicle("book_soft_deleted", [(book_id, None, {"blocks_unindexed": len(block_ids)})])
        return book


def restore_book(conn: psycopg.Connection, book_id: uuid.UUID, *, ctx: WriteContext | None = None) -> dict:
    """Undo a soft delete: re-index the book and its non-deleted blocks.  Idempotent."""
    with write_unit(conn, ctx) as unit:
        book = lock_book(unit, book_id)
        if book["deleted_at"] is None:
            return book
        book = unit.fetchone("domain_book_set_deleted", {"id": book_id, "deleted": False})
        blocks = unit.fetchall("domain_book_live_block_ids", {"book_id": book_id})
        unit.index("book_restored", "book", [(book_id, book["library_id"], book_search_text(book))])
        unit.index("book_restored", "block", [(b["id"], book["library_id"], b["content"]) for b in blocks])
        unit.chronicle("book_restored", [(book_id, None, {"blocks_reindexed": len(blocks)})])
        return book


def purge_book(conn: psycopg.Connection, book_id: uuid.UUID, *, ctx: WriteContext | None = None) -> dict:
    """Hard delete of one book (used by re-imports); the API's DELETE is the soft delete."""
    with write_unit(conn, ctx) as unit:
        lock_book(unit, book_id)
        return {"id": book_id, **purge_books_in_unit(unit, [book_id], "book_purged")}


def get_book(conn: psycopg.Connection, book_id: uuid.UUID) -> dict:
    row = read_row(conn, "domain_book_get", {"id": book_id})
    if row is None:
        raise NotFound("book", book_id)
    return row


def list_blocks(conn: psycopg.Connection, book_id: uuid.UUID, *, include_deleted: bool = False) -> list[dict]:
    get_book(conn, book_id)
    return read_rows(conn, "domain_book_blocks_list", {"book_id": book_id, "include_deleted": include_deleted})
