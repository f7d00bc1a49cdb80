"""The search sink with an in-process runner against real PostgreSQL and the real search server.

Cases: claim -> done, external versioning, C04, C05, C06, C07 (injected 429; the proxy variant is in
test_worker_elastic_faults.py), C11 (both variants), retry beyond the budget while the server is
unreachable / retry -> failed while it answers 503, and poison-row isolation.
"""
import threading
import uuid

import pytest

from tests.support.outbox_helpers import (
    add_event, drain, es_doc, opened_runners, outbox_rows, put_search_row, remove_search_row, settings_for,
)
from wordloom.devstack.ports import free_port
from wordloom.outbox.worker import build_runner
from wordloom.search.index import document_id


@pytest.fixture
def make_runner(stack, db_url, es_index):
    with opened_runners() as open_runner:
        def make(after_state_read=None, **env):
            return open_runner(settings_for("search", db_url, stack.elastic_url, es_index, **env),
                               after_state_read=after_state_read)
        yield make


def doc_state(es, index, entity_id, entity_type="book"):
    return es_doc(es, index, document_id(entity_type, entity_id))


def test_claim_to_done_indexes_the_current_row_at_its_version(conn, es, es_index, make_runner):
    a, b = uuid.uuid4(), uuid.uuid4()
    library = uuid.uuid4()
    put_search_row(conn, "book", a, "Context managers\nThe with statement", 1, library)
    put_search_row(conn, "block", b, "A paragraph about é and 漢字", 4)
    ids = [add_event(conn, "search", "book", a, "upsert", 1), add_event(conn, "search", "block", b, "upsert", 4)]
    runner = make_runner()
    [report] = drain(runner)
    assert report.done == 2 and report.failed == report.retried == report.lost == 0
    assert {r["status"] for r in outbox_rows(conn, "search").values()} == {"done"}
    version, source = doc_state(es, es_index, a)
    assert version == 1 and source["text"] == "Context managers\nThe with statement"
    assert source["library_id"] == str(library) and source["entity_type"] == "book"
    assert doc_state(es, es_index, b, "block")[0] == 4
    assert runner.metrics.value("outbox_processed_total", projection="search", op="upsert") == 2
    assert set(ids) == set(outbox_rows(conn, "search"))


def test_external_versioning_stale_upsert_or_stale_delete_never_regress(conn, es, es_index, make_runner):
    """A late upsert(v3) after v4 was indexed, and a late delete(v2) of an entity since restored at
    v4, both leave the document at v4 (the sink sends the current state; the server answers 409)."""
    e = uuid.uuid4()
    runner = make_runner()
    put_search_row(conn, "book", e, "first", 3)
    add_event(conn, "search", "book", e, "upsert", 3)
    drain(runner)
    put_search_row(conn, "book", e, "second", 4)
    add_event(conn, "search", "book", e, "upsert", 4)
    drain(runner)
    assert doc_state(es, es_index, e)[0] == 4
    # stale events arrive late (redelivered, or a slow producer)
    add_event(conn, "search", "book", e, "upsert", 3)
    add_event(conn, "search", "book", e, "delete", 2)
    [report] = drain(runner)
    assert report.done == 2
    version, source = doc_state(es, es_index, e)
    assert version == 4 and source["text"] == "second"
    assert runner.metrics.value("outbox_idempotent_noop_total", projection="search", op="upsert", reason="es_409") == 1
    # and the server itself refuses a raw stale write: the guard is real, not only in our code
    resp = es.options(ignore_status=409).index(index=es_index, id=document_id("book", e), document={"text": "old"},
                                               version=3, version_type="external")
    assert resp.meta.status == 409


