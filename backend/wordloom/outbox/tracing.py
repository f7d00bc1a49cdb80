"""Spans of the outbox worker, with the names and tags the Jaeger export queries (CONTRACT.md §4).

The provider is installed by wordloom.observability.tracing.setup_tracing (worker.py); without it
every span here is a no-op.  Each event's span continues the trace whose W3C
traceparent/tracestate the API stored on the outbox row.
"""
from __future__ import annotations

from contextlib import ExitStack, contextmanager

from opentelemetry import trace

from ..observability.tracing import OBS_SCHEMA, context_from_headers

_tracer = trace.get_tracer("wordloom.outbox")


@contextmanager
def claim_span(projection: str):
    with _tracer.start_as_current_span("outbox.claim_batch", attributes={
        "wordloom.projection": projection, "wordloom.obs_schema": OBS_SCHEMA,
    }) as span:
        yield span


@contextmanager
def batch_span(projection: str, batch_id: str, size: int):
    with _tracer.start_as_current_span("projection.process_batch", attributes={
        "wordloom.projection": projection, "wordloom.claim_batch_id": batch_id,
        "wordloom.batch_size": size, "wordloom.obs_schema": OBS_SCHEMA,
    }) as span:
        yield span


@contextmanager
def event_spans(projection: str, events):
    """One `outbox.process` span per event, each a child of the trace stored on its row."""
    with ExitStack() as stack:
        for event in events:
            attributes = {"wordloom.outbox_event_id": str(event.id), "wordloom.obs_schema": OBS_SCHEMA,
                          "wordloom.projection": projection, "wordloom.entity.type": event.entity_type,
                          "wordloom.entity.id": str(event.entity_id), "wordloom.op": event.op}
            span = _tracer.start_span("outbox.process", attributes=attributes,
                                      context=context_from_headers(event.traceparent, event.tracestate))
            stack.callback(span.end)
        yield
