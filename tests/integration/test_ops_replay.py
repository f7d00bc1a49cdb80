"""Replay of failed outbox rows against the real database, through the real command line."""
from __future__ import annotations

import json

import psycopg
import pytest

from tests.support.ops_fixtures import add_outbox_rows, run_cli

REPLAY = ("ops", "replay-failed")
ROW_STATE = "SELECT id, status, attempts, replay_count, next_retry_at, last_replayed_by, error_reason FROM {} ORDER BY id"


def _snapshot(conn, table):
    return conn.execute(ROW_STATE.format(table)).fetchall()


def test_limit_is_applied_audited_and_dry_run_changes_nothing(db_url, worker_env):
    with psycopg.connect(db_url, autocommit=True) as conn:
        ids = add_outbox_rows(conn, "search", 150, status="failed", error_reason="es_4xx")
        before = _snapshot(conn, "search_outbox_events")

        dry = run_cli(worker_env, *REPLAY, "--outbox", "search", "--by", "alice", "--reason", "es back",
                      "--limit", "100", "--dry-run")
        assert dry.returncode == 0, dry.stderr
        assert "Matched failed rows: 150; will replay: 100 (limit=100)" in dry.stdout
        assert "es_4xx=150" in dry.stdout and str(ids[0]) in dry.stdout
        assert _snapshot(conn, "search_outbox_events") == before
        assert conn.execute("SELECT count(*) FROM outbox_replay_audit").fetchone()[0] == 0

        real = run_cli(worker_env, *REPLAY, "--outbox", "search", "--by", "alice", "--reason", "es back",
                       "--limit", "100")
        assert real.returncode == 0, real.stderr
        assert real.stdout.splitlines()[:2] == ["Matched failed rows: 150; will replay: 100 (limit=100)",
                                                "Replayed rows: 100"]
        replayed = conn.execute(
            "SELECT id, attempts, replay_count, last_replayed_by, last_replayed_reason, last_replayed_at IS NOT NULL,"
            " next_retry_at > now() - interval '1 minute', error_reason FROM search_outbox_events"
            " WHERE status = 'pending' ORDER BY created_at").fetchall()
        assert len(replayed) == 100
        assert [r[0] for r in replayed] == ids[:100], "the oldest rows are replayed first"
        assert {r[1:] for r in replayed} == {(0, 1, "alice", "es back", True, True, "es_4xx")}
        assert conn.execute("SELECT count(*) FROM search_outbox_events WHERE status = 'failed'").fetchone()[0] == 50

        audit = conn.execute("SELECT outbox, replayed_by, reason, ids, matched_count, row_count, filters"
                             " FROM outbox_replay_audit").fetchall()
        assert len(audit) == 1
        outbox, by, reason, audit_ids, matched, count, filters = audit[0]
        assert (outbox, by, reason, matched, count) == ("search", "alice", "es back", 150, 100)
        assert sorted(audit_ids) == sorted(ids[:100])
        assert filters["limit"] == 100 and filters["entity_type"] is None

        log_lines = [json.loads(line) for line in real.stderr.splitlines() if line.startswith("{")]
        replay_logs = [entry for entry in log_lines if entry.get("event") == "outbox_replay"]
        assert len(replay_logs) == 1 and replay_logs[0]["replayed"] == 100 and replay_logs[0]["replayed_by"] == "alice"


def test_replay_of_a_thousand_rows_is_spread_not_one_instant(db_url, worker_env):
    """C17: the replayed rows become due over a window, and --limit still holds."""
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_outbox_rows(conn, "chronicle", 1000, status="failed", error_reason="es_5xx", entity_type="chronicle_event")
        r = run_cli(worker_env, *REPLAY, "--outbox", "chronicle", "--by", "bob", "--reason", "drill", "--limit", "1000")
        assert r.returncode == 0, r.stderr
        assert "Replayed rows: 1000" in r.stdout
        distinct, spread = conn.execute(
            "SELECT count(DISTINCT next_retry_at), extract(epoch FROM max(next_retry_at) - min(next_retry_at))"
            " FROM chronicle_outbox_events WHERE status = 'pending'").fetchone()
        assert distinct > 900
        assert spread > 5, f"1,000 rows must be spread over seconds, got {spread}"

        add_outbox_rows(conn, "chronicle", 1000, status="failed", error_reason="es_5xx", entity_type="chronicle_event")
        r = run_cli(worker_env, *REPLAY, "--outbox", "chronicle", "--by", "bob", "--reason", "drill", "--limit", "600")
        assert "Matched failed rows: 1000; will replay: 600 (limit=600)" in r.stdout
        assert "Replayed rows: 600" in r.stdout
        assert conn.execute("SELECT count(*) FROM chronicle_outbox_events WHERE status = 'failed'").fetchone()[0] == 400


