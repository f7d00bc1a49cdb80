"""Workers as real processes under real faults: PostgreSQL's backends terminated and the server
itself stopped and restarted (C14), a second SIGTERM (C13), liveness during a long batch,
readiness following Elasticsearch, and the environment guard of both workers.
"""
from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path

import psycopg
import pytest

from tests.support.es_proxy import ESProxy, Slow, is_bulk
from tests.support.outbox_helpers import (
    WorkerProcess, add_event, outbox_rows, put_search_row, status_counts, wait_until,
)
from tests.support.stack import with_database
from wordloom.db.migrate import migrate
from wordloom.devstack.ports import free_port
from wordloom.devstack.postgres import EmbeddedPostgres

REPO_ROOT = Path(__file__).resolve().parents[2]


def get_json(port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def one_event(conn, text: str = "t") -> uuid.UUID:
    e = uuid.uuid4()
    put_search_row(conn, "book", e, text, 1)
    return add_event(conn, "search", "book", e, "upsert", 1)


# -- C14 ------------------------------------------------------------------------------------------
@pytest.fixture
def own_postgres(tmp_path):
    """A PostgreSQL owned by this test (the session's shared one must not be restarted)."""
    pg = EmbeddedPostgres(tmp_path / "pg", free_port(), fast_unsafe=True)
    pg.start()
    with psycopg.connect(pg.url(), autocommit=True) as admin:
        admin.execute('CREATE DATABASE "wl_c14_test"')
    url = with_database(pg.url(), "wl_c14_test")
    migrate(url)
    with psycopg.connect(url, autocommit=True) as c:
        c.execute("INSERT INTO environment_sentinel (id, env) VALUES (1, 'test')")
    yield pg, url
    pg.stop()


def test_C14_backends_terminated_then_postgres_restarted_worker_drains_and_resumes(own_postgres, worker_env):
    """C14: (1) pg_terminate_backend on every connection of the worker: it logs the loss once,
    reconnects and delivers again; (2) the PostgreSQL server is stopped: the process stays alive,
    /healthz stays 200 while /readyz answers 503 with state DRAINING; (3) the server is started
    again on the same port: /readyz returns to 200 by itself and new rows are delivered."""
    pg, url = own_postgres
    env = dict(worker_env, DATABASE_URL=url, OUTBOX_POLL_INTERVAL_SECONDS="0.1",
               OUTBOX_DB_PING_INTERVAL_SECONDS="0.2", OUTBOX_DB_PING_FAILS_BEFORE_DRAINING="1")
    with WorkerProcess("search", env) as worker:
        port = worker.health_port()
        with psycopg.connect(url, autocommit=True) as conn:
            first = one_event(conn)
            wait_until(lambda: outbox_rows(conn, "search")[first]["status"] == "done", 15, message="first row")
            wait_until(lambda: get_json(port, "/readyz")[0] == 200, 10, message="ready")
            killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                                  " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
            assert killed >= 2
            worker.wait_for_log("database error; draining and reconnecting", 10)
            worker.wait_for_log("database connection restored", 15)
            second = one_event(conn)
            wait_until(lambda: outbox_rows(conn, "search")[second]["status"] == "done", 15, message="after kill")

        pg.stop()
        assert not pg.alive()
        code, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(get_json(port, "/readyz")), 10,
                                message="/readyz 503 while PostgreSQL is down")
        assert body["state"] == "DRAINING" and body["ok"] is False
        for _ in range(10):  # down for a while: alive, never ready
            assert get_json(port, "/healthz")[0] == 200
            assert get_json(port, "/readyz")[0] == 503
            assert worker.proc.poll() is None
            time.sleep(0.2)

        pg.start()
        code, body = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(get_json(port, "/readyz")), 20,
                                message="/readyz 200 after the restart")
        assert body["state"] == "RUNNING" and body["db"]["ok"] is True
        with psycopg.connect(url, autocommit=True) as conn:
            third = one_event(conn)
            wait_until(lambda: outbox_rows(conn, "search")[third]["status"] == "done", 15, message="after restart")
            assert status_counts(conn, "search") == {"done": 3}
        worker.terminate()
        assert worker.wait(10) == 0
    assert not any("Traceback" in line for line in worker.lines)
    losses = [r for r in worker.logs() if r.get("message") == "database error; draining and reconnecting"]
    assert len(losses) == 2  # once per outage, not once per failed reconnect


# -- C13 ------------------------------------------------------------------------------------------
def test_C13_a_second_sigterm_releases_at_once_and_exits_0(conn, worker_env):
    """C13, the impatient operator: the batch in flight would take 60 s and the grace is 25 s; a
    second SIGTERM makes the worker hand its rows back and exit 0 at once."""
    ids = [one_event(conn) for _ in range(3)]
    with WorkerProcess("search", worker_env, OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS="60",
                       OUTBOX_SHUTDOWN_GRACE_SECONDS="25") as worker:
        wait_until(lambda: status_counts(conn, "search").get("processing") == 3, 15, message="claim")
        worker.terminate()
        time.sleep(0.5)
        assert worker.proc.poll() is None  # still draining: the grace is long
        sent = time.monotonic()
        worker.terminate()
        assert worker.wait(10) == 0
        elapsed = time.monotonic() - sent
    assert elapsed < 2.0, elapsed
    rows = outbox_rows(conn, "search")
    assert all((rows[i]["status"], rows[i]["owner"], rows[i]["attempts"]) == ("pending", None, 0) for i in ids)


