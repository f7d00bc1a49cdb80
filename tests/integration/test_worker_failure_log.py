"""A terminal failure leaves one WARNING line naming the outbox id in a real worker's log
(runbooks: "read the worker log for the outbox id"); retries stay out of WARNING; a batch full of
terminal failures logs at most TERMINAL_LOG_LINES_PER_BATCH lines, then one line with the rest."""
from __future__ import annotations

import logging
import uuid

import pytest

from tests.integration.test_observability_metrics import FREE_METRICS_PORTS
from tests.support.outbox_helpers import (WorkerProcess, add_event, put_search_row, settings_for, status_counts,
                                          wait_until)
from wordloom.outbox.worker import build_runner
from wordloom.outbox.runner import TERMINAL_LOG_LINES_PER_BATCH, TERMINAL_LOG_MESSAGE

pytestmark = pytest.mark.integration

FAST = {"OUTBOX_DB_PING_INTERVAL_SECONDS": "0.2", "OUTBOX_POLL_INTERVAL_SECONDS": "0.2"}
MORE_MESSAGE = "more outbox rows failed (terminal) in this batch; not logged one by one"


def terminal_lines(worker: WorkerProcess) -> list[dict]:
    return [r for r in worker.logs() if str(r.get("message", "")).startswith(TERMINAL_LOG_MESSAGE)]


def test_C06_row_refused_by_elasticsearch_logs_one_warning_with_its_outbox_id(conn, worker_env):
    good, bad = uuid.uuid4(), uuid.uuid4()
    for entity in (good, bad):
        put_search_row(conn, "book", entity, "failure log", 1)
    with conn.transaction():
        good_id = add_event(conn, "search", "book", good, "upsert", 1)
        bad_id = add_event(conn, "search", "book", bad, "upsert", 1)
    env = {**worker_env, **FREE_METRICS_PORTS, **FAST}
    with WorkerProcess("search", env, OUTBOX_FAULT_INJECT_KIND="es_mapper_object",
                       OUTBOX_FAULT_INJECT_ENTITY_ID=str(bad)) as worker:
        wait_until(lambda: status_counts(conn, "search") == {"done": 1, "failed": 1}, 30, message="settled")
        [line] = wait_until(lambda: terminal_lines(worker) or None, 10, message="terminal failure log line")
        assert line["level"] == "WARNING"
        assert line["outbox_id"] == str(bad_id)
        assert str(bad_id) in line["message"]  # also readable with LOG_JSON=false
        assert (line["entity_type"], line["entity_id"], line["op"], line["reason"], line["projection"]) == \
            ("book", str(bad), "upsert", "es_4xx", "search")
        stored = conn.execute("SELECT error FROM search_outbox_events WHERE id = %s", (bad_id,)).fetchone()[0]
        assert line["error"] and line["error"] == stored[:1000]
        assert line["attempts"] == 1
        assert not any(str(good_id) in raw for raw in worker.lines)  # a delivered row is not logged


def test_retries_stay_below_warning_and_the_final_failure_is_logged_once(conn, worker_env):
    entity = uuid.uuid4()
    outbox_id = add_event(conn, "chronicle", "chronicle_event", entity, "upsert", 1)
    env = {**worker_env, **FREE_METRICS_PORTS, **FAST}
    with WorkerProcess("chronicle", env, OUTBOX_FAULT_INJECT_KIND="transient", OUTBOX_FAULT_INJECT_ENTITY_ID=str(entity),
                       OUTBOX_MAX_ATTEMPTS="3", OUTBOX_BASE_BACKOFF_SECONDS="0.05",
                       OUTBOX_MAX_BACKOFF_SECONDS="0.1") as worker:
        wait_until(lambda: status_counts(conn, "chronicle") == {"failed": 1}, 30, message="failed after 3 attempts")
        [line] = wait_until(lambda: terminal_lines(worker) or None, 10, message="terminal failure log line")
        assert (line["level"], line["outbox_id"], line["reason"], line["attempts"]) == \
            ("WARNING", str(outbox_id), "unknown_exception", 3)
        assert "transient fault" in line["error"]
        warnings_about_the_row = [r for r in worker.logs() if r.get("level") in ("WARNING", "ERROR")
                                  and str(outbox_id) in str(r)]
        assert warnings_about_the_row == [line]  # the two retries did not warn
        retried = [r for r in worker.logs() if r.get("message") == "batch settled with failures"]
        assert len(retried) == 3 and all(r["level"] == "INFO" for r in retried)


def test_a_batch_of_terminal_failures_is_capped_with_a_count_of_the_rest(conn, worker_env):
    extra = 5
    with conn.transaction():  # one commit: the worker claims them as one batch
        ids = [add_event(conn, "chronicle", "chronicle_event", uuid.uuid4(), "upsert", 1)
               for _ in range(TERMINAL_LOG_LINES_PER_BATCH + extra)]
    env = {**worker_env, **FREE_METRICS_PORTS, **FAST}
    with WorkerProcess("chronicle", env, OUTBOX_FAULT_INJECT_KIND="deterministic") as worker:
        wait_until(lambda: status_counts(conn, "chronicle") == {"failed": len(ids)}, 30, message="all failed")
        more = worker.wait_for_log(MORE_MESSAGE, 10)
        lines = terminal_lines(worker)
        assert len(lines) == TERMINAL_LOG_LINES_PER_BATCH
        assert {line["outbox_id"] for line in lines} <= {str(i) for i in ids}
        assert all(line["level"] == "WARNING" and line["reason"] == "deterministic_exception" for line in lines)
        assert (more["level"], more["rows"], more["reasons"]) == ("WARNING", extra, "deterministic_exception")


def test_reclaim_exhausted_rows_are_logged_like_any_terminal_failure(db_url, conn, caplog):
    """C12: a row whose holders kept dying goes failed by the reclaim, not by a settle; the same
    WARNING line names it (in-process runner: the reclaim runs in the loop of any live worker)."""
    entity = uuid.uuid4()
    outbox_id = add_event(conn, "chronicle", "chronicle_event", entity, "delete", 1)
    conn.execute("UPDATE chronicle_outbox_events SET status = 'processing', owner = 'dead:1', reclaim_count = 3,"
                 " lease_until = now() - interval '1 minute', processing_started_at = now() - interval '2 minutes'"
                 " WHERE id = %s", (outbox_id,))
    runner = build_runner(settings_for("chronicle", db_url, OUTBOX_MAX_RECLAIMS="3"))
    runner.open()
    try:
        with caplog.at_level(logging.INFO, logger="wordloom.outbox.runner"):
            runner._maybe_reclaim()
    finally:
        runner.close()
    assert status_counts(conn, "chronicle") == {"failed": 1}
    [line] = [r for r in caplog.records if r.getMessage().startswith(TERMINAL_LOG_MESSAGE)]
    assert line.levelno == logging.WARNING
    assert (line.outbox_id, line.entity_type, line.entity_id, line.op, line.reason) == \
        (str(outbox_id), "chronicle_event", str(entity), "delete", "reclaim_exhausted")
    assert "dead:1" in line.error
