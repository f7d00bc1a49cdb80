"""`outbox status` and `outbox prune` against the real database."""
from __future__ import annotations

import json

import psycopg

from tests.support.ops_fixtures import add_outbox_rows, run_cli
from wordloom.ops.schema_check import load_schema, schema_errors

SCHEMA = load_schema("outbox_status.schema.json")


def test_status_json_matches_the_schema_and_the_rows(db_url, worker_env):
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_outbox_rows(conn, "search", 3, status="pending", age_seconds=120)
        add_outbox_rows(conn, "search", 2, status="failed", error_reason="es_4xx")
        add_outbox_rows(conn, "search", 1, status="failed", error_reason=None)
        add_outbox_rows(conn, "search", 2, status="processing", owner="host:1", lease_seconds=30)
        add_outbox_rows(conn, "search", 1, status="processing", owner="host:2", lease_seconds=-30)
        add_outbox_rows(conn, "search", 4, status="done", processed_age_seconds=5)
        conn.execute("INSERT INTO projection_status (projection, last_started_at, last_finished_at,"
                     " last_duration_seconds, last_success) VALUES ('search_sot_to_search_index', now(), now(), 1.5, true)")

    r = run_cli(worker_env, "outbox", "status", "--json")
    assert r.returncode == 0, r.stderr
    status = json.loads(r.stdout)
    assert schema_errors(status, SCHEMA) == []
    search, chronicle = status["outboxes"]["search"], status["outboxes"]["chronicle"]
    assert search["counts"] == {"pending": 3, "processing": 3, "done": 4, "failed": 3}
    assert search["failed_by_reason"] == {"es_4xx": 2, "none": 1}
    assert 119 <= search["oldest_pending_age_seconds"] < 300
    assert [(lease["owner"], lease["rows"]) for lease in search["leases"]] == [("host:1", 2)]
    assert search["stuck_processing"] == 1
    assert search["last_success_at"] is not None
    assert [(b["projection"], b["last_success"]) for b in search["last_rebuilds"]] == [("search_sot_to_search_index", True)]
    assert chronicle["counts"] == {"pending": 0, "processing": 0, "done": 0, "failed": 0}
    assert chronicle["oldest_pending_age_seconds"] is None and chronicle["last_rebuilds"] == []

    table = run_cli(worker_env, "outbox", "status")
    assert table.returncode == 0
    assert "es_4xx=2" in table.stdout and "host:1 (2 rows" in table.stdout
    assert "last rebuild search_sot_to_search_index" in table.stdout and "[chronicle] last rebuild: never" in table.stdout


def test_schema_check_rejects_a_drifted_shape():
    good = {"schema": "wordloom.outbox_status/1", "generated_at": "t", "outboxes": {}}
    assert schema_errors(good, SCHEMA) == ["$.outboxes: missing required 'search'", "$.outboxes: missing required 'chronicle'"]
    assert schema_errors({**good, "extra": 1}, SCHEMA)[-1] == "$: unexpected property 'extra'"


def test_prune_deletes_only_old_done_rows(db_url, worker_env):
    with psycopg.connect(db_url, autocommit=True) as conn:
        old_done = add_outbox_rows(conn, "search", 7, status="done", age_seconds=20 * 86400, processed_age_seconds=10 * 86400)
        add_outbox_rows(conn, "chronicle", 3, status="done", entity_type="chronicle_event",
                        age_seconds=20 * 86400, processed_age_seconds=9 * 86400)
        recent_done = add_outbox_rows(conn, "search", 2, status="done", processed_age_seconds=3600)
        old_pending = add_outbox_rows(conn, "search", 2, status="pending", age_seconds=30 * 86400)
        old_failed = add_outbox_rows(conn, "search", 2, status="failed", age_seconds=30 * 86400)
        kept = set(recent_done + old_pending + old_failed)

        dry = run_cli(worker_env, "outbox", "prune", "--older-than", "7d", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "Prune search: would delete 7 done rows" in dry.stdout and "kept pending=2 processing=0 failed=2" in dry.stdout
        assert "Prune chronicle: would delete 3 done rows" in dry.stdout
        assert conn.execute("SELECT count(*) FROM search_outbox_events").fetchone()[0] == 13

        r = run_cli(worker_env, "outbox", "prune", "--older-than", "7d", "--outbox", "search")
        assert r.returncode == 0, r.stderr
        assert "Prune search: deleted 7 done rows" in r.stdout and "chronicle" not in r.stdout
        assert {row[0] for row in conn.execute("SELECT id FROM search_outbox_events")} == kept
        assert not set(old_done) & kept
        assert conn.execute("SELECT count(*) FROM chronicle_outbox_events").fetchone()[0] == 3


def test_prune_usage_errors(worker_env):
    for args in (("--older-than", "soon"), ("--older-than", "0d"), (), ("--older-than", "7d", "--outbox", "x")):
        r = run_cli(worker_env, "outbox", "prune", *args)
        assert r.returncode == 2 and "usage:" in r.stderr, args