# -- health -----------------------------------------------------------------------------------------
def test_healthz_stays_green_during_a_batch_longer_than_the_silence_limit(conn, worker_env, stack):
    """Liveness is the loop's heartbeat, not progress: the search server answers the _bulk 3 s late
    (through the proxy) while OUTBOX_HEALTH_MAX_SILENCE_SECONDS=1 and the lease is 30 s (renewal
    only every 10 s).  /healthz answers 200 throughout, and the row is then done."""
    with ESProxy(stack.elastic_url) as proxy:
        proxy.add(Slow(after=3.0), when=is_bulk, times=1)
        event = one_event(conn)
        with WorkerProcess("search", worker_env, ELASTIC_URL=proxy.url, OUTBOX_HEALTH_MAX_SILENCE_SECONDS="1",
                           OUTBOX_LEASE_SECONDS="30") as worker:
            port = worker.health_port()
            wait_until(lambda: status_counts(conn, "search").get("processing") == 1, 15, message="claim")
            codes = []
            while outbox_rows(conn, "search")[event]["status"] != "done":
                codes.append(get_json(port, "/healthz")[0])
                assert len(codes) < 200, "batch never finished"
                time.sleep(0.1)
            assert len(codes) >= 20 and set(codes) == {200}, codes
            worker.terminate()
            assert worker.wait(10) == 0


def test_readyz_follows_elasticsearch_when_required(conn, worker_env, stack):
    """OUTBOX_REQUIRE_ES_READY=1: /readyz is 503 ("elasticsearch unreachable") while the search
    server's port is closed, and 200 again when it reopens; /healthz stays 200."""
    with ESProxy(stack.elastic_url) as proxy:
        with WorkerProcess("search", worker_env, ELASTIC_URL=proxy.url, OUTBOX_REQUIRE_ES_READY="1",
                           OUTBOX_DB_PING_INTERVAL_SECONDS="0.1") as worker:
            port = worker.health_port()
            wait_until(lambda: get_json(port, "/readyz")[0] == 200, 10, message="ready")
            proxy.stop_listening()
            code, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(get_json(port, "/readyz")), 10,
                                    message="not ready without Elasticsearch")
            assert body["reason"] == "elasticsearch unreachable" and body["es"]["ok"] is False
            assert body["db"]["ok"] is True and get_json(port, "/healthz")[0] == 200
            proxy.start_listening()
            wait_until(lambda: get_json(port, "/readyz")[0] == 200, 10, message="ready again")
            worker.terminate()
            assert worker.wait(10) == 0


# -- environment guard ---------------------------------------------------------------------------------
@pytest.mark.parametrize("projection", ["search", "chronicle"])
def test_a_dot_env_test_worker_pointed_at_the_dev_database_refuses_with_one_line(stack, worker_env, tmp_path,
                                                                                 projection):
    """CONTRACT §1 environment_sentinel, for both workers: an env file like .env.test
    (WORDLOOM_ENV=test) whose DATABASE_URL names a database marked dev refuses to start with exit
    2 and one clear line; nothing is claimed."""
    dev_url = stack.new_database("dev")
    try:
        with psycopg.connect(dev_url, autocommit=True) as dev:
            put_search_row(dev, "book", uuid.uuid4(), "t", 1)
            add_event(dev, "search", "book", uuid.uuid4(), "upsert", 1)
        lines = [line for line in (REPO_ROOT / ".env.test").read_text().splitlines()
                 if line.strip() and not line.startswith("#") and not line.startswith("DATABASE_URL=")]
        env_file = tmp_path / ".env.test"
        env_file.write_text("\n".join(lines + [f"DATABASE_URL={dev_url}"]) + "\n")
        env = {k: v for k, v in worker_env.items() if k not in ("DATABASE_URL", "WORDLOOM_ENV", "ELASTIC_URL",
                                                                "ELASTIC_INDEX", "OUTBOX_METRICS_PORT")}
        proc = subprocess.run([sys.executable, "-m", "wordloom.cli", "ops", f"{projection}-worker",
                               "--env-file", str(env_file)], env=env, cwd=str(REPO_ROOT),
                              capture_output=True, text=True, timeout=30)
        assert proc.returncode == 2, proc.stderr
        refusals = [line for line in proc.stderr.splitlines() if "refusing to start" in line]
        assert len(refusals) == 1, proc.stderr
        assert "WORDLOOM_ENV=test" in refusals[0] and "marked dev" in refusals[0]
        assert "Traceback" not in proc.stderr
        with psycopg.connect(dev_url, autocommit=True) as dev:
            assert status_counts(dev, "search") == {"pending": 1}
    finally:
        stack.drop_database(dev_url)


def test_startup_line_says_how_the_search_worker_talks_to_elasticsearch_and_that_concurrency_is_unused(worker_env):
    """OUTBOX_USE_ES_BULK and OUTBOX_CONCURRENCY are v3 names: the first is honoured (unset = bulk,
    0 = per-event), the second accepted and, with a value above 1, named in one warning saying why
    it is not used and what to do instead."""
    with WorkerProcess("search", worker_env, OUTBOX_USE_ES_BULK="0", OUTBOX_CONCURRENCY="4",
                       OUTBOX_RUN_SECONDS="0.3") as worker:
        assert worker.wait(15) == 0
    start = next(r for r in worker.logs() if r.get("message") == "worker starting")
    assert start["es_mode"] == "per-event" and start["concurrency"] == 1
    warnings = [r for r in worker.logs() if "OUTBOX_CONCURRENCY is accepted but not used" in r.get("message", "")]
    assert len(warnings) == 1 and warnings[0]["outbox_concurrency"] == 4
