from __future__ import annotations

import uuid

import psycopg
from fastapi import APIRouter, Depends

from ... import domain
from ..deps import db_conn, write_context
from ..schemas import Bookshelf, BookshelfIn, BookshelfPatch

router = APIRouter(prefix="/bookshelves", tags=["bookshelves"])


@router.post("", response_model=Bookshelf, status_code=201)
def create_bookshelf(body: BookshelfIn, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    return domain.create_bookshelf(conn, body.library_id, body.name, ctx=ctx)


@router.get("/{bookshelf_id}", response_model=Bookshelf)
def get_bookshelf(bookshelf_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn)):
    return domain.get_bookshelf(conn, bookshelf_id)


@router.patch("/{bookshelf_id}", response_model=Bookshelf)
def rename_bookshelf(bookshelf_id: uuid.UUID, body: BookshelfPatch, conn: psycopg.Connection = Depends(db_conn),
                     ctx=Depends(write_context)):
    return domain.rename_bookshelf(conn, bookshelf_id, body.name, ctx=ctx)


@router.delete("/{bookshelf_id}", status_code=204)
def delete_bookshelf(bookshelf_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    """Books on the shelf stay in the library with bookshelf_id null."""
    domain.delete_bookshelf(conn, bookshelf_id, ctx=ctx)
