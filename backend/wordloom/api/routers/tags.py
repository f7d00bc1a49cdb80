from __future__ import annotations

import uuid

import psycopg
from fastapi import APIRouter, Depends

from ... import domain
from ..deps import db_conn, write_context
from ..schemas import Tag, TagIn, TagPatch

router = APIRouter(prefix="/tags", tags=["tags"])


@router.post("", response_model=Tag, status_code=201)
def create_tag(body: TagIn, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    return domain.create_tag(conn, body.library_id, body.name, ctx=ctx)


@router.get("/{tag_id}", response_model=Tag)
def get_tag(tag_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn)):
    return domain.get_tag(conn, tag_id)


@router.patch("/{tag_id}", response_model=Tag)
def rename_tag(tag_id: uuid.UUID, body: TagPatch, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    return domain.rename_tag(conn, tag_id, body.name, ctx=ctx)


@router.delete("/{tag_id}", status_code=204)
def delete_tag(tag_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    domain.delete_tag(conn, tag_id, ctx=ctx)
