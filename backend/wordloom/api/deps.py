"""Per-request dependencies: a pooled connection and the write context from trace headers."""
from __future__ import annotations

from typing import Iterator

import psycopg
from fastapi import Request

from ..domain import WriteContext


def db_conn(request: Request) -> Iterator[psycopg.Connection]:
    # Pool connections are autocommit: each domain write owns its transaction.
    with request.app.state.pool.connection() as conn:
        yield conn


def write_context(request: Request) -> WriteContext:
    """W3C traceparent/tracestate of the request go onto every outbox row the write creates, so
    the worker's spans join the caller's trace."""
    return WriteContext.from_headers(request.headers.get("traceparent"), request.headers.get("tracestate"),
                                     source="api", provenance="api", actor_kind="user")
