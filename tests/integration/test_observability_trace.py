"""Issue 6, first "Done when": a block written through the real API (`cli ops api`) is followed by
real worker processes; `labs export-jaeger --from-local` finds the API span and the worker's
`outbox.process` span for that event under ONE trace id, with the contract tags (CONTRACT §4).
Then parent-based sampling: a worker told OTEL_TRACES_SAMPLER=traceidratio/ARG=0 still continues
a sampled API trace."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.support.outbox_helpers import WorkerProcess, status_counts, wait_until
from wordloom.devstack.ports import free_port

pytestmark = pytest.mark.integration
# An env file another in-process test loaded into os.environ may carry per-projection ports (they win
# over worker_env's OUTBOX_METRICS_PORT=0): pin them to "any free port".
FREE_METRICS_PORTS = {"SEARCH_OUTBOX_METRICS_PORT": "0", "CHRONICLE_OUTBOX_METRICS_PORT": "0"}
REPO_ROOT = Path(__file__).resolve().parents[2]
SEARCH = "wordloom-search-outbox-worker"
CHRONICLE = "wordloom-chronicle-outbox-worker"


class ApiProcess:
    """`python -m wordloom.cli ops api` on a free port, stdout/stderr kept."""

    def __init__(self, env: dict, tmp_path: Path):
        self.port = free_port()
        env_file = tmp_path / "api-empty.env"
        env_file.write_text("")
        self.env = {**env, "API_HOST": "127.0.0.1", "API_PORT": str(self.port)}
        self.proc = subprocess.Popen([sys.executable, "-m", "wordloom.cli", "ops", "api", "--env-file", str(env_file)],
                                     env=self.env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     text=True)
        self.base = f"http://127.0.0.1:{self.port}"
        self.out = self.err = ""

    def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"{self.base}/api/v1/health", timeout=2) as r:
                    if json.load(r)["ok"]:
                        return
            except OSError:
                pass
            if self.proc.poll() is not None:
                raise AssertionError(f"API exited {self.proc.returncode}: {self.proc.stderr.read()}")
            assert time.monotonic() < deadline, "API did not come up"
            time.sleep(0.1)

    def post(self, path: str, body: dict, headers: dict | None = None) -> dict:
        req = urllib.request.Request(f"{self.base}/api/v1{path}", data=json.dumps(body).encode(), method="POST",
                                     headers={"Content-Type": "application/json", **(headers or {})})
        with urllib.request.urlopen(req, timeout=10) as r:
            assert r.status == 201
            return json.load(r)

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            self.out, self.err = self.proc.communicate(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.out, self.err = self.proc.communicate()
        return self.proc.returncode


def export_jaeger(env: dict, outdir: Path, service: str, *selector: str) -> dict:
    """Run the real export command against the local span files; return the traces file's JSON."""
    result = subprocess.run([sys.executable, "-m", "wordloom.cli", "labs", "export-jaeger", "--from-local",
                             "--service", service, *selector, "--outdir", str(outdir)],
                            env=env, cwd=REPO_ROOT, capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    files = [Path(line if Path(line).is_absolute() else REPO_ROOT / line) for line in result.stdout.split()]
    names = sorted(p.name.split("-")[1] for p in files)
    assert names == ["operations", "services", "traces"], files
    traces_file = next(p for p in files if p.name.startswith("jaeger-traces-"))
    services = json.loads(next(p for p in files if p.name.startswith("jaeger-services-")).read_text())
    assert {"wordloom-api", service} <= set(services["data"])
    return json.loads(traces_file.read_text())


def tags(span: dict) -> dict:
    return {t["key"]: t["value"] for t in span["tags"]}


def service_of(trace: dict, span: dict) -> str:
    return trace["processes"][span["processID"]]["serviceName"]


def read_spans(var_dir: Path, service: str) -> list[dict]:
    path = var_dir / "traces" / f"{service}.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []


def test_one_trace_from_the_api_write_through_both_workers(conn, worker_env, tmp_path):
    var_dir = tmp_path / "var"
    env = {**worker_env, **FREE_METRICS_PORTS,
           "WORDLOOM_VAR_DIR": str(var_dir), "OUTBOX_POLL_INTERVAL_SECONDS": "0.2"}
    api = ApiProcess(env, tmp_path)
    try:
        api.wait_ready()
        lib = api.post("/libraries", {"name": "Traced"})
        book = api.post("/books", {"library_id": lib["id"], "title": "Followed", "summary": "s"})
        block = api.post("/blocks", {"book_id": book["id"], "content": "one trace, end to end"})
        rows = {r[1]: (r[0], r[2]) for r in conn.execute(
            "SELECT id::text, entity_id::text, traceparent FROM search_outbox_events").fetchall()}
        block_event, block_tp = rows[block["id"]]
        book_event, book_tp = rows[book["id"]]
        chronicle_event, chronicle_entity = conn.execute(
            "SELECT o.id::text, o.entity_id::text FROM chronicle_outbox_events o JOIN chronicle_events e"
            " ON e.id = o.entity_id WHERE e.event_type = 'block_created'").fetchone()

        # Workers start after the writes, so one claim takes both search events: one batch, two traces.
        with WorkerProcess("search", env) as search, WorkerProcess("chronicle", env) as chronicle:
            wait_until(lambda: status_counts(conn, "search") == {"done": 2}, 20, message="search rows done")
            wait_until(lambda: set(status_counts(conn, "chronicle")) == {"done"}, 20, message="chronicle rows done")
            for worker in (search, chronicle):
                worker.terminate()
                assert worker.wait(10) == 0

        # -- the search event: API span and outbox.process under one trace id -------------------------
        api_trace_id, api_span_id = block_tp.split("-")[1:3]
        exported = export_jaeger(env, tmp_path / "exports", SEARCH, "--outbox-event-id", block_event)
        assert exported["total"] == 1
        trace = exported["data"][0]
        assert trace["traceID"] == api_trace_id
        api_spans = [s for s in trace["spans"] if service_of(trace, s) == "wordloom-api"]
        process = [s for s in trace["spans"] if s["operationName"] == "outbox.process" and service_of(trace, s) == SEARCH]
        # the same request also produced the chronicle event: its worker span is in this trace too
        assert [service_of(trace, s) for s in trace["spans"] if s["operationName"] == "outbox.process"
                and service_of(trace, s) != SEARCH] == [CHRONICLE]
        server = [s for s in api_spans if s["operationName"] == "POST /api/v1/blocks"]
        # the row carries the request's server span (not one of FastAPI's own child spans)
        assert len(server) == 1 and server[0]["spanID"] == api_span_id and server[0]["references"] == []
        assert tags(server[0])["wordloom.obs_schema"] == "labs-009-v2"
        assert len(process) == 1
        assert process[0]["references"] == [{"refType": "CHILD_OF", "traceID": api_trace_id, "spanID": api_span_id}]
        t = tags(process[0])
        assert t["wordloom.outbox_event_id"] == block_event and t["wordloom.obs_schema"] == "labs-009-v2"
        assert t["wordloom.entity.id"] == block["id"] and t["wordloom.entity.type"] == "block"
        assert t["messaging.system"] == "wordloom_outbox" and t["messaging.operation"] == "process"
        assert t["messaging.destination.name"] == "search_outbox_events" and t["messaging.message.id"] == block_event

        # -- the batch span: claim_batch_id tag, links to every event's stored context --------------
        batches = [s for s in read_spans(var_dir, SEARCH) if s["name"] == "projection.process_batch"
                   and any(l["spanId"] == api_span_id for l in s["links"])]
        assert len(batches) == 1
        batch_id = batches[0]["attributes"]["wordloom.claim_batch_id"]
        exported = export_jaeger(env, tmp_path / "exports-batch", SEARCH, "--claim-batch-id", batch_id)
        batch = next(s for tr in exported["data"] for s in tr["spans"] if s["operationName"] == "projection.process_batch")
        bt = tags(batch)
        assert bt["wordloom.claim_batch_id"] == batch_id and bt["wordloom.obs_schema"] == "labs-009-v2"
        assert bt["messaging.batch.message_count"] == 2 and bt["messaging.operation"] == "process"
        links = {(r["traceID"], r["spanID"]) for r in batch["references"] if r["refType"] == "FOLLOWS_FROM"}
        assert links == {tuple(book_tp.split("-")[1:3]), tuple(block_tp.split("-")[1:3])}
        assert any(s["name"] == "outbox.claim_batch" for s in read_spans(var_dir, SEARCH))

        # -- the chronicle event: wordloom.entity.id, same trace as the API request ------------------
        exported = export_jaeger(env, tmp_path / "exports-chronicle", CHRONICLE,
                                 "--tags-json", json.dumps({"wordloom.entity.id": chronicle_entity}))
        assert exported["total"] == 1 and exported["data"][0]["traceID"] == api_trace_id
        chron = [s for s in exported["data"][0]["spans"] if service_of(exported["data"][0], s) == CHRONICLE]
        assert [s["operationName"] for s in chron] == ["outbox.process"]
        ct = tags(chron[0])
        assert ct["wordloom.outbox_event_id"] == chronicle_event and ct["wordloom.obs_schema"] == "labs-009-v2"
        assert ct["messaging.destination.name"] == "chronicle_outbox_events"

        # -- parent-based sampling: ratio 0 in the worker does not cut a sampled API trace -----------
        claims_before = sum(s["name"] == "outbox.claim_batch" for s in read_spans(var_dir, SEARCH))
        block2 = api.post("/blocks", {"book_id": book["id"], "content": "sampled upstream"})
        event2, tp2 = conn.execute("SELECT id::text, traceparent FROM search_outbox_events WHERE entity_id = %s",
                                   (block2["id"],)).fetchone()
        assert int(tp2.split("-")[3], 16) & 1  # the API sampled it
        with WorkerProcess("search", env, OTEL_TRACES_SAMPLER="traceidratio", OTEL_TRACES_SAMPLER_ARG="0") as worker:
            wait_until(lambda: status_counts(conn, "search") == {"done": 3}, 20, message="third row done")
            time.sleep(0.5)  # a few idle claims happen meanwhile; with ratio 0 none may be recorded
            worker.terminate()
            assert worker.wait(10) == 0
        spans = read_spans(var_dir, SEARCH)
        assert sum(s["name"] == "outbox.claim_batch" for s in spans) == claims_before  # worker roots cut
        continued = [s for s in spans if s["attributes"].get("wordloom.outbox_event_id") == event2]
        assert len(continued) == 1 and continued[0]["traceId"] == tp2.split("-")[1]
        assert continued[0]["parentSpanId"] == tp2.split("-")[2]
    finally:
        assert api.stop() == 0, api.err
    api_lines = [json.loads(line) for line in api.err.splitlines() if line.strip()]
    assert any("starting wordloom-api" in r["message"] for r in api_lines)
