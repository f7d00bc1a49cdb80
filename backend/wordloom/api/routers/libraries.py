from __future__ import annotations

import uuid

import psycopg
from fastapi import APIRouter, Depends

from ... import domain
from ..deps import db_conn, write_context
from ..schemas import Library, LibraryDeleted, LibraryIn, LibraryPatch

router = APIRouter(prefix="/libraries", tags=["libraries"])


@router.post("", response_model=Library, status_code=201)
def create_library(body: LibraryIn, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    return domain.create_library(conn, body.name, ctx=ctx)


@router.get("/{library_id}", response_model=Library)
def get_library(library_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn)):
    return domain.get_library(conn, library_id)


@router.patch("/{library_id}", response_model=Library)
def rename_library(library_id: uuid.UUID, body: LibraryPatch, conn: psycopg.Connection = Depends(db_conn),
                   ctx=Depends(write_context)):
    return domain.rename_library(conn, library_id, body.name, ctx=ctx)


@router.delete("/{library_id}", response_model=LibraryDeleted)
def delete_library(library_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    return domain.delete_library(conn, library_id, ctx=ctx)
