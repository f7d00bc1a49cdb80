"""Workers as real processes (`python -m wordloom.cli ops <projection>-worker`): startup, health,
environment guard, SIGTERM drain (C13), a crash loop (C12) and the unreachable database."""
import json
import time
import urllib.error
import urllib.request
import uuid
from urllib.parse import urlsplit, urlunsplit


from tests.support.outbox_helpers import (
    WorkerProcess, add_chronicle_event, add_event, make_book, outbox_rows, put_search_row, status_counts, wait_until,
)


def get_json(port: int, path: str):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def with_password(url: str, password: str) -> str:
    """The same URL with a password (the test server trusts loopback, so it is not checked)."""
    parts = urlsplit(url)
    if parts.password is not None:
        return url
    netloc = f"{parts.username or 'postgres'}:{password}@{parts.hostname}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def test_search_worker_starts_serves_health_and_never_logs_the_password(conn, worker_env, es_index):
    secret = "pw-" + uuid.uuid4().hex[:10]
    env = dict(worker_env, DATABASE_URL=with_password(worker_env["DATABASE_URL"], secret))
    e = uuid.uuid4()
    put_search_row(conn, "book", e, "hello", 1)
    event_id = add_event(conn, "search", "book", e, "upsert", 1)
    with WorkerProcess("search", env) as worker:
        start = worker.wait_for_log("worker starting")
        assert start["projection"] == "search" and start["index"] == es_index and start["worker_id"]
        assert "***" in start["database"] or secret not in worker_env["DATABASE_URL"]
        port = worker.health_port()
        wait_until(lambda: outbox_rows(conn, "search")[event_id]["status"] == "done", 15, message="done")
        code, live = get_json(port, "/healthz")
        assert code == 200 and live["ok"] and live["state"] == "RUNNING"
        code, ready = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(get_json(port, "/readyz")), 10)
        assert set(ready) >= {"ok", "reason", "projection", "worker_id", "state", "db"}
        assert ready["projection"] == "search" and ready["db"]["ok"] is True
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
            metrics = resp.read().decode()
        assert 'outbox_processed_total{op="upsert",projection="search"} 1.0' in metrics
        assert "outbox_lag_events" in metrics and "outbox_es_bulk_request_duration_seconds" in metrics
        worker.terminate()
        assert worker.wait(10) == 0
    assert not any(secret in line for line in worker.lines)
    assert all(line.startswith("{") for line in worker.lines)  # JSON logs, one object per line


def test_health_moves_to_its_own_port_when_outbox_http_port_is_set(worker_env):
    from wordloom.devstack.ports import free_port

    health_port = free_port()
    with WorkerProcess("chronicle", worker_env, OUTBOX_HTTP_PORT=health_port) as worker:
        ports = worker.wait_for_log("health server listening")
        assert ports["health_port"] == health_port != ports["metrics_port"]
        code, body = wait_until(lambda: (lambda r: r if r[0] == 200 else None)(get_json(health_port, "/readyz")), 10)
        assert body["projection"] == "chronicle"
        assert get_json(ports["metrics_port"], "/healthz")[0] == 404
        worker.terminate()
        assert worker.wait(10) == 0


def test_environment_guard_refuses_with_one_line_and_exit_2(worker_env):
    with WorkerProcess("search", worker_env, WORDLOOM_ENV="dev") as worker:
        assert worker.wait(15) == 2
    errors = [line for line in worker.lines if "refusing to start" in line]
    assert len(errors) == 1 and "WORDLOOM_ENV=dev" in errors[0] and "Traceback" not in "\n".join(worker.lines)


def test_C13_sigterm_mid_batch_finishes_it_and_exits_0_within_grace(conn, worker_env):
    """C13: SIGTERM while a (slow) batch is in flight: the batch completes, exit 0 within the
    grace time, no row left processing."""
    _, book = make_book(conn)
    ids = [add_chronicle_event(conn, book, "block_added", payload={"i": i}) for i in range(5)]
    with WorkerProcess("chronicle", worker_env, OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS="1.5",
                       OUTBOX_SHUTDOWN_GRACE_SECONDS="4") as worker:
        wait_until(lambda: status_counts(conn, "chronicle").get("processing") == 5, 15, message="claim")
        sent = time.monotonic()
        worker.terminate()
        assert worker.wait(10) == 0
        elapsed = time.monotonic() - sent
    assert elapsed < 4
    assert status_counts(conn, "chronicle") == {"done": 5}
    assert conn.execute("SELECT count(*) FROM chronicle_entries").fetchone()[0] == len(ids)


