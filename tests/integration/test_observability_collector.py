"""Collector down (issue 6 build 1, drill collector_down): with OTEL_EXPORTER_OTLP_ENDPOINT at a
closed loopback port, or at a server that accepts and never answers, a real search worker drains
as fast as with local span files, crashes nothing, and exits within the grace time on SIGTERM."""
from __future__ import annotations

import json
import socket
import threading
import time
import uuid

import psycopg
import pytest

from tests.support.outbox_helpers import WorkerProcess, add_event, put_search_row, status_counts, wait_until
from wordloom.devstack.ports import free_port

pytestmark = pytest.mark.integration
# An env file another in-process test loaded into os.environ may carry per-projection ports (they win
# over worker_env's OUTBOX_METRICS_PORT=0): pin them to "any free port".
FREE_METRICS_PORTS = {"SEARCH_OUTBOX_METRICS_PORT": "0", "CHRONICLE_OUTBOX_METRICS_PORT": "0"}
N_EVENTS = 400
GRACE_SECONDS = 5


class Blackhole:
    """Accepts TCP connections and never answers (a hung collector or a dropped network path)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(128)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            self.conns.append(conn)

    def close(self):
        for c in self.conns:
            c.close()
        self.sock.close()


def drain_once(conn, env: dict, label: str, **extra) -> dict:
    """Insert N pending events, run a worker until all are done, SIGTERM it; return timings."""
    with conn.transaction(), conn.pipeline():
        for _ in range(N_EVENTS):
            e = uuid.uuid4()
            put_search_row(conn, "book", e, f"collector drill {label}", 1)
            add_event(conn, "search", "book", e, "upsert", 1)
    with WorkerProcess("search", env, OUTBOX_SHUTDOWN_GRACE_SECONDS=GRACE_SECONDS, **extra) as worker:
        worker.wait_for_log("health server listening", timeout=20)
        started = time.monotonic()
        wait_until(lambda: set(status_counts(conn, "search")) == {"done"}, 60, interval=0.02,
                   message=f"{label}: all rows done")
        drain = time.monotonic() - started
        stop_at = time.monotonic()
        worker.terminate()
        code = worker.wait(GRACE_SECONDS + 5)
        exit_seconds = time.monotonic() - stop_at
    records = []
    for line in worker.lines:
        records.append(json.loads(line))  # every line JSON: nothing printed raw (no bare traceback)
    return {"label": label, "drain": drain, "exit": exit_seconds, "code": code, "records": records}


def test_an_unreachable_or_hung_collector_never_slows_or_blocks_the_worker(db_url, worker_env, tmp_path):
    hole = Blackhole()
    closed_port = free_port()  # bound and released: nothing listens there
    env = {**worker_env, **FREE_METRICS_PORTS,
           "WORDLOOM_VAR_DIR": str(tmp_path / "var"), "OUTBOX_POLL_INTERVAL_SECONDS": "0.1"}
    try:
        with psycopg.connect(db_url, autocommit=True) as conn:
            runs = [
                drain_once(conn, env, "local files"),
                drain_once(conn, env, "blackhole", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{hole.port}"),
                drain_once(conn, env, "closed port", OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{closed_port}"),
            ]
    finally:
        hole.close()
    local = runs[0]
    summary = {r["label"]: (round(r["drain"], 2), round(r["exit"], 2), r["code"]) for r in runs}
    print("drain seconds, exit seconds, exit code:", summary)
    for run in runs:
        assert run["code"] == 0, summary
        assert run["exit"] < GRACE_SECONDS, summary  # the span queue never holds up the exit
        levels = {r.get("level") for r in run["records"]}
        assert "CRITICAL" not in levels and not any(r.get("exc_info") for r in run["records"]), run["label"]
        assert any(r.get("message") == "worker stopped" for r in run["records"])
        # Not materially slower: export happens on a side thread with a bounded queue.  The bound
        # is loose on purpose (CI noise); a blocking exporter would take 2 s per span batch.
        assert run["drain"] <= local["drain"] * 3 + 1.5, summary
    assert hole.accepted >= 1, "the worker did try the hung collector (else the test proves nothing)"
    spans = (tmp_path / "var" / "traces" / "wordloom-search-outbox-worker.jsonl").read_text().splitlines()
    assert sum('"outbox.process"' in s for s in spans) == N_EVENTS  # local run only: OTLP replaces files
