"""Spans of the outbox worker, with the names and tags the Jaeger export queries (CONTRACT.md §4).

The provider is installed by wordloom.observability.tracing.setup_tracing (worker.py); without it
every span here is a no-op.  Each event's span continues the trace whose W3C
traceparent/tracestate the API stored on the outbox row; the batch span links to every event's
stored context, so one batch of N events can be followed into its N upstream traces.

Besides the contract tags (wordloom.*), spans carry the OpenTelemetry messaging attributes: the
outbox table is the queue (messaging.destination.name), the projection is the consumer group.
"""
from __future__ import annotations

import traceback
from contextlib import ExitStack, contextmanager

from opentelemetry import trace
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..observability.tracing import OBS_SCHEMA, context_from_headers
from ..redact import redact

_tracer = trace.get_tracer("wordloom.outbox")

MESSAGING_SYSTEM = "wordloom_outbox"  # a PostgreSQL table used as a queue; not a broker OTel names
DESTINATIONS = {"search": "search_outbox_events", "chronicle": "chronicle_outbox_events"}


def _messaging(projection: str, operation_type: str, operation_name: str) -> dict:
    return {
        "messaging.system": MESSAGING_SYSTEM,
        "messaging.destination.name": DESTINATIONS.get(projection, projection),
        "messaging.consumer.group.name": projection,
        "messaging.operation.type": operation_type,
        "messaging.operation.name": operation_name,
        "messaging.operation": operation_type,  # the pre-1.26 semantic-conventions key, still queried
    }


@contextmanager
def claim_span(projection: str):
    with _tracer.start_as_current_span("outbox.claim_batch", kind=SpanKind.CLIENT, attributes={
        "wordloom.projection": projection, "wordloom.obs_schema": OBS_SCHEMA,
        **_messaging(projection, "receive", "claim_batch"),
    }) as span:
        yield span


@contextmanager
def batch_span(projection: str, batch_id: str, size: int):
    with _tracer.start_as_current_span("projection.process_batch", kind=SpanKind.CONSUMER, attributes={
        "wordloom.projection": projection, "wordloom.claim_batch_id": batch_id,
        "wordloom.batch_size": size, "wordloom.obs_schema": OBS_SCHEMA,
        "messaging.batch.message_count": size,
        **_messaging(projection, "process", "process_batch"),
    }) as span:
        yield span


@contextmanager
def event_spans(projection: str, events):
    """One `outbox.process` span per event, each a child of the trace stored on its row (or of the
    batch span when the row carries none).  The active batch span gets a link to each row's stored
    context.  An exception escaping the batch marks every event span as failed."""
    batch = trace.get_current_span()
    spans = []
    with ExitStack() as stack:
        for event in events:
            attributes = {"wordloom.outbox_event_id": str(event.id), "wordloom.obs_schema": OBS_SCHEMA,
                          "wordloom.projection": projection, "wordloom.entity.type": event.entity_type,
                          "wordloom.entity.id": str(event.entity_id), "wordloom.op": event.op,
                          "messaging.message.id": str(event.id),
                          **_messaging(projection, "process", "process")}
            parent = context_from_headers(event.traceparent, event.tracestate)
            if parent is not None and batch.is_recording():
                batch.add_link(trace.get_current_span(parent).get_span_context(),
                               {"wordloom.outbox_event_id": str(event.id)})
            span = _tracer.start_span("outbox.process", kind=SpanKind.CONSUMER, attributes=attributes,
                                      context=parent)
            spans.append(span)
            stack.callback(span.end)
        try:
            yield
        except BaseException as exc:
            # Span attributes leave the process (OTLP, span files): the same masking as logs.
            masked = {"exception.message": redact(str(exc)),
                      "exception.stacktrace": redact("".join(traceback.format_exception(exc)))}
            for span in spans:
                span.record_exception(exc, attributes=masked)
                span.set_status(Status(StatusCode.ERROR, type(exc).__name__))
            raise


@contextmanager
def loop_span(projection: str, iteration: int):
    """`outbox_worker.loop`: one loop iteration's work (reclaim, claim, batch), not its idle wait."""
    with _tracer.start_as_current_span("outbox_worker.loop", attributes={
        "wordloom.projection": projection, "wordloom.loop_iteration": iteration,
        "wordloom.obs_schema": OBS_SCHEMA,
    }) as span:
        yield span
