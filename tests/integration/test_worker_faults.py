"""v3 defects that must stay fixed, with real faults: a database error in the loop (the worker
lives on and reconnects), a batch slower than its lease (the lease is renewed), failed rows in the
lag gauge."""
import time

import psycopg
import pytest

from tests.support.outbox_helpers import (
    RunnerThread, add_chronicle_event, make_book, settings_for, status_counts, wait_until,
)
from wordloom.outbox.store import OutboxStore
from wordloom.outbox.worker import build_runner


@pytest.fixture
def conn(db_url):
    with psycopg.connect(db_url, autocommit=True) as c:
        yield c


def test_a_database_error_in_the_loop_drains_reconnects_and_resumes(db_url, conn):
    """C14 (connection half): every worker connection is terminated by pg_terminate_backend.  The
    runner does not die: it reports DRAINING / not ready, reconnects by itself and delivers again."""
    _, book = make_book(conn)
    runner = build_runner(settings_for("chronicle", db_url, OUTBOX_POLL_INTERVAL_SECONDS="0.1"))
    states = []
    loop = RunnerThread(runner)
    with loop:
        wait_until(lambda: runner.health.state == "RUNNING", 10, message="running")
        add_chronicle_event(conn, book, "before")
        wait_until(lambda: status_counts(conn, "chronicle") == {"done": 1}, 10, message="first row")
        killed = conn.execute("SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity"
                              " WHERE datname = current_database() AND pid <> pg_backend_pid()").fetchone()[0]
        assert killed >= 2  # the loop's connection and its listener at least
        wait_until(lambda: states.append(runner.health.readiness()["ok"]) or not states[-1] or None, 5, 0.01,
                   message="not ready while reconnecting")
        add_chronicle_event(conn, book, "after")
        wait_until(lambda: status_counts(conn, "chronicle") == {"done": 2}, 15, message="row after the outage")
        wait_until(lambda: runner.health.readiness()["ok"], 10, message="ready again")
        assert loop.thread.is_alive()
    assert False in states


def test_a_batch_slower_than_its_lease_keeps_it(db_url, conn):
    """v3 never renewed leases: a batch slower than the lease was reclaimed by another worker and
    delivered twice.  Here a 2.5 s batch with a 1 s lease keeps its rows while a second worker
    reclaims all the time, and every row is acked by its first owner."""
    _, book = make_book(conn)
    for i in range(3):
        add_chronicle_event(conn, book, f"e{i}")
    runner = build_runner(settings_for("chronicle", db_url, OUTBOX_LEASE_SECONDS="1",
                                       OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS="2.5"))
    other = OutboxStore("chronicle")
    reclaimed = []
    with RunnerThread(runner):
        wait_until(lambda: status_counts(conn, "chronicle").get("processing") == 3, 10, message="claimed")
        deadline = time.monotonic() + 10
        while status_counts(conn, "chronicle") != {"done": 3}:
            assert time.monotonic() < deadline, status_counts(conn, "chronicle")
            result = other.reclaim_expired(conn, max_processing_seconds=600, max_reclaims=3)
            reclaimed += result.to_pending + result.to_failed
            time.sleep(0.1)
    assert reclaimed == []
    assert runner.metrics.value("outbox_owner_mismatch_skips_total", projection="chronicle") == 0
    assert runner.metrics.value("outbox_processed_total", projection="chronicle", op="upsert") == 3
    owners = {r[0] for r in conn.execute("SELECT DISTINCT owner FROM chronicle_outbox_events")}
    assert owners == {runner.owner}


def test_lag_gauges_exclude_failed_rows_and_return_to_zero(db_url, conn):
    """v3 counted failed rows as lag, so lag never returned to 0 after a terminal failure."""
    _, book = make_book(conn)
    ok = add_chronicle_event(conn, book, "fine")
    bad = add_chronicle_event(conn, book, "poison")
    runner = build_runner(settings_for("chronicle", db_url, OUTBOX_FAULT_INJECT_KIND="deterministic",
                                       OUTBOX_FAULT_INJECT_ENTITY_ID=str(bad),
                                       OUTBOX_DB_PING_INTERVAL_SECONDS="0.1"))
    with RunnerThread(runner):
        wait_until(lambda: status_counts(conn, "chronicle") == {"done": 1, "failed": 1}, 10, message="settled")
        wait_until(lambda: runner.metrics.value("outbox_failed_events", projection="chronicle") == 1, 5,
                   message="failed gauge")
        assert runner.metrics.value("outbox_lag_events", projection="chronicle") == 0
        assert runner.metrics.value("outbox_oldest_age_seconds", projection="chronicle") == 0
        assert runner.metrics.value("outbox_inflight_events", projection="chronicle") == 0
    assert ok != bad
