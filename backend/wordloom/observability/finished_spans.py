"""Spans that are already over when they are made: handed straight to the SDK's span processors.

Why: the worker makes one `outbox.process` span per event (CONTRACT §4).  Through the SDK's
`start_span` ... `end()` each costs about 30 µs of CPU on this project's machines (locks, attribute
validation done twice, start/end hooks); at thousands of events per second that was a third of the
search worker's CPU and most of the chronicle worker's.  An event span's start and end are known
(the batch's claim and commit), so it can be built finished, as the `ReadableSpan` that the
processors receive from `end()` anyway: about 4 µs.

What stays the SDK's: the sampling decision (the provider's own sampler, asked exactly as
`start_span` asks it, so parent-based sampling and OTEL_TRACES_SAMPLER behave the same), the ids
(its id generator), the resource and the processors (so local files and OTLP both get them).
Only a tracer of the OpenTelemetry SDK can be written to this way; `writer_for()` returns None for
any other (the no-op tracer when tracing is off), and callers then use ordinary spans.
"""
from __future__ import annotations

from typing import Mapping, Sequence

from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.trace import Event, ReadableSpan
from opentelemetry.sdk.trace import Tracer as SdkTracer
from opentelemetry.sdk.trace import TracerProvider as SdkTracerProvider
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from opentelemetry.trace import SpanContext, SpanKind, Status, TraceFlags

_SAMPLED = TraceFlags(TraceFlags.SAMPLED)
# id(tracer or provider) -> (that object, its writer); the object is kept so its id is never reused.
_writers: dict[int, tuple[object, "FinishedSpanWriter"]] = {}


class FinishedSpanWriter:
    def __init__(self, tracer: SdkTracer, scope_name: str):
        # Public attributes of the SDK's Tracer (the same ones its start_span reads).
        self.sampler = tracer.sampler
        self.resource = tracer.resource
        self.ids = tracer.id_generator
        self.processor = tracer.span_processor
        self.scope = InstrumentationScope(scope_name)

    def write(self, name: str, kind: SpanKind, parent: Context, attributes: Sequence[Mapping[str, object]],
              start_ns: int, end_ns: int, status: Status, events: Sequence[Event] = ()) -> int:
        """Sample, build and hand over one finished span per attribute set, all children of
        `parent`; returns how many were sampled.  One sampling decision serves them all: the
        worker's sampler is parent-based (observability.tracing._sampler), so siblings share it."""
        if not attributes:
            return 0
        parent_span = trace.get_current_span(parent).get_span_context()
        if parent_span.is_valid:
            trace_id = parent_span.trace_id
        else:
            parent_span = None
            trace_id = self.ids.generate_trace_id()
        decision = self.sampler.should_sample(parent, trace_id, name, kind, attributes[0])
        if not decision.decision.is_sampled():
            return 0  # processors export sampled spans only
        for attrs in attributes:
            context = SpanContext(trace_id, self.ids.generate_span_id(), is_remote=False, trace_flags=_SAMPLED,
                                  trace_state=decision.trace_state)
            self.processor.on_end(ReadableSpan(
                name, context, parent_span, self.resource, attrs, events, (), kind,
                status=status, start_time=start_ns, end_time=end_ns, instrumentation_scope=self.scope))
        return len(attributes)


def writer_for(tracer: trace.Tracer, scope_name: str) -> FinishedSpanWriter | None:
    """A writer for `tracer`'s SDK pipeline, or None when it is not the SDK's (tracing off).

    `tracer` may be the API's proxy (a module-level `trace.get_tracer()` made before the provider
    was installed): then the installed provider is asked, once per provider."""
    owner: object = tracer
    if not isinstance(tracer, SdkTracer):
        owner = trace.get_tracer_provider()
        if not isinstance(owner, SdkTracerProvider):
            return None
    cached = _writers.get(id(owner))
    if cached is None or cached[0] is not owner:
        sdk_tracer = tracer if owner is tracer else owner.get_tracer(scope_name)
        cached = _writers[id(owner)] = (owner, FinishedSpanWriter(sdk_tracer, scope_name))
    return cached[1]