def test_C13_sigterm_when_the_batch_outlasts_the_grace_releases_rows_and_exits_0(conn, worker_env):
    """C13, the other branch: the batch in flight would outlast the grace time (honcho SIGKILLs 5 s
    after SIGTERM), so the worker hands its rows back and exits 0 in time."""
    e = uuid.uuid4()
    put_search_row(conn, "book", e, "t", 1)
    add_event(conn, "search", "book", e, "upsert", 1)
    with WorkerProcess("search", worker_env, OUTBOX_EXPERIMENT_PROCESS_SLEEP_SECONDS="60",
                       OUTBOX_SHUTDOWN_GRACE_SECONDS="1") as worker:
        wait_until(lambda: status_counts(conn, "search").get("processing") == 1, 15, message="claim")
        sent = time.monotonic()
        worker.terminate()
        assert worker.wait(10) == 0
        elapsed = time.monotonic() - sent
    assert elapsed < 3.5
    row = next(iter(outbox_rows(conn, "search").values()))
    assert (row["status"], row["owner"], row["attempts"]) == ("pending", None, 0)


def test_C12_a_row_that_kills_its_worker_every_time_ends_failed(conn, worker_env, es_index):
    """C12: the worker process dies (exit 137) whenever it processes one entity.  Restarted each
    time, the row is reclaimed a bounded number of times and then failed reclaim_exhausted; the
    rows claimed in the same batch are not dragged down with it."""
    poison = uuid.uuid4()
    others = [uuid.uuid4() for _ in range(3)]
    for e in [poison, *others]:
        put_search_row(conn, "book", e, "t", 1)
    poison_id = add_event(conn, "search", "book", poison, "upsert", 1)
    other_ids = [add_event(conn, "search", "book", e, "upsert", 1) for e in others]
    env = dict(worker_env, OUTBOX_FAULT_INJECT_KIND="crash", OUTBOX_FAULT_INJECT_ENTITY_ID=str(poison),
               OUTBOX_LEASE_SECONDS="1", OUTBOX_MAX_RECLAIMS="2", OUTBOX_RECLAIM_INTERVAL_SECONDS="0.2",
               OUTBOX_POLL_INTERVAL_SECONDS="0.2")
    crashes = 0
    deadline = time.monotonic() + 40
    while outbox_rows(conn, "search")[poison_id]["status"] != "failed":
        assert time.monotonic() < deadline, outbox_rows(conn, "search")[poison_id]
        with WorkerProcess("search", env) as worker:
            try:
                code = worker.wait(6)
            except Exception:
                code = None  # alive: nothing left to crash on; stop it below
            if code is None:
                worker.terminate()
                worker.wait(10)
            else:
                assert code == 137
                crashes += 1
    rows = outbox_rows(conn, "search")
    assert rows[poison_id]["error_reason"] == "reclaim_exhausted" and rows[poison_id]["reclaim_count"] == 3
    assert crashes == 3
    assert all(rows[i]["status"] == "done" and rows[i]["reclaim_count"] <= 1 for i in other_ids)


def test_worker_continues_the_trace_stored_on_the_outbox_row(conn, worker_env, tmp_path):
    """CONTRACT §4: outbox.process continues the row's traceparent, tagged wordloom.outbox_event_id;
    projection.process_batch carries wordloom.claim_batch_id (spans read from the local exporter)."""
    _, book = make_book(conn)
    event_id = add_chronicle_event(conn, book, "book_created")
    trace_id = uuid.uuid4().hex
    conn.execute("UPDATE chronicle_outbox_events SET traceparent = %s",
                 (f"00-{trace_id}-{uuid.uuid4().hex[:16]}-01",))
    row_id = next(iter(outbox_rows(conn, "chronicle")))
    with WorkerProcess("chronicle", worker_env, WORDLOOM_VAR_DIR=str(tmp_path)) as worker:
        wait_until(lambda: status_counts(conn, "chronicle") == {"done": 1}, 15, message="done")
        worker.terminate()
        assert worker.wait(10) == 0
    spans = [json.loads(line) for line in
             (tmp_path / "traces" / "wordloom-chronicle-outbox-worker.jsonl").read_text().splitlines()]
    text = json.dumps(spans)
    assert "outbox.process" in text and "projection.process_batch" in text and "outbox.claim_batch" in text
    loops = [s for s in spans if s.get("name") == "outbox_worker.loop"]
    assert loops and all(s["attributes"]["wordloom.obs_schema"] == "labs-009-v2" for s in loops), text[:500]
    assert trace_id in text and str(row_id) in text and "wordloom.claim_batch_id" in text
    assert str(event_id) in text  # wordloom.entity.id


def test_outbox_run_seconds_ends_the_worker_with_exit_0(worker_env):
    started = time.monotonic()
    with WorkerProcess("search", worker_env, OUTBOX_RUN_SECONDS="1") as worker:
        assert worker.wait(15) == 0
    assert time.monotonic() - started < 10
    assert any(r.get("message") == "OUTBOX_RUN_SECONDS reached" for r in worker.logs())
    assert any(r.get("message") == "worker stopped" for r in worker.logs())


def test_an_unparsable_setting_is_a_one_line_error_with_exit_2(worker_env):
    with WorkerProcess("chronicle", worker_env, OUTBOX_LEASE_SECONDS="soon") as worker:
        assert worker.wait(15) == 2
    assert len(worker.lines) == 1 and "OUTBOX_LEASE_SECONDS" in worker.lines[0]