def test_C05_bulk_answer_with_errors_true_settles_each_row_by_its_own_status(conn, es, es_index, make_runner):
    """C05: one real _bulk answer (HTTP 200, errors: true) mixing 201, 409, 400 and delete-404."""
    ok, newer, bad, gone = (uuid.uuid4() for _ in range(4))
    put_search_row(conn, "book", ok, "fine", 1)
    put_search_row(conn, "book", newer, "already newer in the index", 2)
    put_search_row(conn, "book", bad, "will carry an object", 1)
    es.index(index=es_index, id=document_id("book", newer), document={"text": "v9"}, version=9, version_type="external")
    ids = {
        "ok": add_event(conn, "search", "book", ok, "upsert", 1),
        "newer": add_event(conn, "search", "book", newer, "upsert", 2),
        "bad": add_event(conn, "search", "book", bad, "upsert", 1),
        "gone": add_event(conn, "search", "book", gone, "delete", 1),
    }
    runner = make_runner(OUTBOX_FAULT_INJECT_KIND="es_mapper_object", OUTBOX_FAULT_INJECT_ENTITY_ID=str(bad))
    [report] = drain(runner)
    m = runner.metrics
    assert m.value("outbox_es_bulk_requests_total", projection="search", result="errors") == 1  # one request
    assert m.value("outbox_es_bulk_items_total", projection="search", op="upsert", result="ok") == 1
    assert m.value("outbox_es_bulk_items_total", projection="search", op="upsert", result="noop") == 1
    assert m.value("outbox_es_bulk_items_total", projection="search", op="upsert", result="failed") == 1
    assert m.value("outbox_es_bulk_items_total", projection="search", op="delete", result="noop") == 1
    rows = outbox_rows(conn, "search")
    assert rows[ids["ok"]]["status"] == "done"
    assert rows[ids["newer"]]["status"] == "done"
    assert rows[ids["gone"]]["status"] == "done"
    assert (rows[ids["bad"]]["status"], rows[ids["bad"]]["error_reason"]) == ("failed", "es_4xx")
    assert m.value("outbox_idempotent_noop_total", projection="search", op="upsert", reason="es_409") == 1
    assert m.value("outbox_idempotent_noop_total", projection="search", op="delete", reason="es_404") == 1
    assert m.value("outbox_processed_total", projection="search", op="upsert") == 2
    assert (report.done, report.failed) == (3, 1)
    assert doc_state(es, es_index, newer)[0] == 9  # the newer document was left alone


def test_C06_object_where_a_string_is_mapped_fails_that_row_only(conn, es, es_index, make_runner):
    """C06: mapper_parsing (document_parsing) 400 for one item: failed es_4xx at the first attempt,
    the other items of the batch are done."""
    entities = [uuid.uuid4() for _ in range(5)]
    for e in entities:
        put_search_row(conn, "block", e, f"text {e}", 1)
    ids = [add_event(conn, "search", "block", e, "upsert", 1) for e in entities]
    runner = make_runner(OUTBOX_FAULT_INJECT_KIND="es_mapper_object", OUTBOX_FAULT_INJECT_ENTITY_ID=str(entities[2]))
    drain(runner)
    rows = outbox_rows(conn, "search")
    failed = rows[ids[2]]
    assert (failed["status"], failed["error_reason"], failed["attempts"]) == ("failed", "es_4xx", 1)
    assert "400" in failed["error"] and "pars" in failed["error"]
    assert all(rows[i]["status"] == "done" for i in ids if i != ids[2])
    assert doc_state(es, es_index, entities[2], "block") is None
    assert all(doc_state(es, es_index, e, "block") for e in entities if e != entities[2])
    assert runner.metrics.value("outbox_terminal_failed_total", projection="search", op="upsert", reason="es_4xx") == 1


def test_C07_injected_429_retries_only_the_rejected_items(conn, es, es_index, make_runner):
    """C07 (injected answers; the proxy variant belongs to the reliability suite)."""
    entities = [uuid.uuid4() for _ in range(4)]
    for e in entities:
        put_search_row(conn, "book", e, "t", 1)
    ids = [add_event(conn, "search", "book", e, "upsert", 1) for e in entities]
    runner = make_runner(OUTBOX_EXPERIMENT_ES_429_EVERY_N="2", OUTBOX_BASE_BACKOFF_SECONDS="0.2",
                         OUTBOX_MAX_BACKOFF_SECONDS="0.2")
    report = runner.run_once()
    assert (report.done, report.retried) == (2, 2)
    rows = outbox_rows(conn, "search")
    retried = [r for r in rows.values() if r["status"] == "pending"]
    assert len(retried) == 2 and all(r["error_reason"] == "es_429" and r["attempts"] == 1 for r in retried)
    assert all(r["next_retry_at"] is not None for r in retried)
    runner.experiments.es_429_every_n = 0
    conn.execute("UPDATE search_outbox_events SET next_retry_at = now() WHERE status = 'pending'")
    drain(runner)
    assert {r["status"] for r in outbox_rows(conn, "search").values()} == {"done"}
    assert runner.metrics.value("outbox_retry_scheduled_total", projection="search", op="upsert", reason="es_429") == 2
    assert set(ids) == set(outbox_rows(conn, "search"))