def test_filters_select_only_matching_rows(db_url, worker_env):
    with psycopg.connect(db_url, autocommit=True) as conn:
        es4xx = add_outbox_rows(conn, "search", 3, error_reason="es_4xx", entity_type="book")
        es429 = add_outbox_rows(conn, "search", 4, error_reason="es_429", entity_type="block")
        old = add_outbox_rows(conn, "search", 2, error_reason="es_429", entity_type="block", age_seconds=10 * 3600)
        pending = add_outbox_rows(conn, "search", 2, status="pending", entity_type="block")

        r = run_cli(worker_env, *REPLAY, "--outbox", "search", "--by", "c", "--reason", "r",
                    "--error-reason", "es_429", "--since-hours", "2")
        assert "Matched failed rows: 4; will replay: 4 (limit=1000)" in r.stdout
        status = dict(conn.execute("SELECT id, status FROM search_outbox_events").fetchall())
        assert {status[i] for i in es429} == {"pending"}
        assert {status[i] for i in es4xx + old} == {"failed"}

        r = run_cli(worker_env, *REPLAY, "--outbox", "search", "--by", "c", "--reason", "r",
                    "--ids", str(es4xx[0]), str(pending[0]), "--entity-type", "book")
        assert "Matched failed rows: 1; will replay: 1" in r.stdout and "Replayed rows: 1" in r.stdout
        status = dict(conn.execute("SELECT id, status FROM search_outbox_events").fetchall())
        assert status[es4xx[0]] == "pending" and status[es4xx[1]] == "failed"
        replay_counts = dict(conn.execute("SELECT id, replay_count FROM search_outbox_events").fetchall())
        assert replay_counts[pending[0]] == 0, "a pending row is never 'replayed'"


@pytest.mark.parametrize("args", [
    ("--outbox", "search", "--by", "", "--reason", "x"),
    ("--outbox", "search", "--by", "a", "--reason", "   "),
    ("--outbox", "search", "--reason", "x"),
    ("--by", "a", "--reason", "x"),
    ("--outbox", "nope", "--by", "a", "--reason", "x"),
    ("--outbox", "search", "--by", "a", "--reason", "x", "--limit", "0"),
    ("--outbox", "search", "--by", "a", "--reason", "x", "--ids", "not-a-uuid"),
    ("--outbox", "search", "--by", "a", "--reason", "x", "--bogus"),
])
def test_usage_errors_exit_2_with_usage(worker_env, args):
    r = run_cli(worker_env, *REPLAY, *args)
    assert r.returncode == 2
    assert "usage:" in r.stderr and "Traceback" not in r.stderr


def test_unreachable_database_is_one_line_without_password(worker_env):
    env = {**worker_env, "DATABASE_URL": "postgresql://someone:s3cret-pw@127.0.0.1:1/wordloom_test"}
    r = run_cli(env, *REPLAY, "--outbox", "search", "--by", "a", "--reason", "x")
    assert r.returncode == 1
    assert "127.0.0.1:1" in r.stderr and "s3cret-pw" not in r.stderr + r.stdout
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_audit_table_is_append_only(db_url, worker_env):
    with psycopg.connect(db_url, autocommit=True) as conn:
        add_outbox_rows(conn, "search", 2)
        assert run_cli(worker_env, *REPLAY, "--outbox", "search", "--by", "a", "--reason", "x").returncode == 0
        for statement in ("UPDATE outbox_replay_audit SET replayed_by = 'mallory'",
                          "DELETE FROM outbox_replay_audit", "TRUNCATE outbox_replay_audit"):
            with pytest.raises(psycopg.errors.RaiseException, match="append-only"):
                conn.execute(statement)
        assert conn.execute("SELECT replayed_by FROM outbox_replay_audit").fetchall() == [("a",)]
