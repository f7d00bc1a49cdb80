"""Jaeger export against a loopback server answering like the Jaeger query API, and from local spans."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

import pytest

from wordloom.commands.labs_export_jaeger import COMMAND
from wordloom.observability import jaeger_export as jx

TRACE_ID = "c82f28c7027ddef927ad4248e25c6d62"
FIXTURE_TRACE = {
    "traceID": TRACE_ID,
    "spans": [{"traceID": TRACE_ID, "spanID": "508c3d3e62746b6e", "operationName": "outbox.process",
               "references": [], "startTime": 1, "duration": 2, "processID": "p1",
               "tags": [{"key": "wordloom.outbox_event_id", "type": "string", "value": "E1"}]}],
    "processes": {"p1": {"serviceName": "wordloom-search-outbox-worker", "tags": []}},
}


class FakeJaegerQuery(BaseHTTPRequestHandler):
    """Answers the three v1 query endpoints with bodies shaped like Jaeger's documented JSON."""
    seen: list = []

    def do_GET(self):  # noqa: N802
        parts = urlsplit(self.path)
        q = parse_qs(parts.query)
        FakeJaegerQuery.seen.append((parts.path, q))
        if parts.path == "/api/services":
            body = {"data": ["wordloom-api", "wordloom-search-outbox-worker"], "total": 2}
        elif parts.path == "/api/operations":
            body = {"data": [{"name": "outbox.process", "spanKind": "consumer"}], "total": 1}
        elif parts.path == "/api/traces":
            tags = json.loads(q["tags"][0]) if "tags" in q else {}
            body = {"data": [FIXTURE_TRACE] if tags.get("wordloom.outbox_event_id") == "E1" else [], "total": 1}
        else:
            self.send_response(404)
            self.end_headers()
            return
        raw = json.dumps(body).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(raw)))
        self.end_headers()
        self.wfile.write(raw)

    def log_message(self, *args):
        pass


@pytest.fixture
def jaeger_server():
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeJaegerQuery)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/api"
    server.shutdown()


def test_export_from_jaeger_writes_three_contract_files(jaeger_server, tmp_path, capsys):
    code = COMMAND.run(["--service", "wordloom-search-outbox-worker", "--outbox-event-id", "E1",
                        "--jaeger-url", jaeger_server, "--outdir", str(tmp_path)], prog="export-jaeger")
    assert code == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert len(names) == 3
    assert names[0].startswith("jaeger-operations-") and names[1].startswith("jaeger-services-")
    assert names[2].startswith("jaeger-traces-outbox_event_id-E1-")
    traces = json.loads((tmp_path / names[2]).read_text())
    assert traces["data"][0]["traceID"] == TRACE_ID
    # the tag filter and lookback reached the query API as the contract says
    path, q = [s for s in FakeJaegerQuery.seen if s[0] == "/api/traces"][-1]
    assert q["service"] == ["wordloom-search-outbox-worker"] and q["lookback"] == ["24h"] and q["limit"] == ["20"]


def test_export_falls_back_to_local_spans_when_jaeger_is_down(tmp_path, capsys, monkeypatch):
    spans_dir = tmp_path / "traces"
    spans_dir.mkdir()
    import time
    now = int(time.time() * 1e9)
    span = {"traceId": TRACE_ID, "spanId": "1111111111111111", "parentSpanId": None, "name": "outbox.process",
            "service": "wordloom-search-outbox-worker", "startTimeUnixNano": now, "endTimeUnixNano": now + 5000,
            "status": "OK", "attributes": {"wordloom.outbox_event_id": "E9"}, "links": []}
    other = dict(span, traceId="f" * 32, attributes={"wordloom.outbox_event_id": "E8"})
    (spans_dir / "wordloom-search-outbox-worker.jsonl").write_text(json.dumps(span) + "\n" + json.dumps(other) + "\n{cut")
    monkeypatch.setenv("WORDLOOM_VAR_DIR", str(tmp_path))
    out = tmp_path / "out"
    code = COMMAND.run(["--service", "wordloom-search-outbox-worker", "--outbox-event-id", "E9",
                        "--jaeger-url", "http://127.0.0.1:1/api", "--outdir", str(out)], prog="export-jaeger")
    assert code == 0
    assert "not reachable" in capsys.readouterr().err
    traces_file = next(out.glob("jaeger-traces-*.json"))
    data = json.loads(traces_file.read_text())["data"]
    assert [t["traceID"] for t in data] == [TRACE_ID]  # E8's trace filtered out by the tag
    assert data[0]["spans"][0]["tags"] == [{"key": "wordloom.outbox_event_id", "type": "string", "value": "E9"}]
    assert data[0]["processes"]["p1"]["serviceName"] == "wordloom-search-outbox-worker"


def test_bad_lookback_is_a_usage_error(tmp_path):
    assert COMMAND.run(["--service", "x", "--lookback", "yesterday", "--outdir", str(tmp_path)], prog="x") == 2


def test_lookback_parser():
    assert jx.lookback_seconds("24h") == 86400 and jx.lookback_seconds("30m") == 1800
    with pytest.raises(ValueError):
        jx.lookback_seconds("1w")


def test_default_outdir_is_under_this_repo_root():
    """v3's wrapper computed the repo root one level too high."""
    from pathlib import Path
    from wordloom.commands.labs_export_jaeger import default_outdir

    root = Path(__file__).resolve().parents[2]
    assert default_outdir("labs-009", "r1") == root / "docs/labs/_snapshot/manual/labs-009/r1/_exports"
    assert (root / "pyproject.toml").exists()


def test_unknown_service_says_so_on_stderr_and_still_writes_the_files(jaeger_server, tmp_path, capsys):
    code = COMMAND.run(["--service", "nosuch-service", "--jaeger-url", jaeger_server, "--outdir", str(tmp_path)],
                       prog="export-jaeger")
    assert code == 0
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert lines == [f"service 'nosuch-service' has no traces in Jaeger at {jaeger_server}; "
                     "known services: wordloom-api, wordloom-search-outbox-worker"]
    assert len(list(tmp_path.iterdir())) == 3  # "nothing" is still evidence
    assert len(captured.out.splitlines()) == 3


def test_known_service_prints_nothing_on_stderr(jaeger_server, tmp_path, capsys):
    assert COMMAND.run(["--service", "wordloom-api", "--jaeger-url", jaeger_server, "--outdir", str(tmp_path)],
                       prog="export-jaeger") == 0
    assert capsys.readouterr().err == ""


def test_unknown_service_from_local_spans_names_the_local_source(tmp_path, capsys, monkeypatch):
    spans_dir = tmp_path / "traces"
    spans_dir.mkdir()
    span = {"traceId": TRACE_ID, "spanId": "1111111111111111", "name": "outbox.process",
            "service": "wordloom-api", "startTimeUnixNano": 1, "attributes": {}}
    (spans_dir / "wordloom-api.jsonl").write_text(json.dumps(span) + "\n")
    monkeypatch.setenv("WORDLOOM_VAR_DIR", str(tmp_path))
    out = tmp_path / "out"
    assert COMMAND.run(["--service", "nosuch-service", "--from-local", "--outdir", str(out)], prog="x") == 0
    err = capsys.readouterr().err
    assert err == f"service 'nosuch-service' has no traces in local span files in {spans_dir}; known services: wordloom-api\n"
    assert len(list(out.iterdir())) == 3
