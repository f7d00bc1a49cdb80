"""Old defects fixed: the v3 defects of CONTRACT.md section 2, each shown with a real fault.

- a DB error in the loop killed the process:
    test_old_defect_db_connection_killed_in_the_loop_drains_reconnects_and_resumes (pg_terminate_backend)
    test_old_defect_a_failing_query_in_the_loop_does_not_kill_the_process (table renamed under a live worker)
    and, for the whole server: test_worker_process_faults.py::test_C14_backends_terminated_then_postgres_restarted...
- a slow batch lost its lease (never renewed):
    test_old_defect_a_batch_slower_than_its_lease_keeps_it
    (per-event mode too: test_worker_elastic_faults.py::test_use_es_bulk_0_...)
- an ack after a lost lease counted as success:
    test_old_defect_an_ack_after_a_lost_lease_counts_as_owner_mismatch_not_processed
    (and C04 in test_worker_search.py)
- a message that crashes the worker looped forever (reclaim never counted an attempt):
    test_worker_process.py::test_C12_a_row_that_kills_its_worker_every_time_ends_failed (real exit 137
    of the worker process, restarted until the row is failed reclaim_exhausted), and at store level
    test_outbox_store.py::test_C12_reclaim_counts_attempts_and_gives_up_after_max_reclaims
- failed rows counted in the lag gauge, so lag never returned to 0:
    test_old_defect_lag_gauges_exclude_failed_rows_and_return_to_zero
"""
import threading
import time
import uuid


from tests.support.outbox_helpers import (
    RunnerThread, WorkerProcess, add_chronicle_event, add_event, make_book, outbox_rows, put_search_row,
    settings_for, status_counts, wait_until,
)
from wordloom.outbox.store import OutboxStore
from wordloom.outbox.worker import build_runner


def test_old_defect_db_connection_killed_in_the_loop_drains_reconnects_and_resumes(db_url, conn):
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


def test_old_defect_a_batch_slower_than_its_lease_keeps_it(db_url, conn):
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


def test_old_defect_lag_gauges_exclude_failed_rows_and_return_to_zero(db_url, conn):
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


def test_old_defect_a_failing_query_in_the_loop_does_not_kill_the_process(conn, worker_env):
    """A query that fails on a live connection (the outbox table renamed under the worker, as a
    botched migration would): the worker process lives on, says so once (not once per iteration),
    is not ready meanwhile, counts no attempt against the rows, and resumes by itself."""
    import json
    import urllib.error
    import urllib.request

    def readyz(port):
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as resp:
                return resp.status, json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    e = uuid.uuid4()
    put_search_row(conn, "book", e, "t", 1)
    with WorkerProcess("search", worker_env, OUTBOX_POLL_INTERVAL_SECONDS="0.05",
                       OUTBOX_DB_PING_INTERVAL_SECONDS="0.1") as worker:
        port = worker.health_port()
        first = add_event(conn, "search", "book", e, "upsert", 1)
        wait_until(lambda: outbox_rows(conn, "search")[first]["status"] == "done", 15, message="first row")
        conn.execute("ALTER TABLE search_outbox_events RENAME TO search_outbox_events_away")
        try:
            code, body = wait_until(lambda: (lambda r: r if r[0] == 503 else None)(readyz(port)), 10,
                                    message="not ready while the query fails")
            time.sleep(0.5)  # several iterations fail meanwhile
            assert worker.proc.poll() is None
        finally:
            conn.execute("ALTER TABLE search_outbox_events_away RENAME TO search_outbox_events")
        second = add_event(conn, "search", "book", e, "upsert", 1)
        wait_until(lambda: outbox_rows(conn, "search")[second]["status"] == "done", 15, message="resumed")
        wait_until(lambda: readyz(port)[0] == 200, 10, message="ready again")
        worker.terminate()
        assert worker.wait(10) == 0
    assert "database query failed" in body["reason"] or "database" in body["reason"]
    failures = [r for r in worker.logs() if r.get("message") == "database query failed; backing off and retrying"]
    assert len(failures) == 1, [r.get("message") for r in worker.logs()]
    assert "search_outbox_events" in failures[0]["error"] and failures[0]["sqlstate"] == "42P01"
    assert any(r.get("message") == "worker loop recovered" for r in worker.logs())
    assert outbox_rows(conn, "search")[second]["attempts"] == 0
    assert not any("Traceback" in line for line in worker.lines)


def test_old_defect_an_ack_after_a_lost_lease_counts_as_owner_mismatch_not_processed(db_url, conn):
    """v3 ignored the affected-row count of its acks.  Worker A's batch outlives its lease while
    renewal cannot help (the lease is already gone: expired, as after a long pause), worker B
    reclaims and delivers the rows; A's late ack changes nothing and is counted in
    outbox_owner_mismatch_skips_total, never in outbox_processed_total."""
    _, book = make_book(conn)
    ids = [add_chronicle_event(conn, book, f"e{i}") for i in range(3)]
    a = build_runner(settings_for("chronicle", db_url, OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS="1.5"))
    b = build_runner(settings_for("chronicle", db_url))
    a.open()
    b.open()
    try:
        result = {}
        t = threading.Thread(target=lambda: result.setdefault("a", a.run_once()))
        t.start()
        wait_until(lambda: status_counts(conn, "chronicle").get("processing") == 3, 10, message="A claimed")
        conn.execute("UPDATE chronicle_outbox_events SET lease_until = now() - interval '1 second'")
        assert len(b.store.reclaim_expired(b.conn, 600, 3).to_pending) == 3
        b_reports = []
        while sum(r.done for r in b_reports) < 3:
            b_reports.append(b.run_once())
        t.join(10)
        late = result["a"]
    finally:
        a.close()
        b.close()
    assert (late.claimed, late.done, late.lost) == (3, 0, 3)
    assert a.metrics.value("outbox_owner_mismatch_skips_total", projection="chronicle") == 3
    assert a.metrics.value("outbox_processed_total", projection="chronicle", op="upsert") == 0
    assert b.metrics.value("outbox_processed_total", projection="chronicle", op="upsert") == 3
    rows = outbox_rows(conn, "chronicle")
    assert {(r["status"], r["owner"]) for r in rows.values()} == {("done", b.owner)}
    assert {r[0] for r in conn.execute("SELECT id FROM chronicle_entries")} == set(ids)


def test_a_renewal_that_meets_rows_this_worker_already_settled_reports_no_lost_lease(db_url, conn):
    """The lease keeper renews every batch in flight; a renewal can run into a batch's ack (it
    waits on the ack's row locks and finds the rows done before the batch is untracked).  Rows this
    worker settled are not lost; rows another worker now holds are."""
    _, book = make_book(conn)
    for i in range(4):
        add_chronicle_event(conn, book, f"e{i}")
    runner = build_runner(settings_for("chronicle", db_url, OUTBOX_LEASE_SECONDS="30"))
    store = runner.store
    try:
        events = store.claim_batch(conn, runner.owner, 4, 30)
        ids = [e.id for e in events]
        runner.lease_keeper.track(ids)
        assert runner.lease_keeper.renew(frozenset(ids)) == set()  # all ours, all renewed
        store.ack_done(conn, runner.owner, ids[:2])                 # the batch settled two of them
        conn.execute("UPDATE chronicle_outbox_events SET owner = 'someone-else' WHERE id = %s", (ids[2],))
        assert runner.lease_keeper.renew(frozenset(ids)) == {ids[2]}
    finally:
        runner.lease_keeper._close()
