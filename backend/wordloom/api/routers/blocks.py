from __future__ import annotations

import uuid

import psycopg
from fastapi import APIRouter, Depends

from ... import domain
from ..deps import db_conn, write_context
from ..schemas import Block, BlockIn, BlockPatch

router = APIRouter(prefix="/blocks", tags=["blocks"])


@router.post("", response_model=Block, status_code=201)
def create_block(body: BlockIn, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    return domain.create_block(conn, body.book_id, body.content, body.position, ctx=ctx)


@router.get("/{block_id}", response_model=Block)
def get_block(block_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn)):
    return domain.get_block(conn, block_id)


@router.patch("/{block_id}", response_model=Block)
def update_block(block_id: uuid.UUID, body: BlockPatch, conn: psycopg.Connection = Depends(db_conn),
                 ctx=Depends(write_context)):
    return domain.update_block(conn, block_id, content=body.content, position=body.position, ctx=ctx)


@router.delete("/{block_id}", response_model=Block)
def soft_delete_block(block_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    return domain.soft_delete_block(conn, block_id, ctx=ctx)


@router.post("/{block_id}/restore", response_model=Block)
def restore_block(block_id: uuid.UUID, conn: psycopg.Connection = Depends(db_conn), ctx=Depends(write_context)):
    return domain.restore_block(conn, block_id, ctx=ctx)
