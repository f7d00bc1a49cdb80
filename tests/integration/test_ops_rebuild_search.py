"""Rebuild of search_index from books and blocks, against the real database."""
from __future__ import annotations

import signal
import time
import uuid

import psycopg

from tests.support.ops_fixtures import (actual_search_rows, add_block, add_book, add_library, add_search_row,
                                        expected_search_rows, run_cli, start_cli)

REBUILD = ("ops", "rebuild-search-index")


def _seed(conn):
    lib = add_library(conn)
    live = add_book(conn, lib, "Dune", "desert planet")
    other = add_book(conn, lib, "Emma", "x" * 300)
    gone = add_book(conn, lib, "Gone", "soft-deleted", deleted=True)
    blocks = {
        "live": add_block(conn, live, "spice must flow"),
        "deleted": add_block(conn, live, "deleted block", deleted=True),
        "of_gone_book": add_block(conn, gone, "block of a deleted book"),
        "long": add_block(conn, other, "y" * 250),
    }
    return lib, {"live": live, "other": other, "gone": gone}, blocks


def test_truncate_rebuild_is_exact_and_emits_deletes_for_orphans(db_url, worker_env):
    with psycopg.connect(db_url, autocommit=True) as conn:
        lib, books, blocks = _seed(conn)
        # stale rows: a live book with old text (and no entity_versions row), orphans of every kind
        add_search_row(conn, "book", books["live"], "old title", 5, lib)
        add_search_row(conn, "book", books["gone"], "Gone", 3, lib)
        add_search_row(conn, "block", blocks["deleted"], "deleted block", 2, lib)
        add_search_row(conn, "block", blocks["of_gone_book"], "block of a deleted book", 4, lib)
        ghost = uuid.uuid4()
        add_search_row(conn, "book", ghost, "never existed", 1, lib)

        r = run_cli(worker_env, *REBUILD, "--truncate", "--emit-outbox", "--batch-size", "2")
        assert r.returncode == 0, r.stderr
        assert r.stdout.splitlines()[0] == "Rebuild OK: books=2 blocks=2 truncate=True emit_outbox=True"

        assert actual_search_rows(conn) == expected_search_rows(conn)
        assert len(actual_search_rows(conn)) == 4
        snippet = conn.execute("SELECT snippet FROM search_index WHERE entity_id = %s", (blocks["long"],)).fetchone()[0]
        assert snippet == "y" * 200
        version = conn.execute("SELECT event_version FROM search_index WHERE entity_id = %s", (books["live"],)).fetchone()[0]
        assert version == 6, "a changed row outranks the version it replaces"

        outbox = conn.execute("SELECT entity_type, entity_id, op, event_version FROM search_outbox_events").fetchall()
        upserts = {(t, i): v for t, i, op, v in outbox if op == "upsert"}
        deletes = {(t, i): v for t, i, op, v in outbox if op == "delete"}
        assert set(upserts) == {(t, i) for t, i, *_ in expected_search_rows(conn)}
        assert deletes == {("book", books["gone"]): 4, ("block", blocks["deleted"]): 3,
                           ("block", blocks["of_gone_book"]): 5, ("book", ghost): 2}
        assert upserts[("book", books["live"])] == 6

        status = conn.execute("SELECT last_success, last_finished_at >= last_started_at FROM projection_status"
                              " WHERE projection = 'search_sot_to_search_index'").fetchone()
        assert status == (True, True)
        assert conn.execute("SELECT count(*) FROM rebuild_checkpoints").fetchone()[0] == 0


def test_plain_rebuild_keeps_rows_and_is_idempotent(db_url, worker_env):
    with psycopg.connect(db_url, autocommit=True) as conn:
        lib, books, blocks = _seed(conn)
        add_search_row(conn, "block", blocks["deleted"], "deleted block", 2, lib)
        first = run_cli(worker_env, *REBUILD)
        assert first.returncode == 0, first.stderr
        assert "Rebuild OK: books=2 blocks=2 truncate=False emit_outbox=False" in first.stdout
        assert "changed=4" in first.stdout
        versions = dict(conn.execute("SELECT entity_id, event_version FROM search_index").fetchall())
        assert blocks["deleted"] in versions, "without --truncate no row is removed"
        assert conn.execute("SELECT count(*) FROM search_outbox_events").fetchone()[0] == 0

        second = run_cli(worker_env, *REBUILD, "--limit", "1")
        assert "Rebuild OK: books=1 blocks=1" in second.stdout and "changed=0" in second.stdout
        assert dict(conn.execute("SELECT entity_id, event_version FROM search_index").fetchall()) == versions


def test_truncate_with_limit_is_a_usage_error(db_url, worker_env):
    r = run_cli(worker_env, *REBUILD, "--truncate", "--limit", "5")
    assert r.returncode == 2 and "--limit" in r.stderr
    assert run_cli(worker_env, *REBUILD, "--batch-size", "0").returncode == 2


def test_a_killed_rebuild_resumes_and_ends_identical(db_url, worker_env):
    with psycopg.connect(db_url, autocommit=True) as conn:
        lib = add_library(conn)
        for i in range(40):
            book = add_book(conn, lib, f"book {i}", f"summary {i}", deleted=(i % 10 == 0))
            add_block(conn, book, f"block {i}")
        add_search_row(conn, "book", uuid.uuid4(), "orphan", 1, lib)

        proc = start_cli(worker_env, *REBUILD, "--truncate", "--emit-outbox", "--batch-size", "4",
                         extra_env={"WORDLOOM_REBUILD_BATCH_SLEEP_SECONDS": "0.1"})
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            row = conn.execute("SELECT phase, counts FROM rebuild_checkpoints").fetchone()
            if row and row[0] == "blocks":
                break
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)  # a crash: no clean-up code runs
        proc.wait(10)
        phase, counts = conn.execute("SELECT phase, counts FROM rebuild_checkpoints").fetchone()
        assert phase == "blocks" and counts["books"] == 36

        r = run_cli(worker_env, *REBUILD, "--truncate", "--emit-outbox", "--batch-size", "7", "--resume")
        assert r.returncode == 0, r.stderr
        assert "Resuming search_sot_to_search_index from phase blocks" in r.stdout
        assert "Rebuild OK: books=36 blocks=36 truncate=True emit_outbox=True" in r.stdout
        assert actual_search_rows(conn) == expected_search_rows(conn)
        per_entity = conn.execute("SELECT op, count(*), count(DISTINCT (entity_type, entity_id))"
                                  " FROM search_outbox_events GROUP BY op ORDER BY op").fetchall()
        assert per_entity == [("delete", 1, 1), ("upsert", 72, 72)], "each entity queued exactly once"
        assert conn.execute("SELECT count(*) FROM rebuild_checkpoints").fetchone()[0] == 0

        mismatch = run_cli(worker_env, *REBUILD, "--resume", "--emit-outbox")
        assert mismatch.returncode == 0 and "Nothing to resume" in mismatch.stdout
