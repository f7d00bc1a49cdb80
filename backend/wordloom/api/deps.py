"""Per-request dependencies: a pooled connection and the write context from trace headers."""
from __future__ import annotations

from typing import Iterator

import psycopg
from fastapi import Request

from ..domain import WriteContext
from ..observability.tracing import current_trace_headers


def db_conn(request: Request) -> Iterator[psycopg.Connection]:
    # Pool connections are autocommit: each domain write owns its transaction.
    with request.app.state.pool.connection() as conn:
        yield conn


def write_context(request: Request) -> WriteContext:
    """W3C traceparent/tracestate of the request go onto every outbox row the write creates, so
    the worker's spans join the caller's trace."""
    # The request's own server span (api/tracing.py) is active here; fall back to the caller's
    # headers when tracing is disabled.
    traceparent, tracestate = current_trace_headers()
    if not traceparent:
        traceparent, tracestate = request.headers.get("traceparent"), request.headers.get("tracestate")
    return WriteContext.from_headers(traceparent, tracestate, source="api", provenance="api", actor_kind="user")
