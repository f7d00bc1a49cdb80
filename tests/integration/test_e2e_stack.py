"""The main job, end to end, exactly as the README has a person do it.

`honcho start -f Procfile.test` brings up the embedded services, the API and both workers; the
Python docs are imported through the real write path; within 10 s Elasticsearch holds exactly one
document per search_index row at the same event_version; a search for "context manager" through
the API finds a block of the `with` or `context-managers` topic among its first three hits; and
SIGTERM to honcho brings the whole tree down inside 6 s without honcho having to SIGKILL (C18).

It uses the fixed ports of .env.test (PostgreSQL 5435, search 19200, API 30011), with its data in
the session's temporary var dir, so it is skipped when something else already holds those ports.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import psutil
import psycopg
import pytest
from elasticsearch import Elasticsearch

from wordloom.devstack.ports import port_open

REPO = Path(__file__).resolve().parents[2]
API = "http://127.0.0.1:30011"
DB = "postgresql://wordloom:wordloom@127.0.0.1:5435/wordloom_test"
ES = "http://127.0.0.1:19200"
INDEX = "wordloom-test-search-index"

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def _get(url: str, timeout: float = 5.0):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def _wait(predicate, timeout: float, what: str, proc=None, log=None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        if proc is not None and proc.poll() is not None:
            break
        time.sleep(0.25)
    tail = Path(log).read_text(errors="replace")[-4000:] if log else ""
    raise AssertionError(f"timed out waiting for {what}\n--- honcho output ---\n{tail}")


@pytest.fixture
def honcho_stack(tmp_path):
    busy = [p for p in (5435, 19200, 30011, 9109, 9111) if port_open("127.0.0.1", p)]
    if busy:
        pytest.skip(f"ports {busy} are in use (a dev/test stack is running); this test needs them free")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OUTBOX_", "DATABASE_", "ELASTIC_", "API_"))}
    env["PYTHONUNBUFFERED"] = "1"
    log = tmp_path / "honcho.log"
    honcho = Path(sys.executable).with_name("honcho")
    with open(log, "wb") as out:
        proc = subprocess.Popen([str(honcho), "start", "-f", "Procfile.test"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait(lambda: _get(f"{API}/api/v1/health")["ok"], 90, "the API to report healthy", proc, log)
        yield proc, log, env
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def test_fresh_stack_imports_python_docs_and_finds_context_managers(honcho_stack):
    proc, log, env = honcho_stack
    started = time.monotonic()
    out = subprocess.run([sys.executable, "backend/scripts/cli.py", "dev", "import", "--python-docs",
                          "--env-file", ".env.test"], cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert "Imported" in out.stdout
    imported_at = time.monotonic()

    es = Elasticsearch(ES)

    def converged() -> bool:
        with psycopg.connect(DB) as conn:
            rows = dict(conn.execute("SELECT entity_type || ':' || entity_id, event_version FROM search_index"))
        es.indices.refresh(index=INDEX)
        docs = {}
        for hit in _scan(es):
            docs[hit["_id"]] = hit["_source"]["event_version"]
        return len(rows) > 0 and docs == rows

    _wait(converged, 10, "Elasticsearch to hold exactly the search_index rows at their versions", proc, log)
    converge_s = time.monotonic() - imported_at
    print(f"import {imported_at - started:.1f}s, converged {converge_s:.1f}s after import")

    hits = _get(f"{API}/api/v1/search?q=context+manager")["hits"][:3]
    assert hits, "no hits"
    titles = [h["book_title"] for h in hits]
    assert {"with", "context-managers"} & set(titles), titles
    assert any(h["entity_type"] == "block" and h["book_title"] in ("with", "context-managers") for h in hits)

    # The chronicle worker projected every event as well.
    with psycopg.connect(DB) as conn:
        events, entries = conn.execute(
            "SELECT (SELECT count(*) FROM chronicle_events), (SELECT count(*) FROM chronicle_entries)").fetchone()
    assert events > 0 and entries == events

    # C18 on the real stack: SIGTERM to honcho, everything gone within 6 s, no SIGKILL needed.
    tree = [proc.pid] + [c.pid for c in psutil.Process(proc.pid).children(recursive=True)]
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(timeout=10)
    assert time.monotonic() - t0 < 6
    time.sleep(0.5)
    survivors = [p for p in tree if psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE]
    assert survivors == [], survivors
    text = log.read_text(errors="replace")
    assert "SIGKILL" not in text
    # every process drained and exited 0 itself (not killed by the signal: rc=-15)
    for name in ("services", "api", "worker_search", "worker_chronicle"):
        assert f"{name}.1 stopped (rc=0)" in text, text[-3000:]


def _scan(es: Elasticsearch):
    resp = es.search(index=INDEX, query={"match_all": {}}, size=10000, source=["event_version"])
    return resp["hits"]["hits"]
