"""OpenTelemetry setup shared by the API and both workers (CONTRACT.md section 4).

- Service names: wordloom-api, wordloom-search-outbox-worker, wordloom-chronicle-outbox-worker.
- Sampling is parent-based: a sampled API trace is never cut in the worker, whatever the ratio.
- With OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) spans go out over OTLP/HTTP through a
  bounded queue with a short timeout, so an unreachable collector never blocks or slows the
  pipeline (spans are dropped instead).  Without one, spans are written as JSON lines under
  var/traces/ so drills always leave evidence that `labs export-jaeger --from-local` can read.
- OTEL_SDK_DISABLED=true or WORDLOOM_TRACING_ENABLED=false turns tracing off entirely.
- Shutdown is bounded too (SHUTDOWN_BUDGET_SECONDS): the local files are flushed first, then the
  OTLP queue gets what is left of the budget.  The SDK's own exit hook would wait up to 30 s per
  processor for a collector that never answers, past honcho's SIGKILL.
"""
from __future__ import annotations

import atexit
import json
import threading
import time
from contextvars import ContextVar
from pathlib import Path
from typing import Mapping, Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..envfile import REPO_ROOT
from ..settings import Env

OBS_SCHEMA = "labs-009-v2"
SHUTDOWN_BUDGET_SECONDS = 2.0
OTLP_TIMEOUT_SECONDS = 2
_PROPAGATOR = TraceContextTextMapPropagator()
_configured: dict[str, TracerProvider] = {}
# (processor, is_local) of every provider, in the order they must be shut down.
_processors: list[tuple[BatchSpanProcessor, bool]] = []


def traces_dir() -> Path:
    base = Env().str("WORDLOOM_VAR_DIR")
    return (Path(base) if base else REPO_ROOT / "var") / "traces"


