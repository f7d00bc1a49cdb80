"""CASES.md pipeline cases that need the whole loop: C02 (a burst with no later writes) and C16
(a writer whose commit lands after a later writer's)."""
import time

import psycopg
from elasticsearch import Elasticsearch

from tests.support.outbox_helpers import (
    RunnerThread, WorkerProcess, add_chronicle_event, make_book, outbox_rows, settings_for, status_counts, wait_until,
)
from wordloom.outbox.worker import build_runner


def test_C02_5000_pending_rows_all_reach_done_without_further_writes(conn, worker_env, stack, es_index):
    """C02: 5,000 rows committed at once (one statement, so one wake-up) while the worker idles
    with a 30 s poll: it keeps claiming back-to-back until every row is done, well before any poll.
    500 entities x 10 versions keep the search server's data small."""
    n_entities, versions = 500, 10
    conn.execute(
        "INSERT INTO search_index (id, entity_type, entity_id, text, snippet, event_version)"
        " SELECT gen_random_uuid(), 'block', gen_random_uuid(), 'paragraph ' || g, 'paragraph ' || g, %s"
        " FROM generate_series(1, %s) g", (versions, n_entities))
    conn.execute("INSERT INTO entity_versions SELECT entity_type, entity_id, event_version FROM search_index")
    with WorkerProcess("search", worker_env, OUTBOX_POLL_INTERVAL_SECONDS="30") as worker:
        worker.wait_for_log("worker state")  # RUNNING: listening
        started = time.monotonic()
        conn.execute(
            "INSERT INTO search_outbox_events (id, entity_type, entity_id, op, event_version, created_at)"
            " SELECT gen_random_uuid(), s.entity_type, s.entity_id, 'upsert', v,"
            "        now() + make_interval(secs => v * 0.001)"
            " FROM search_index s CROSS JOIN generate_series(1, %s) v", (versions,))
        wait_until(lambda: status_counts(conn, "search") == {"done": n_entities * versions}, 25, 0.1,
                   message="all 5000 rows done")
        elapsed = time.monotonic() - started
        worker.terminate()
        assert worker.wait(10) == 0
    assert elapsed < 25  # far below the 30 s poll: the drain did not wait for a poll
    print(f"C02: 5000 rows done in {elapsed:.2f}s")
    es = Elasticsearch(stack.elastic_url)
    try:
        es.indices.refresh(index=es_index)
        assert es.count(index=es_index)["count"] == n_entities
        sample = conn.execute("SELECT entity_id FROM search_index LIMIT 5").fetchall()
        for (entity_id,) in sample:
            assert es.get(index=es_index, id=f"block:{entity_id}")["_version"] == versions
    finally:
        es.close()


def test_C16_a_commit_delayed_past_a_later_commit_is_not_skipped(db_url, conn):
    """C16: writer A inserts first (earlier created_at) but commits after writer B.  The worker has
    already delivered B and moved on; A's row must still be claimed and delivered."""
    _, book = make_book(conn)
    runner = build_runner(settings_for("chronicle", db_url, OUTBOX_POLL_INTERVAL_SECONDS="30"))
    with RunnerThread(runner):
        wait_until(lambda: runner.health.state == "RUNNING", 10, message="runner running")
        with psycopg.connect(db_url) as writer_a, psycopg.connect(db_url) as writer_b:
            event_a = add_chronicle_event(writer_a, book, "first_writer")  # transaction A stays open
            event_b = add_chronicle_event(writer_b, book, "second_writer")
            writer_b.commit()
            wait_until(lambda: status_counts(conn, "chronicle") == {"done": 1}, 10, message="B delivered")
            writer_a.commit()
        wait_until(lambda: status_counts(conn, "chronicle") == {"done": 2}, 10, message="A delivered")
    rows = {r["entity_id"]: r for r in outbox_rows(conn, "chronicle").values()}
    assert rows[event_a]["created_at"] < rows[event_b]["created_at"]  # A really was "earlier"
    assert rows[event_a]["processed_at"] > rows[event_b]["processed_at"]
    entries = {r[0] for r in conn.execute("SELECT id FROM chronicle_entries")}
    assert entries == {event_a, event_b}


def test_C16_many_interleaved_writers_none_skipped(db_url, conn):
    """C16 at a larger scale: 20 transactions opened in order and committed in reverse order."""
    _, book = make_book(conn)
    runner = build_runner(settings_for("chronicle", db_url, OUTBOX_POLL_INTERVAL_SECONDS="30",
                                       OUTBOX_BATCH_SIZE="3"))
    with RunnerThread(runner):
        wait_until(lambda: runner.health.state == "RUNNING", 10, message="runner running")
        writers = [psycopg.connect(db_url) for _ in range(20)]
        try:
            ids = [add_chronicle_event(w, book, f"w{i}") for i, w in enumerate(writers)]
            for w in reversed(writers):
                w.commit()
                time.sleep(0.01)
        finally:
            for w in writers:
                w.close()
        wait_until(lambda: status_counts(conn, "chronicle") == {"done": 20}, 10, message="all delivered")
    assert {r[0] for r in conn.execute("SELECT id FROM chronicle_entries")} == set(ids)
