"""Spans of the outbox worker, with the names and tags the Jaeger export queries (CONTRACT.md §4).

The provider is installed by wordloom.observability.tracing.setup_tracing (worker.py); without it
every span here is a no-op.  Each event's span continues the trace whose W3C
traceparent/tracestate the API stored on the outbox row; the batch span links to every event's
stored context, so one batch of N events can be followed into its N upstream traces.

Besides the contract tags (wordloom.*), spans carry the OpenTelemetry messaging attributes: the
outbox table is the queue (messaging.destination.name), the projection is the consumer group.
"""
from __future__ import annotations

import time
import traceback
from contextlib import contextmanager

from opentelemetry import trace
from opentelemetry.sdk.trace import Event
from opentelemetry.trace import SpanKind, Status, StatusCode

from ..observability.finished_spans import writer_for
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


class BatchTrace:
    """The spans of one batch: `projection.process_batch` and one `outbox.process` per event.

    Started where the batch is claimed and ended where it commits, which with the worker's
    pipeline (runner.py) is another thread: so no span here is made "current" through a context
    token (a token cannot be detached in another thread); `active()` lends the batch span to the
    thread that runs the delivery, for log correlation.  Each event's span continues the trace
    stored on its row, or is a child of the batch span when the row carries none; the batch span
    links to every stored context.  end(exc) marks every span failed, with the exception masked
    as in the logs (span attributes leave the process: OTLP, span files).

    The event spans run from the claim to the commit of their batch, so they are written finished
    at end() (observability/finished_spans.py: ~4 µs each instead of ~30 µs through start_span);
    only without the SDK (tracing off) are they ordinary spans, which are then no-ops."""

    def __init__(self, projection: str, batch_id: str, events, started_ns: int | None = None):
        """`started_ns`: when the batch's work began, if before now (a batch claimed and delivered
        by one statement is traced once the statement has answered)."""
        self.started_ns = started_ns or time.time_ns()
        self.batch = _tracer.start_span("projection.process_batch", start_time=self.started_ns,
                                        kind=SpanKind.CONSUMER, attributes={
            "wordloom.projection": projection, "wordloom.claim_batch_id": batch_id,
            "wordloom.batch_size": len(events), "wordloom.obs_schema": OBS_SCHEMA,
            "messaging.batch.message_count": len(events),
            **_messaging(projection, "process", "process_batch"),
        })
        self.writer = writer_for(_tracer, "wordloom.outbox")
        self.common = {"wordloom.obs_schema": OBS_SCHEMA, "wordloom.projection": projection,
                       **_messaging(projection, "process", "process")}
        self.inside_batch = trace.set_span_in_context(self.batch)
        self.children: list[dict] = []  # attributes of the event spans that hang under the batch span
        self.continued: list[tuple[dict, object]] = []  # (attributes, stored context) of the others
        self.events = []  # ordinary spans, without the SDK only
        recording = self.batch.is_recording()
        for event in events:
            event_id = str(event.id)
            # Each event span is sampled on its own (parent-based): a row from a sampled API trace
            # keeps its span even when the worker's own root ratio drops the batch span.
            parent = context_from_headers(event.traceparent, event.tracestate)
            if parent is not None and recording:
                self.batch.add_link(trace.get_current_span(parent).get_span_context(),
                                    {"wordloom.outbox_event_id": event_id})
            attributes = {"wordloom.outbox_event_id": event_id, "wordloom.entity.type": event.entity_type,
                          "wordloom.entity.id": str(event.entity_id), "wordloom.op": event.op,
                          "messaging.message.id": event_id, **self.common}
            if self.writer is not None:
                if parent is None:
                    self.children.append(attributes)
                else:
                    self.continued.append((attributes, parent))
            else:
                self.events.append(_tracer.start_span("outbox.process", kind=SpanKind.CONSUMER,
                                                      attributes=attributes, context=parent or self.inside_batch))

    def active(self):
        """Make the batch span current in this thread while the block runs (does not end it)."""
        return trace.use_span(self.batch, end_on_exit=False)

    def end(self, exc: BaseException | None = None) -> None:
        status, exc_events, masked = _OK, (), None
        if exc is not None:
            masked = {"exception.message": redact(str(exc)),
                      "exception.stacktrace": redact("".join(traceback.format_exception(exc)))}
            status = Status(StatusCode.ERROR, type(exc).__name__)
            exc_events = (Event("exception", {"exception.type": _exception_type(exc), "exception.escaped": "False",
                                              **masked}),)
            for span in (*self.events, self.batch):
                span.record_exception(exc, attributes=masked)
                span.set_status(status)
        end_ns = time.time_ns()
        if self.writer is not None:
            self.writer.write("outbox.process", SpanKind.CONSUMER, self.inside_batch, self.children,
                              self.started_ns, end_ns, status, exc_events)
            for attributes, parent in self.continued:
                self.writer.write("outbox.process", SpanKind.CONSUMER, parent, (attributes,),
                                  self.started_ns, end_ns, status, exc_events)
        for span in self.events:
            span.end()
        self.batch.end()


_OK = Status(StatusCode.UNSET)


def _exception_type(exc: BaseException) -> str:
    """As the SDK's record_exception names it."""
    module, name = type(exc).__module__, type(exc).__qualname__
    return f"{module}.{name}" if module and module != "builtins" else name


@contextmanager
def loop_span(projection: str, iteration: int):
    """`outbox_worker.loop`: one loop iteration's work (reclaim, claim, batch), not its idle wait."""
    with _tracer.start_as_current_span("outbox_worker.loop", attributes={
        "wordloom.projection": projection, "wordloom.loop_iteration": iteration,
        "wordloom.obs_schema": OBS_SCHEMA,
    }) as span:
        yield span
