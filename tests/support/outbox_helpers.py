"""Helpers for outbox tests: rows written by plain SQL, workers run in-process or as real
subprocesses, and polling for conditions (never fixed sleeps where a condition can be awaited)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from contextlib import contextmanager
from pathlib import Path

from psycopg.rows import dict_row

from wordloom.outbox.store import OutboxStore
from wordloom.settings import worker_settings

REPO_ROOT = Path(__file__).resolve().parents[2]


# -- in-process runners -------------------------------------------------------------------------
@contextmanager
def opened_runners():
    """Yields open(settings, **build_kwargs) -> an opened in-process Runner; closes every runner it
    opened on the way out (the body of each test module's `make_runner` fixture)."""
    from wordloom.outbox.worker import build_runner

    runners = []

    def open_runner(settings, **build_kwargs):
        runner = build_runner(settings, **build_kwargs)
        runner.open()
        runners.append(runner)
        return runner

    try:
        yield open_runner
    finally:
        for runner in runners:
            runner.close()


# -- settings ------------------------------------------------------------------------------------
def settings_for(projection: str, db_url: str, es_url: str | None = None, index: str | None = None, **env):
    """WorkerSettings for an in-process runner; keyword args are OUTBOX_* style env overrides."""
    environ = {"DATABASE_URL": db_url, "OUTBOX_WORKER_ID": f"test-{projection}-{uuid.uuid4().hex[:8]}",
               "OUTBOX_METRICS_PORT": "0", "OUTBOX_POLL_INTERVAL_SECONDS": "0.2",
               "OUTBOX_BASE_BACKOFF_SECONDS": "0", "OUTBOX_RECLAIM_INTERVAL_SECONDS": "0.2"}
    if es_url:
        environ["ELASTIC_URL"] = es_url
    if index:
        environ["ELASTIC_INDEX"] = index
    environ.update({k: str(v) for k, v in env.items()})
    return worker_settings(projection, environ)


# -- rows ----------------------------------------------------------------------------------------
def put_search_row(conn, entity_type: str, entity_id, text: str, version: int, library_id=None) -> None:
    """Write the search_index row and the entity's version counter as the write path would."""
    conn.execute(
        "INSERT INTO search_index (id, entity_type, entity_id, library_id, text, snippet, event_version)"
        " VALUES (gen_random_uuid(), %s, %s, %s, %s, left(%s, 200), %s)"
        " ON CONFLICT (entity_type, entity_id) DO UPDATE SET text = EXCLUDED.text, snippet = EXCLUDED.snippet,"
        "  library_id = EXCLUDED.library_id, event_version = EXCLUDED.event_version, updated_at = now()"
        " WHERE search_index.event_version <= EXCLUDED.event_version",
        (entity_type, entity_id, library_id, text, text, version))
    bump_version(conn, entity_type, entity_id, version)


def remove_search_row(conn, entity_type: str, entity_id, version: int) -> None:
    conn.execute("DELETE FROM search_index WHERE entity_type = %s AND entity_id = %s", (entity_type, entity_id))
    bump_version(conn, entity_type, entity_id, version)


def bump_version(conn, entity_type: str, entity_id, version: int) -> None:
    conn.execute("INSERT INTO entity_versions (entity_type, entity_id, version) VALUES (%s, %s, %s)"
                 " ON CONFLICT (entity_type, entity_id) DO UPDATE"
                 " SET version = greatest(entity_versions.version, EXCLUDED.version)",
                 (entity_type, entity_id, version))


def add_event(conn, projection: str, entity_type: str, entity_id, op: str, version: int) -> uuid.UUID:
    return OutboxStore(projection).insert_event(conn, entity_type, entity_id, op, version)


def outbox_rows(conn, projection: str) -> dict:
    table = OutboxStore(projection).table
    with conn.cursor(row_factory=dict_row) as cur:
        cur.execute(f"SELECT * FROM {table} ORDER BY created_at, id")
        return {row["id"]: row for row in cur.fetchall()}


def status_counts(conn, projection: str) -> dict:
    table = OutboxStore(projection).table
    return dict(conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status").fetchall())


def make_book(conn, title: str = "A book") -> tuple[uuid.UUID, uuid.UUID]:
    library_id, book_id = uuid.uuid4(), uuid.uuid4()
    conn.execute("INSERT INTO libraries (id, name) VALUES (%s, 'lib')", (library_id,))
    conn.execute("INSERT INTO books (id, library_id, title) VALUES (%s, %s, %s)", (book_id, library_id, title))
    return library_id, book_id


def add_block(conn, book_id, content: str = "para") -> uuid.UUID:
    block_id = uuid.uuid4()
    conn.execute("INSERT INTO blocks (id, book_id, content) VALUES (%s, %s, %s)", (block_id, book_id, content))
    return block_id


def add_chronicle_event(conn, book_id, event_type: str = "book_created", block_id=None, payload=None) -> uuid.UUID:
    event_id = uuid.uuid4()
    conn.execute("INSERT INTO chronicle_events (id, event_type, book_id, block_id, payload)"
                 " VALUES (%s, %s, %s, %s, %s::jsonb)",
                 (event_id, event_type, book_id, block_id, json.dumps(payload or {})))
    add_event(conn, "chronicle", "chronicle_event", event_id, "upsert", 1)
    return event_id


def chronicle_snapshot(conn) -> list[tuple]:
    """Every chronicle_entries row rendered as text, column by column (byte-level comparison)."""
    return conn.execute("SELECT id::text, event_type, book_id::text, block_id::text, actor_id::text,"
                        " occurred_at::text, created_at::text, payload::text, summary,"
                        " projection_version::text, updated_at::text FROM chronicle_entries ORDER BY id").fetchall()


# -- Elasticsearch ---------------------------------------------------------------------------------
def es_doc(es, index: str, doc_id: str):
    """(version, source) of a document, or None when absent."""
    resp = es.options(ignore_status=404).get(index=index, id=doc_id)
    if not resp.body.get("found"):
        return None
    return resp["_version"], resp["_source"]


# -- waiting ------------------------------------------------------------------------------------
def wait_until(predicate, timeout: float = 10.0, interval: float = 0.05, message: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {message}")
        time.sleep(interval)


def drain(runner, max_batches: int = 1000) -> list:
    """Step an opened in-process runner until a claim comes back empty."""
    reports = []
    for _ in range(max_batches):
        report = runner.run_once()
        if not report.claimed:
            return reports
        reports.append(report)
    raise AssertionError("runner did not drain")


class RunnerThread:
    """An in-process runner looping in a thread (real LISTEN/NOTIFY, real poll)."""

    def __init__(self, runner):
        self.runner = runner
        self.result = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        self.result = self.runner.run()

    def __enter__(self):
        self.thread.start()
        return self.runner

    def __exit__(self, *exc):
        self.runner.stop()
        self.thread.join(10)
        assert not self.thread.is_alive(), "runner thread did not stop"


# -- worker subprocesses ---------------------------------------------------------------------------
class WorkerProcess:
    """`python -m wordloom.cli ops <projection>-worker` as a real process; stderr (JSON logs)
    collected line by line."""

    def __init__(self, projection: str, env: dict, **extra_env):
        self.projection = projection
        self.env = {**env, **{k: str(v) for k, v in extra_env.items()}}
        # An explicit, empty env file: nothing from the repo's .env.* files leaks into a test.
        fd, self.env_file = tempfile.mkstemp(prefix="wordloom-test-", suffix=".env")
        os.close(fd)
        self.proc: subprocess.Popen | None = None
        self.lines: list[str] = []
        self._reader: threading.Thread | None = None

    def start(self) -> "WorkerProcess":
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "wordloom.cli", "ops", f"{self.projection}-worker", "--env-file", self.env_file],
            env=self.env, cwd=str(REPO_ROOT), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        return self

    def _read(self):
        for line in self.proc.stderr:
            self.lines.append(line.rstrip("\n"))

    def logs(self) -> list[dict]:
        out = []
        for line in list(self.lines):
            try:
                out.append(json.loads(line))
            except ValueError:
                out.append({"message": line})
        return out

    def wait_for_log(self, message: str, timeout: float = 15.0) -> dict:
        def find():
            for record in self.logs():
                if record.get("message") == message:
                    return record
            if self.proc.poll() is not None:
                raise AssertionError(f"worker exited {self.proc.returncode} before {message!r}:\n" + "\n".join(self.lines[-30:]))
            return None
        return wait_until(find, timeout, message=f"log line {message!r}")

    def health_port(self) -> int:
        return self.wait_for_log("health server listening")["health_port"]

    def terminate(self, sig=None):
        import signal as _signal

        self.proc.send_signal(sig or _signal.SIGTERM)

    def wait(self, timeout: float = 15.0) -> int:
        code = self.proc.wait(timeout)
        if self._reader:
            self._reader.join(2)
        return code

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        try:
            os.unlink(self.env_file)
        except OSError:
            pass

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
