"""One server span per request, continuing the caller's W3C trace context.

The span is active while the route runs and is bound as "the request span", so the outbox rows a
write creates carry *this* span's traceparent (not that of FastAPI's own fastapi.dependencies /
fastapi.endpoint child spans) and the worker's `outbox.process` span is its direct child.
"""
from __future__ import annotations

from fastapi import FastAPI, Request
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..observability.tracing import (
    OBS_SCHEMA, bind_request_span, extract_request_context, setup_tracing, unbind_request_span,
)


def install_tracing(app: FastAPI) -> None:
    tracer = setup_tracing("wordloom-api")

    @app.middleware("http")
    async def trace_request(request: Request, call_next):
        parent = extract_request_context(request.headers)
        name = f"{request.method} {request.url.path}"
        with tracer.start_as_current_span(name, context=parent, kind=SpanKind.SERVER) as span:
            span.set_attribute("http.request.method", request.method)
            span.set_attribute("url.path", request.url.path)
            span.set_attribute("wordloom.obs_schema", OBS_SCHEMA)
            token = bind_request_span(span)
            try:
                response = await call_next(request)
            finally:
                unbind_request_span(token)
            span.set_attribute("http.response.status_code", response.status_code)
            if response.status_code >= 500:
                span.set_status(Status(StatusCode.ERROR))
            return response
