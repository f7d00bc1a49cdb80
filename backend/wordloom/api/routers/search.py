from __future__ import annotations

import uuid
from typing import Literal

import psycopg
from fastapi import APIRouter, Depends, Query, Request

from ...search.query import search as run_search
from ..deps import db_conn
from ..schemas import SearchResult

router = APIRouter(tags=["search"])


@router.get("/search", response_model=SearchResult)
def search(request: Request, q: str = Query(min_length=1, max_length=1000),
           entity_type: Literal["book", "block"] | None = None, library_id: uuid.UUID | None = None,
           limit: int = Query(10, ge=1, le=100), conn: psycopg.Connection = Depends(db_conn)):
    state = request.app.state
    return run_search(state.es, state.settings.elastic_index, conn, q,
                      entity_type=entity_type, library_id=library_id, limit=limit)
