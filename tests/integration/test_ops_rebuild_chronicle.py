"""Rebuild of chronicle_entries from chronicle_events, against the real database."""
from __future__ import annotations

import signal
import time
import uuid

import psycopg

from tests.support.ops_fixtures import (add_block, add_book, add_chronicle_event, add_library, add_outbox_rows,
                                        run_cli, start_cli)

REBUILD = ("ops", "rebuild-chronicle")
OUTBOX_ROW = ("SELECT id, status, attempts, error, error_reason, replay_count, last_replayed_at, last_replayed_by,"
              " last_replayed_reason, next_retry_at, updated_at FROM chronicle_outbox_events WHERE id = ANY(%s) ORDER BY id")


def test_truncate_emit_outbox_keeps_pending_and_failed_rows_and_their_audit(db_url, worker_env):
    with psycopg.connect(db_url, autocommit=True) as conn:
        lib = add_library(conn)
        book = add_book(conn, lib, "Dune")
        block = add_block(conn, book, "spice")
        events = [add_chronicle_event(conn, book, "book_created"), add_chronicle_event(conn, book, "block_added", block)]
        newer = add_chronicle_event(conn, book, "book_renamed")
        # an entry written by a newer projection version must survive a rebuild at version 1
        conn.execute("INSERT INTO chronicle_entries (id, event_type, book_id, occurred_at, created_at, summary,"
                     " projection_version) VALUES (%s, 'book_renamed', %s, now(), now(), 'kept v5', 5)", (newer, book))
        orphan = uuid.uuid4()
        conn.execute("INSERT INTO chronicle_entries (id, event_type, book_id, occurred_at, created_at, summary)"
                     " VALUES (%s, 'book_created', %s, now(), now(), 'orphan')", (orphan, book))
        failed = add_outbox_rows(conn, "chronicle", 1, status="failed", error_reason="deterministic_exception",
                                 entity_type="chronicle_event")
        conn.execute("UPDATE chronicle_outbox_events SET replay_count = 2, last_replayed_at = now() - interval '1 day',"
                     " last_replayed_by = 'carol', last_replayed_reason = 'earlier drill' WHERE id = %s", (failed[0],))
        pending = add_outbox_rows(conn, "chronicle", 1, status="pending", entity_type="chronicle_event")
        before = conn.execute(OUTBOX_ROW, (failed + pending,)).fetchall()

        r = run_cli(worker_env, *REBUILD, "--truncate", "--emit-outbox", "--batch-size", "2")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == "Rebuild OK: events=3 truncate=True emit_outbox=True"

        assert conn.execute(OUTBOX_ROW, (failed + pending,)).fetchall() == before
        emitted = conn.execute("SELECT entity_id FROM chronicle_outbox_events WHERE entity_type = 'chronicle_event'"
                               " AND id <> ALL(%s)", (failed + pending,)).fetchall()
        assert sorted(r[0] for r in emitted) == sorted(events + [newer])

        entries = {r[0]: r[1:] for r in conn.execute(
            "SELECT id, summary, projection_version FROM chronicle_entries").fetchall()}
        assert entries == {
            events[0]: (f"book_created (book={book})", 1),
            events[1]: (f"block_added (book={book}, block={block})", 1),
            newer: ("kept v5", 5),
        }
        assert conn.execute("SELECT last_success FROM projection_status"
                            " WHERE projection = 'chronicle_events_to_entries'").fetchone() == (True,)


def test_projection_version_comes_from_the_environment(db_url, worker_env):
    with psycopg.connect(db_url, autocommit=True) as conn:
        book = add_book(conn, add_library(conn), "Dune")
        event = add_chronicle_event(conn, book)
        r = run_cli(worker_env, *REBUILD, extra_env={"CHRONICLE_PROJECTION_VERSION": "3"})
        assert r.returncode == 0, r.stderr
        assert "projection_version=3" in r.stdout
        assert conn.execute("SELECT projection_version FROM chronicle_entries WHERE id = %s", (event,)).fetchone() == (3,)
        r = run_cli(worker_env, *REBUILD, "--limit", "1", extra_env={"OUTBOX_PROJECTION_VERSION": "2"})
        assert "Rebuild OK: events=1 truncate=False emit_outbox=False" in r.stdout
        assert conn.execute("SELECT projection_version FROM chronicle_entries WHERE id = %s", (event,)).fetchone() == (3,)


def test_killed_chronicle_rebuild_resumes(db_url, worker_env):
    with psycopg.connect(db_url, autocommit=True) as conn:
        book = add_book(conn, add_library(conn), "Dune")
        events = [add_chronicle_event(conn, book, f"e{i}") for i in range(30)]
        proc = start_cli(worker_env, *REBUILD, "--emit-outbox", "--batch-size", "3",
                         extra_env={"WORDLOOM_REBUILD_BATCH_SLEEP_SECONDS": "0.1"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = conn.execute("SELECT counts FROM rebuild_checkpoints").fetchone()
            if row and row[0].get("events", 0) >= 9:
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert 9 <= conn.execute("SELECT count(*) FROM chronicle_entries").fetchone()[0] < 30

        wrong = run_cli(worker_env, *REBUILD, "--resume")
        assert wrong.returncode == 2 and "--resume" in wrong.stderr, "options must match the interrupted run"
        r = run_cli(worker_env, *REBUILD, "--emit-outbox", "--resume")
        assert r.returncode == 0, r.stderr
        assert "Rebuild OK: events=30" in r.stdout
        assert conn.execute("SELECT count(*) FROM chronicle_entries").fetchone()[0] == 30
        assert conn.execute("SELECT count(*), count(DISTINCT entity_id) FROM chronicle_outbox_events").fetchone() == (30, 30)
        assert {r[0] for r in conn.execute("SELECT entity_id FROM chronicle_outbox_events")} == set(events)
