"""Tracing pieces alone: parent-based sampling, worker span shapes (contract tags, messaging
attributes, batch links), bounded shutdown with a dead collector, and JSON logs with trace ids."""
from __future__ import annotations

import io
import json
import logging
import socket
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

from wordloom.observability import tracing as obs_tracing
from wordloom.observability.logs import JsonFormatter
from wordloom.observability.tracing import (
    JsonLinesSpanExporter, _sampler, context_from_headers, current_trace_headers,
)
from wordloom.outbox import tracing as outbox_tracing
from wordloom.settings import Env

REPO_ROOT = Path(__file__).resolve().parents[2]


def provider_for(environ: dict) -> tuple[TracerProvider, InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider(sampler=_sampler(Env(environ)), shutdown_on_exit=False)
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    return provider, exporter


RATIO_ZERO = {"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "0"}


def test_ratio_zero_cuts_worker_roots_but_never_a_sampled_api_trace():
    provider, exporter = provider_for(RATIO_ZERO)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("outbox.claim_batch") as root:
        assert not root.get_span_context().trace_flags.sampled  # ratio 0 applies to worker roots
    trace_id = uuid.uuid4().hex
    sampled = context_from_headers(f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01", "k=v")
    span = tracer.start_span("outbox.process", context=sampled)
    span.end()
    assert span.get_span_context().trace_flags.sampled
    assert format(span.get_span_context().trace_id, "032x") == trace_id
    assert span.get_span_context().trace_state.get("k") == "v"
    not_sampled = context_from_headers(f"00-{uuid.uuid4().hex}-{uuid.uuid4().hex[:16]}-00")
    span2 = tracer.start_span("outbox.process", context=not_sampled)
    span2.end()
    assert not span2.get_span_context().trace_flags.sampled  # the caller decided; we follow
    assert [s.name for s in exporter.get_finished_spans()] == ["outbox.process"]


@pytest.mark.parametrize("environ,root_sampled", [
    ({}, True), ({"OTEL_TRACES_SAMPLER": "always_off"}, False),
    ({"OTEL_TRACES_SAMPLER": "parentbased_always_off"}, False),
    ({"OTEL_TRACES_SAMPLER": "traceidratio", "OTEL_TRACES_SAMPLER_ARG": "1"}, True),
])
def test_sampler_names_and_parent_always_wins(environ, root_sampled):
    provider, _ = provider_for(environ)
    tracer = provider.get_tracer("t")
    with tracer.start_as_current_span("root") as root:
        assert root.get_span_context().trace_flags.sampled is root_sampled
    child = tracer.start_span("x", context=context_from_headers(f"00-{uuid.uuid4().hex}-{'1' * 16}-01"))
    assert child.get_span_context().trace_flags.sampled


def test_context_from_headers_ignores_missing_or_garbage():
    assert context_from_headers(None) is None
    assert context_from_headers("") is None
    assert context_from_headers("not-a-traceparent") is None


@dataclass
class FakeEvent:
    id: uuid.UUID
    entity_type: str
    entity_id: uuid.UUID
    op: str
    traceparent: str | None
    tracestate: str | None = None


@pytest.fixture
def worker_tracer(monkeypatch):
    provider, exporter = provider_for({})
    monkeypatch.setattr(outbox_tracing, "_tracer", provider.get_tracer("wordloom.outbox"))
    return exporter


def test_worker_spans_carry_contract_tags_messaging_attributes_and_batch_links(worker_tracer):
    traces = [uuid.uuid4().hex for _ in range(3)]
    events = [FakeEvent(uuid.uuid4(), "block", uuid.uuid4(), "upsert", f"00-{t}-{uuid.uuid4().hex[:16]}-01")
              for t in traces]
    events.append(FakeEvent(uuid.uuid4(), "book", uuid.uuid4(), "delete", None))  # a row without context
    with outbox_tracing.claim_span("search"):
        pass
    outbox_tracing.BatchTrace("search", "batch-1", events).end()
    spans = {s.name: s for s in worker_tracer.get_finished_spans() if s.name != "outbox.process"}
    process = [s for s in worker_tracer.get_finished_spans() if s.name == "outbox.process"]
    batch = spans["projection.process_batch"]
    assert batch.attributes["wordloom.claim_batch_id"] == "batch-1"
    assert batch.attributes["messaging.batch.message_count"] == 4
    # the batch links to every event's stored context (rows without one have nothing to link)
    assert sorted(format(l.context.trace_id, "032x") for l in batch.links) == sorted(traces)
    assert {l.attributes["wordloom.outbox_event_id"] for l in batch.links} == {str(e.id) for e in events[:3]}
    for span in [batch, spans["outbox.claim_batch"], *process]:
        assert span.attributes["wordloom.obs_schema"] == "labs-009-v2"
        assert span.attributes["messaging.system"] == "wordloom_outbox"
        assert span.attributes["messaging.destination.name"] == "search_outbox_events"
        assert span.attributes["messaging.operation"] in ("process", "receive")
    by_event = {s.attributes["wordloom.outbox_event_id"]: s for s in process}
    for event in events:
        span = by_event[str(event.id)]
        assert span.attributes["wordloom.entity.id"] == str(event.entity_id)
        assert span.attributes["messaging.message.id"] == str(event.id)
        assert span.attributes["messaging.operation.type"] == "process"
    for event, trace_id in zip(events, traces):
        assert format(by_event[str(event.id)].context.trace_id, "032x") == trace_id  # continues the API trace
    orphan = by_event[str(events[3].id)]
    assert orphan.parent.span_id == batch.context.span_id  # no stored context: child of the batch


def test_an_exception_marks_every_event_span_failed_and_is_masked(worker_tracer):
    events = [FakeEvent(uuid.uuid4(), "book", uuid.uuid4(), "upsert", None) for _ in range(2)]
    outbox_tracing.BatchTrace("chronicle", "b", events).end(RuntimeError("cannot reach postgresql://w:span-secret-pw@h/db"))
    process = [s for s in worker_tracer.get_finished_spans() if s.name == "outbox.process"]
    assert len(process) == 2 and all(s.status.status_code is StatusCode.ERROR for s in process)
    text = json.dumps([{k: str(v) for k, v in e.attributes.items()} for s in process for e in s.events])
    assert "RuntimeError" in text and "span-secret-pw" not in text
    assert process[0].attributes["messaging.destination.name"] == "chronicle_outbox_events"


def test_event_spans_are_written_finished_and_sampled_like_start_span(monkeypatch):
    """Event spans skip start_span (observability/finished_spans.py) but not the sampler: with a
    root ratio of 0 only the row from a sampled API trace keeps its span, as start_span decides."""
    provider, exporter = provider_for(RATIO_ZERO)
    tracer = provider.get_tracer("wordloom.outbox")
    monkeypatch.setattr(outbox_tracing, "_tracer", tracer)
    assert outbox_tracing.writer_for(tracer, "wordloom.outbox") is not None  # the fast path is the one taken
    sampled_trace = uuid.uuid4().hex
    events = [FakeEvent(uuid.uuid4(), "block", uuid.uuid4(), "upsert", f"00-{sampled_trace}-{'2' * 16}-01", "k=v"),
              FakeEvent(uuid.uuid4(), "block", uuid.uuid4(), "upsert", f"00-{uuid.uuid4().hex}-{'3' * 16}-00"),
              FakeEvent(uuid.uuid4(), "book", uuid.uuid4(), "delete", None)]
    started = time.time_ns()
    outbox_tracing.BatchTrace("search", "b", events).end()
    spans = exporter.get_finished_spans()
    assert [s.name for s in spans] == ["outbox.process"]  # batch root and its child dropped at ratio 0
    (span,) = spans
    assert span.attributes["wordloom.outbox_event_id"] == str(events[0].id)
    assert format(span.context.trace_id, "032x") == sampled_trace and span.parent.span_id == int("2" * 16, 16)
    assert span.context.trace_state.get("k") == "v" and span.context.trace_flags.sampled
    assert started <= span.start_time <= span.end_time <= time.time_ns()



# -- a collector that never answers ---------------------------------------------------------------
class Blackhole:
    """Accepts TCP connections and never answers (a hung collector)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.port = self.sock.getsockname()[1]
        self.conns: list[socket.socket] = []
        self._stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while not self._stop:
            try:
                conn, _ = self.sock.accept()
                self.conns.append(conn)
            except OSError:
                return

    def close(self):
        self._stop = True
        for c in self.conns:
            c.close()
        self.sock.close()


def test_shutdown_with_a_hung_collector_is_bounded_and_local_spans_are_kept(tmp_path, monkeypatch):
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

    hole = Blackhole()
    try:
        local = BatchSpanProcessor(JsonLinesSpanExporter(tmp_path, "svc"), schedule_delay_millis=60_000)
        remote = BatchSpanProcessor(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{hole.port}/v1/traces", timeout=2),
                                    max_queue_size=2048, max_export_batch_size=256)
        provider = TracerProvider(shutdown_on_exit=False)
        provider.add_span_processor(remote)
        provider.add_span_processor(local)
        monkeypatch.setattr(obs_tracing, "_processors", [(remote, False), (local, True)])
        tracer = provider.get_tracer("t")
        started = time.monotonic()
        for i in range(1500):
            with tracer.start_as_current_span(f"s{i}"):
                pass
        assert time.monotonic() - started < 2.0  # recording never waits for the collector
        started = time.monotonic()
        obs_tracing.shutdown_tracing(budget_seconds=1.0)
        elapsed = time.monotonic() - started
    finally:
        hole.close()
        # The abandoned export thread ends once the hole is gone; wait for it here, so its
        # "failed to export" line is logged while this test still owns the log streams.
        remote.shutdown()
    # The SDK's default would wait up to 30 s per processor; SIGKILL comes 5 s after SIGTERM.
    assert elapsed < 3.0, elapsed
    assert len((tmp_path / "svc.jsonl").read_text().splitlines()) == 1500  # local evidence complete


# -- logs -------------------------------------------------------------------------------------------
def _format(record_kwargs: dict, exc_info=None) -> dict:
    logger = logging.getLogger("wordloom.test")
    record = logger.makeRecord("wordloom.test", logging.WARNING, __file__, 1, record_kwargs.pop("msg"),
                               record_kwargs.pop("args", ()), exc_info, extra=record_kwargs or None)
    line = JsonFormatter().format(record)
    assert "\n" not in line  # one object per line, tracebacks included
    return json.loads(line)


def test_json_log_lines_carry_trace_ids_only_while_a_span_is_active():
    provider, _ = provider_for({})
    tracer = provider.get_tracer("t")
    outside = _format({"msg": "no span"})
    assert {"ts", "level", "logger", "message"} <= set(outside) and "trace_id" not in outside
    with tracer.start_as_current_span("work") as span:
        inside = _format({"msg": "in span"})
        traceparent, _ = current_trace_headers()
    ctx = span.get_span_context()
    assert inside["trace_id"] == format(ctx.trace_id, "032x") and inside["span_id"] == format(ctx.span_id, "016x")
    assert traceparent.split("-")[1] == inside["trace_id"]


def test_json_log_lines_mask_secrets_in_message_args_extras_and_tracebacks():
    try:
        raise ConnectionError("could not connect to postgresql://w:tb-secret@h:5432/db")
    except ConnectionError:
        exc_info = sys.exc_info()
    record = _format({"msg": "db %s failed", "args": ("postgresql://w:arg-secret@h/db",),
                      "database": "postgresql://w:extra-secret@h/db", "rows": 3}, exc_info)
    text = json.dumps(record)
    for secret in ("tb-secret", "arg-secret", "extra-secret"):
        assert secret not in text
    assert record["rows"] == 3 and "ConnectionError" in record["exc_info"] and record["level"] == "WARNING"


def test_an_uncaught_exception_is_one_masked_json_line(tmp_path):
    code = ("import sys, threading; sys.path.insert(0, 'backend');"
            "from wordloom.observability.logs import setup_logging; setup_logging({'LOG_JSON': 'true'});"
            "t = threading.Thread(target=lambda: 1/0 if False else (_ for _ in ()).throw("
            "RuntimeError('thread postgresql://u:thread-secret@h/db'))); t.start(); t.join();"
            "raise RuntimeError('main http://elastic:main-secret@h:9200 ApiKey abcdefghijkl')")
    result = subprocess.run([sys.executable, "-c", code], cwd=REPO_ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    records = [json.loads(line) for line in lines]  # every line is JSON
    assert [r["logger"] for r in records] == ["wordloom.uncaught", "wordloom.uncaught"]
    assert all(r["level"] == "CRITICAL" and "Traceback" in r["exc_info"] for r in records)
    assert not any(s in result.stderr + result.stdout for s in ("thread-secret", "main-secret", "abcdefghijkl"))


@pytest.fixture
def restored_logging():
    """setup_logging() replaces the root handlers and the exception hooks of the whole process:
    put them back after the test, so later tests log where pytest expects."""
    root = logging.getLogger()
    saved = (list(root.handlers), root.level, sys.excepthook, threading.excepthook)
    yield root
    for h in list(root.handlers):
        root.removeHandler(h)
    for h in saved[0]:
        root.addHandler(h)
    root.setLevel(saved[1])
    sys.excepthook, threading.excepthook = saved[2], saved[3]


def test_setup_logging_text_mode_masks_too(restored_logging):
    from wordloom.observability.logs import setup_logging

    stream = io.StringIO()
    setup_logging({"LOG_JSON": "false"}, stream=stream)
    logging.getLogger("wordloom.x").warning("url %s", "http://u:text-secret@h:1")
    assert "text-secret" not in stream.getvalue() and "http://u:***@h:1" in stream.getvalue()


def test_setup_logging_follows_sys_stderr_when_it_is_replaced(restored_logging, monkeypatch):
    """A command run in-process sets logging up under a captured stderr that is later closed;
    records logged after that must go to the stderr of their own moment, not raise on the old one."""
    from wordloom.observability.logs import setup_logging

    first, second = io.StringIO(), io.StringIO()
    raised = []
    monkeypatch.setattr(sys, "stderr", first)
    setup_logging({"LOG_JSON": "true"})
    logging.getLogger("wordloom.x").warning("first line")
    first.close()
    monkeypatch.setattr(sys, "stderr", second)
    monkeypatch.setattr(logging, "raiseExceptions", False)  # a failing emit calls handleError: record it
    for h in restored_logging.handlers:
        h.handleError = lambda record, _raised=raised: _raised.append(record)
    logging.getLogger("wordloom.x").warning("second line")
    assert raised == []
    assert [json.loads(line)["message"] for line in second.getvalue().splitlines()] == ["second line"]