_ENCODE = json.JSONEncoder(default=str).encode  # one encoder for every line


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per finished span to <dir>/<service>.jsonl."""

    def __init__(self, directory: Path, service_name: str):
        self.path = Path(directory) / f"{service_name}.jsonl"
        self.service_name = service_name
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [_ENCODE(span_to_dict(s, self.service_name)) for s in spans]
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            with self._lock, open(self.path, "a", encoding="utf-8") as fh:
                fh.write("\n".join(lines) + "\n")
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS

    def shutdown(self) -> None:
        pass


def span_to_dict(span: ReadableSpan, service_name: str) -> dict:
    ctx = span.context
    parent = span.parent
    return {
        "traceId": f"{ctx.trace_id:032x}",
        "spanId": f"{ctx.span_id:016x}",
        "parentSpanId": f"{parent.span_id:016x}" if parent else None,
        "name": span.name,
        "service": service_name,
        "startTimeUnixNano": span.start_time,
        "endTimeUnixNano": span.end_time,
        "status": span.status.status_code.name,
        "attributes": dict(span.attributes or {}),
        "links": [
            {"traceId": format(l.context.trace_id, "032x"), "spanId": format(l.context.span_id, "016x")}
            for l in (span.links or ())
        ],
    }


def _sampler(env: Env):
    name = (env.str("OTEL_TRACES_SAMPLER") or "parentbased_always_on").lower()
    if "traceidratio" in name:
        root = TraceIdRatioBased(min(1.0, env.float("OTEL_TRACES_SAMPLER_ARG", 1.0, minimum=0.0)))
    elif name.endswith("always_off"):
        root = ALWAYS_OFF
    else:
        root = ALWAYS_ON
    # Always parent-based, even if asked for a plain ratio: a sampled API trace must reach the worker.
    return ParentBased(root)


def tracing_enabled(env: Env) -> bool:
    return not env.bool("OTEL_SDK_DISABLED", False) and env.bool("WORDLOOM_TRACING_ENABLED", True)


def setup_tracing(service_name: str, environ: Mapping[str, str] | None = None) -> trace.Tracer:
    """Install a TracerProvider for this process (once) and return a tracer."""
    env = Env(environ)
    if not tracing_enabled(env):
        return trace.NoOpTracer()
    if service_name not in _configured:
        sampler = _sampler(env)
        # shutdown_on_exit=False: our own exit hook (below) is bounded, the SDK's is not.
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=sampler,
                                  shutdown_on_exit=False)
        endpoint = env.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.str("OTEL_EXPORTER_OTLP_ENDPOINT")
        if env.bool("WORDLOOM_TRACES_LOCAL", not endpoint):
            local = BatchSpanProcessor(JsonLinesSpanExporter(traces_dir(), service_name), schedule_delay_millis=500)
            provider.add_span_processor(local)
            _processors.append((local, True))
        if endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            if not env.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
                endpoint = endpoint.rstrip("/") + "/v1/traces"
            exporter = OTLPSpanExporter(endpoint=endpoint, timeout=OTLP_TIMEOUT_SECONDS)
            # Bounded queue: when the collector is away, spans beyond it are dropped, never held.
            remote = BatchSpanProcessor(exporter, max_queue_size=2048, max_export_batch_size=256,
                                        export_timeout_millis=OTLP_TIMEOUT_SECONDS * 1000)
            provider.add_span_processor(remote)
            _processors.append((remote, False))
        trace.set_tracer_provider(provider)
        _configured[service_name] = provider
        if len(_configured) == 1:
            atexit.register(shutdown_tracing)
    return trace.get_tracer("wordloom")


def flush_tracing(timeout_seconds: float = SHUTDOWN_BUDGET_SECONDS) -> None:
    """Write out the local span files now (tests and drills that read them while a process runs)."""
    for processor, is_local in list(_processors):
        if is_local:
            processor.force_flush(int(timeout_seconds * 1000))


def shutdown_tracing(budget_seconds: float = SHUTDOWN_BUDGET_SECONDS) -> None:
    """Flush and stop every span processor within `budget_seconds` in total: local files first
    (they are the evidence), then whatever the OTLP queue can send in the time left.  Spans a dead
    collector cannot take are dropped; exit is never held up by them."""
    deadline = time.monotonic() + budget_seconds
    for processor, is_local in sorted(_processors, key=lambda p: not p[1]):
        remaining_ms = max(0, int((deadline - time.monotonic()) * 1000))
        # Local files get at least a second even when the budget is spent; OTLP only the rest.
        timeout_ms = max(remaining_ms, 1000) if is_local else remaining_ms
        try:
            # BatchSpanProcessor.shutdown() has no timeout (it waits up to 30 s); its inner batch
            # processor takes one.
            inner = getattr(processor, "_batch_processor", None)
            if inner is not None:
                inner.shutdown(timeout_millis=timeout_ms)
            else:  # pragma: no cover - another SDK layout
                processor.shutdown()
        except Exception:  # pragma: no cover - a broken exporter must not break exit
            pass


# The server span of the API request being handled (set by wordloom.api.tracing).  FastAPI opens
# its own child spans (fastapi.dependencies, fastapi.endpoint, ...) around the code that writes the
# outbox rows; the rows must point at the request's span, so the worker's outbox.process hangs
# directly under "POST /api/v1/blocks" in Jaeger, not under a dependency-resolution span.
_request_span: ContextVar[trace.Span | None] = ContextVar("wordloom_request_span", default=None)


def bind_request_span(span: trace.Span):
    """Mark `span` as the current request's span; returns a token for `unbind_request_span`."""
    return _request_span.set(span)


def unbind_request_span(token) -> None:
    _request_span.reset(token)


def current_trace_headers() -> tuple[str | None, str | None]:
    """(traceparent, tracestate) to store on an outbox row: the API request's server span while one
    is being handled, else the active span."""
    carrier: dict[str, str] = {}
    request_span = _request_span.get()
    ctx = trace.set_span_in_context(request_span) if request_span is not None else None
    _PROPAGATOR.inject(carrier, context=ctx)
    return carrier.get("traceparent"), carrier.get("tracestate")


def context_from_headers(traceparent: str | None, tracestate: str | None = None) -> Context | None:
    """The remote context stored on an outbox row, or None when the row carries none."""
    if not traceparent:
        return None
    carrier = {"traceparent": traceparent}
    if tracestate:
        carrier["tracestate"] = tracestate
    ctx = _PROPAGATOR.extract(carrier)
    span_ctx = trace.get_current_span(ctx).get_span_context()
    return ctx if span_ctx.is_valid else None


def extract_request_context(headers: Mapping[str, str]) -> Context:
    return propagate.extract(dict(headers))