def test_unreachable_server_is_retried_beyond_the_budget_a_failing_one_is_not(conn, db_url, es_index, stack):
    """Real faults.  Nothing listens on the ELASTIC_URL port: es_connect says nothing about the row,
    so it is retried past OUTBOX_MAX_ATTEMPTS and never failed (C01).  A server that answers 503
    every time (a proxy in front of the real one): es_5xx is retried until the budget is spent,
    then the row is failed with that reason."""
    from tests.support.es_proxy import Answer, ESProxy

    e = uuid.uuid4()
    put_search_row(conn, "book", e, "t", 1)
    event_id = add_event(conn, "search", "book", e, "upsert", 1)
    runner = build_runner(settings_for("search", db_url, f"http://127.0.0.1:{free_port()}", es_index,
                                       OUTBOX_MAX_ATTEMPTS="3"))
    runner.open()
    try:
        reports = [runner.run_once() for _ in range(6)]
    finally:
        runner.close()
    assert [(r.retried, r.failed) for r in reports] == [(1, 0)] * 6
    row = outbox_rows(conn, "search")[event_id]
    assert (row["status"], row["error_reason"], row["attempts"]) == ("pending", "es_connect", 6)
    assert runner.metrics.value("outbox_failed_total", projection="search", op="upsert", reason="es_connect") == 6

    conn.execute("UPDATE search_outbox_events SET attempts = 0")
    with ESProxy(stack.elastic_url) as proxy:
        proxy.add(Answer(503))
        runner = build_runner(settings_for("search", db_url, proxy.url, es_index, OUTBOX_MAX_ATTEMPTS="3"))
        runner.open()
        try:
            reports = drain(runner)
        finally:
            runner.close()
    assert [(r.retried, r.failed) for r in reports] == [(1, 0), (1, 0), (0, 1)]
    row = outbox_rows(conn, "search")[event_id]
    assert (row["status"], row["error_reason"], row["attempts"]) == ("failed", "es_5xx", 3)
    assert runner.metrics.value("outbox_failed_total", projection="search", op="upsert", reason="es_5xx") == 3


def test_C11_delete_v6_then_late_upsert_v5_stays_deleted_after_the_servers_tombstones_are_gone(
        conn, es, es_index, make_runner):
    """C11, "after the server's delete tombstones are gone": a real Elasticsearch keeps a delete's
    version for index.gc_deletes (60 s) and would refuse the stale v5 by itself; once that
    tombstone is collected, only the worker stands between a late upsert and a resurrected
    document.  The index gets gc_deletes=0s (a real server then forgets at once; the embedded server
    keeps no tombstones at all), and the probe below checks that the server really has forgotten
    before the test relies on it.  The late upsert(v5) after delete(v6) does not bring the document
    back: the sink transfers the current state (deleted)."""
    from elasticsearch import ApiError

    es.options(ignore_status=400).indices.create(index=es_index)
    try:
        es.indices.put_settings(index=es_index, settings={"index": {"gc_deletes": "0s"}})
    except ApiError:
        pass  # a server without the setting; the probe decides
    probe = f"probe-{uuid.uuid4()}"
    es.index(index=es_index, id=probe, document={"text": "x"}, version=5, version_type="external")
    es.delete(index=es_index, id=probe, version=6, version_type="external")
    es.indices.refresh(index=es_index)
    es.index(index=es_index, id=probe, document={"text": "x"}, version=5, version_type="external")
    assert es_doc(es, es_index, probe) is not None, "the server kept a tombstone; this test would prove less"
    es.delete(index=es_index, id=probe)

    e = uuid.uuid4()
    runner = make_runner()
    put_search_row(conn, "block", e, "v5 text", 5)
    add_event(conn, "search", "block", e, "upsert", 5)
    drain(runner)
    assert doc_state(es, es_index, e, "block")[0] == 5
    remove_search_row(conn, "block", e, 6)
    add_event(conn, "search", "block", e, "delete", 6)
    drain(runner)
    assert doc_state(es, es_index, e, "block") is None
    late = add_event(conn, "search", "block", e, "upsert", 5)
    drain(runner)
    assert doc_state(es, es_index, e, "block") is None
    assert outbox_rows(conn, "search")[late]["status"] == "done"


