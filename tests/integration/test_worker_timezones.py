"""C10: a worker with TZ=Asia/Shanghai (UTC+8) against a database whose session time zone is
America/New_York (UTC-5/-4): versions, retry times and lag figures are what they are under UTC.

Every time the engine uses is a timestamptz computed by the database (now(), clock_timestamp(),
make_interval) or a Unix epoch; versions are per-entity counters, not clocks.  The worker also pins
its own sessions to UTC, so the database default below reaches only sessions that do not -- the
second test runs the store's statements on exactly such a session, to show the SQL does not
depend on the pin.
"""
from __future__ import annotations

import time
import urllib.request
import uuid
from urllib.parse import urlsplit

import psycopg
import pytest
from elasticsearch import Elasticsearch

from tests.support.convergence import assert_es_matches_search_index, outbox_settled
from tests.support.es_proxy import Answer, ESProxy, is_bulk
from tests.support.outbox_helpers import WorkerProcess, add_event, wait_until
from wordloom import domain
from wordloom.outbox.store import FailedRow, OutboxStore

SKEWED_DB_ZONE = "America/New_York"
SKEWED_WORKER_TZ = "Asia/Shanghai"


@pytest.fixture
def skewed_db(db_url):
    name = urlsplit(db_url).path.lstrip("/")
    with psycopg.connect(db_url, autocommit=True) as c:
        c.execute(f"ALTER DATABASE \"{name}\" SET timezone = '{SKEWED_DB_ZONE}'")
    with psycopg.connect(db_url, autocommit=True) as c:  # a new session picks the default up
        assert c.execute("SHOW timezone").fetchone()[0] == SKEWED_DB_ZONE
        yield c


def metric(port: int, name: str) -> float:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            if line.startswith(name + "{") and 'projection="search"' in line:
                return float(line.rsplit(" ", 1)[1])
    raise AssertionError(f"{name} not exported")


def test_C10_worker_in_shanghai_database_in_new_york_same_versions_retry_times_and_lag(skewed_db, worker_env,
                                                                                      stack, es_index):
    conn = skewed_db
    library = domain.create_library(conn, "tz")
    book, blocks = domain.create_book_with_blocks(conn, library["id"], "Zones", ["one", "two", "three"])
    domain.update_block(conn, blocks[0]["id"], content="one, edited")
    domain.soft_delete_block(conn, blocks[1]["id"])
    written_at = time.time()
    es = Elasticsearch(stack.elastic_url)
    with ESProxy(stack.elastic_url) as proxy:
        proxy.add(Answer(503), when=is_bulk)  # every delivery fails until cleared: rows wait for retries
        env = dict(worker_env, TZ=SKEWED_WORKER_TZ, ELASTIC_URL=proxy.url, OUTBOX_BASE_BACKOFF_SECONDS="1",
                   OUTBOX_MAX_BACKOFF_SECONDS="2", OUTBOX_DB_PING_INTERVAL_SECONDS="0.1",
                   OUTBOX_POLL_INTERVAL_SECONDS="0.1")
        with WorkerProcess("search", env) as worker:
            port = worker.health_port()
            wait_until(lambda: conn.execute("SELECT bool_and(attempts >= 1 AND status = 'pending')"
                                            " FROM search_outbox_events").fetchone()[0], 15,
                       message="every row retried at least once")
            rows = conn.execute(
                "SELECT attempts, extract(epoch FROM next_retry_at - updated_at)::float8,"
                "       extract(epoch FROM next_retry_at - now())::float8, error_reason"
                " FROM search_outbox_events WHERE status = 'pending'").fetchall()
            for attempts, delay, due_in, reason in rows:
                assert reason == "es_5xx"
                assert -0.01 <= delay <= min(2.0, 1.0 * 2 ** (attempts - 1)) + 0.01, (attempts, delay)
                assert due_in <= 2.01  # not 12 or 13 hours away
            # Lag: the age of the oldest row owed, as seen by the worker (seconds, not hours).
            age = wait_until(lambda: metric(port, "outbox_oldest_age_seconds") or None, 5, message="age gauge")
            assert 0 < age <= time.time() - written_at + 5, age
            assert metric(port, "outbox_lag_events") == conn.execute(
                "SELECT count(*) FROM search_outbox_events").fetchone()[0]
            proxy.clear()
            wait_until(lambda: outbox_settled(conn), 15, message="delivered once the server answers")
            last_success = wait_until(lambda: metric(port, "outbox_last_success_timestamp_seconds") or None, 5)
            assert abs(last_success - time.time()) < 10  # a Unix epoch, whatever TZ says
            wait_until(lambda: metric(port, "outbox_lag_events") == 0, 5, message="lag back to 0")
            assert metric(port, "outbox_oldest_age_seconds") == 0
            worker.terminate()
            assert worker.wait(10) == 0
        assert all(r.get("ts", "Z").endswith("Z") for r in worker.logs())  # log times are UTC
    # Versions are counters: exactly those a UTC run gives.
    versions = dict(conn.execute("SELECT entity_id, event_version FROM search_index").fetchall())
    assert versions == {book["id"]: 1, blocks[0]["id"]: 2, blocks[2]["id"]: 1}
    deleted = conn.execute("SELECT event_version FROM search_outbox_events WHERE op = 'delete'").fetchall()
    assert deleted == [(2,)]
    try:
        assert assert_es_matches_search_index(conn, es, es_index, "C10") == 3
    finally:
        es.close()


def test_C10_store_statements_on_a_new_york_session_compute_the_same_times(skewed_db):
    """The store's SQL on a session left in America/New_York (no UTC pin): a 10 s retry is due in
    10 s, a lease of 30 s ends in 30 s, and the backlog age is seconds old."""
    conn = skewed_db
    store = OutboxStore("search")
    event_id = add_event(conn, "search", "book", uuid.uuid4(), "upsert", 1)
    conn.execute("UPDATE search_outbox_events SET created_at = now() - interval '3 seconds'")
    stats = store.backlog_stats(conn)
    assert 3.0 <= stats.oldest_age_seconds < 10
    [event] = store.claim_batch(conn, "tz-worker", 10, 30)
    lease_in = conn.execute("SELECT extract(epoch FROM lease_until - now())::float8 FROM search_outbox_events"
                            " WHERE id = %s", (event_id,)).fetchone()[0]
    assert 29 < lease_in <= 30.01
    assert store.schedule_retry(conn, "tz-worker", [FailedRow(event.id, "es_429", "busy", 10.0)]) == {event_id}
    due_in = conn.execute("SELECT extract(epoch FROM next_retry_at - now())::float8 FROM search_outbox_events"
                          " WHERE id = %s", (event_id,)).fetchone()[0]
    assert 9.5 < due_in <= 10.01
    assert store.claim_batch(conn, "tz-worker", 10, 30) == []  # not due yet, in any zone
