from __future__ import annotations

import uuid

import psycopg
from fastapi import APIRouter, Depends, Query

from ... import domain
from ...domain.unit import read_row, read_rows
from ..deps import db_conn, write_context
from ..schemas import Block, Book, BookIn, BookPatch, ChroniclePage, Tag, TagLink

router = APIRouter(prefix="/books", tags=["books"])


@router.post("", response_model=Book, status_code=201)
def create_book(body: BookIn, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    return domain.create_book(conn, body.library_id, body.title, body.summary, bookshelf_id=body.bookshelf_id, ctx=ctx)


@router.get("/{book_id}", response_model=Book)
def get_book(book_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn)):
    return domain.get_book(conn, book_id)


@router.patch("/{book_id}", response_model=Book)
def update_book(book_id: uuid.UUID, body: BookPatch, conn: psycopg.Connection = Depends(db_conn),
                ctx=Depends(write_context)):
    return domain.update_book(conn, book_id, title=body.title, summary=body.summary, ctx=ctx)


@router.delete("/{book_id}", response_model=Book)
def soft_delete_book(book_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    return domain.soft_delete_book(conn, book_id, ctx=ctx)


@router.post("/{book_id}/restore", response_model=Book)
def restore_book(book_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    return domain.restore_book(conn, book_id, ctx=ctx)


@router.get("/{book_id}/blocks", response_model=list[Block])
def list_blocks(book_id: uuid.UUID, include_deleted: bool = False, conn: psycopg.Connection = Depends(db_conn)):
    return domain.list_blocks(conn, book_id, include_deleted=include_deleted)


@router.get("/{book_id}/tags", response_model=list[Tag])
def list_tags(book_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn)):
    domain.get_book(conn, book_id)
    return domain.list_book_tags(conn, book_id)


@router.put("/{book_id}/tags/{tag_id}", response_model=TagLink)
def attach_tag(book_id: uuid.UUID, tag_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn),
               ctx=Depends(write_context)):
    return {"book_id": book_id, "tag_id": tag_id, "changed": domain.attach_tag(conn, book_id, tag_id, ctx=ctx)}


@router.delete("/{book_id}/tags/{tag_id}", response_model=TagLink)
def detach_tag(book_id: uuid.UUID, tag_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn),
               ctx=Depends(write_context)):
    return {"book_id": book_id, "tag_id": tag_id, "changed": domain.detach_tag(conn, book_id, tag_id, ctx=ctx)}


@router.get("/{book_id}/chronicle", response_model=ChroniclePage)
def book_chronicle(book_id: uuid.UUID, limit: int = Query(20, ge=1, le=200), offset: int = Query(0, ge=0),
                   conn: psycopg.Connection = Depends(db_conn)):
    """The book's timeline from the chronicle projection, newest first."""
    domain.get_book(conn, book_id)
    total = read_row(conn, "domain_chronicle_count", {"book_id": book_id})["count"]
    items = read_rows(conn, "domain_chronicle_page", {"book_id": book_id, "limit": limit, "offset": offset})
    return {"total": total, "limit": limit, "offset": offset, "items": items}