def test_C11_two_workers_claim_the_upsert_and_the_delete_at_once(conn, es, es_index, make_runner):
    """C11, second variant: worker A claims upsert(v5) and reads the row (present) just before the
    delete(v6) commits; worker B claims delete(v6) while A is still writing.  Without the entity
    lock B's delete would land first and A's v5 would re-create the document on this server."""
    e = uuid.uuid4()
    put_search_row(conn, "block", e, "v5 text", 5)
    upsert_id = add_event(conn, "search", "block", e, "upsert", 5)
    a_has_read = threading.Event()
    b_claimed = threading.Event()

    def hold_after_read(events):
        if any(ev.id == upsert_id for ev in events):
            a_has_read.set()
            assert b_claimed.wait(10)
            # give B time to reach the entity lock (it must block there, not write)
            threading.Event().wait(0.5)

    worker_a = make_runner(OUTBOX_BATCH_SIZE="1", after_state_read=hold_after_read)
    worker_b = make_runner(OUTBOX_BATCH_SIZE="1")
    result = {}
    thread_a = threading.Thread(target=lambda: result.setdefault("a", worker_a.run_once()))
    thread_a.start()
    assert a_has_read.wait(10)
    remove_search_row(conn, "block", e, 6)
    delete_id = add_event(conn, "search", "block", e, "delete", 6)

    def run_b():
        events = worker_b.store.claim_batch(worker_b.conn, worker_b.owner, 1, 30)
        assert [ev.id for ev in events] == [delete_id]
        b_claimed.set()
        result["b"] = worker_b.process_events(events)

    thread_b = threading.Thread(target=run_b)
    thread_b.start()
    thread_a.join(20)
    thread_b.join(20)
    assert result["a"].done == 1 and result["b"].done == 1
    assert doc_state(es, es_index, e, "block") is None
    rows = outbox_rows(conn, "search")
    assert rows[upsert_id]["status"] == rows[delete_id]["status"] == "done"
    assert rows[upsert_id]["owner"] != rows[delete_id]["owner"]


def test_C04_same_batch_delivered_twice_after_a_lost_lease(conn, es, es_index, make_runner):
    """C04: A claims and stalls past its lease; B reclaims and delivers; A delivers late.  The
    documents are identical to a single delivery and A's late ack is counted as a mismatch."""
    entities = [uuid.uuid4() for _ in range(3)]
    for i, e in enumerate(entities):
        put_search_row(conn, "book", e, f"text {i} €", 2)
    [add_event(conn, "search", "book", e, "upsert", 2) for e in entities]
    worker_a, worker_b = make_runner(), make_runner()
    events_a = worker_a.store.claim_batch(worker_a.conn, worker_a.owner, 10, 30)
    conn.execute("UPDATE search_outbox_events SET lease_until = now() - interval '1 second'")
    assert len(worker_b.store.reclaim_expired(worker_b.conn, 600, 3).to_pending) == 3
    drain(worker_b)
    single = {e: doc_state(es, es_index, e) for e in entities}
    late = worker_a.process_events(events_a)
    assert late.lost == 3 and late.done == 0
    assert worker_a.metrics.value("outbox_owner_mismatch_skips_total", projection="search") == 3
    assert worker_a.metrics.value("outbox_processed_total", projection="search", op="upsert") == 0
    assert {e: doc_state(es, es_index, e) for e in entities} == single
    assert {r["status"] for r in outbox_rows(conn, "search").values()} == {"done"}


def test_one_poison_row_does_not_sink_its_batch(conn, es, es_index, make_runner):
    """A deterministic exception for one entity: the batch is re-run row by row, that row is
    failed deterministic_exception, the others are done."""
    entities = [uuid.uuid4() for _ in range(3)]
    for e in entities:
        put_search_row(conn, "book", e, "t", 1)
    ids = [add_event(conn, "search", "book", e, "upsert", 1) for e in entities]
    runner = make_runner(OUTBOX_FAULT_INJECT_KIND="deterministic", OUTBOX_FAULT_INJECT_ENTITY_ID=str(entities[1]))
    [report] = drain(runner)
    assert (report.done, report.failed) == (2, 1)
    rows = outbox_rows(conn, "search")
    assert (rows[ids[1]]["status"], rows[ids[1]]["error_reason"]) == ("failed", "deterministic_exception")
    assert rows[ids[0]]["status"] == rows[ids[2]]["status"] == "done"
