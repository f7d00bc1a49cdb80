"""OpenTelemetry setup shared by the API and both workers (CONTRACT.md section 4).

- Service names: wordloom-api, wordloom-search-outbox-worker, wordloom-chronicle-outbox-worker.
- Sampling is parent-based: a sampled API trace is never cut in the worker, whatever the ratio.
- With OTEL_EXPORTER_OTLP_ENDPOINT (or ..._TRACES_ENDPOINT) spans go out over OTLP/HTTP through a
  bounded queue with a short timeout, so an unreachable collector never blocks or slows the
  pipeline (spans are dropped instead).  Without one, spans are written as JSON lines under
  var/traces/ so drills always leave evidence that `labs export-jaeger --from-local` can read.
- OTEL_SDK_DISABLED=true or WORDLOOM_TRACING_ENABLED=false turns tracing off entirely.
"""
from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from typing import Mapping, Sequence

from opentelemetry import propagate, trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.sampling import ALWAYS_ON, ParentBased, TraceIdRatioBased
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from ..envfile import REPO_ROOT
from ..settings import Env

OBS_SCHEMA = "labs-009-v2"
_PROPAGATOR = TraceContextTextMapPropagator()
_configured: dict[str, TracerProvider] = {}


def traces_dir() -> Path:
    base = Env().str("WORDLOOM_VAR_DIR")
    return (Path(base) if base else REPO_ROOT / "var") / "traces"


class JsonLinesSpanExporter(SpanExporter):
    """Appends one JSON object per finished span to <dir>/<service>.jsonl."""

    def __init__(self, directory: Path, service_name: str):
        self.path = Path(directory) / f"{service_name}.jsonl"
        self.service_name = service_name
        self._lock = threading.Lock()

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        lines = [json.dumps(span_to_dict(s, self.service_name), default=str) for s in spans]
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
    ctx = span.get_span_context()
    parent = span.parent
    return {
        "traceId": format(ctx.trace_id, "032x"),
        "spanId": format(ctx.span_id, "016x"),
        "parentSpanId": format(parent.span_id, "016x") if parent else None,
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
    ratio = env.float("OTEL_TRACES_SAMPLER_ARG", 1.0, minimum=0.0)
    root = TraceIdRatioBased(ratio) if "traceidratio" in name else ALWAYS_ON
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
        provider = TracerProvider(resource=Resource.create({"service.name": service_name}), sampler=_sampler(env))
        endpoint = env.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or env.str("OTEL_EXPORTER_OTLP_ENDPOINT")
        if endpoint:
            from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

            if not env.str("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
                endpoint = endpoint.rstrip("/") + "/v1/traces"
            exporter = OTLPSpanExporter(endpoint=endpoint, timeout=2)
            provider.add_span_processor(BatchSpanProcessor(
                exporter, max_queue_size=2048, max_export_batch_size=256, export_timeout_millis=2000))
        if env.bool("WORDLOOM_TRACES_LOCAL", not endpoint):
            provider.add_span_processor(BatchSpanProcessor(
                JsonLinesSpanExporter(traces_dir(), service_name), schedule_delay_millis=500))
        trace.set_tracer_provider(provider)
        _configured[service_name] = provider
    return trace.get_tracer("wordloom")


def shutdown_tracing() -> None:
    for provider in _configured.values():
        provider.shutdown()


def current_trace_headers() -> tuple[str | None, str | None]:
    """(traceparent, tracestate) of the active span, for storing on an outbox row."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
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
