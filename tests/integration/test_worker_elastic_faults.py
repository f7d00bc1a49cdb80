"""The search worker against real Elasticsearch faults: the server stopped (C01), and a loopback
proxy in front of the real server answering 429 per item (C07), 413 (C08, C09), 503 to a whole
request (C17), slow answers (lease renewal, liveness) and closed ports (readiness).  No mock of
the Elasticsearch client: every answer the worker sees went over HTTP, and whatever the proxy
says was written, was written on the real server.
"""
from __future__ import annotations

import logging
import statistics
import time
import uuid

import pytest
from elasticsearch import Elasticsearch

from tests.support.convergence import assert_es_matches_search_index, outbox_settled, seed_books
from tests.support.es_proxy import Answer, ESProxy, RejectItems, Slow, body_over, document_write, is_bulk
from tests.support.outbox_helpers import (
    RunnerThread, add_event, drain, es_doc, opened_runners, outbox_rows, put_search_row, remove_search_row,
    settings_for, status_counts, wait_until,
)
from wordloom import domain
from wordloom.devstack.elastic import EmbeddedElastic
from wordloom.devstack.ports import free_port
from wordloom.outbox.store import OutboxStore
from wordloom.outbox.worker import build_runner
from wordloom.search.index import document_id

UNICODE_TEXT = "é€🚀漢字ß" * 40  # 240 characters, 680 bytes of UTF-8


@pytest.fixture
def proxy(stack):
    with ESProxy(stack.elastic_url) as p:
        yield p


@pytest.fixture
def make_runner(db_url, es_index):
    with opened_runners() as open_runner:
        yield lambda es_url, **env: open_runner(settings_for("search", db_url, es_url, es_index, **env))


def retry_delays(conn, ids) -> dict:
    """id -> seconds between the retry decision and next_retry_at (both database clock)."""
    rows = conn.execute("SELECT id, extract(epoch FROM next_retry_at - updated_at)::float8"
                        " FROM search_outbox_events WHERE id = ANY(%s)", (list(ids),)).fetchall()
    return dict(rows)


def make_due(conn) -> None:
    conn.execute("UPDATE search_outbox_events SET next_retry_at = now() WHERE status = 'pending'")


# -- C01 ------------------------------------------------------------------------------------------
def test_C01_deletes_committed_while_elasticsearch_is_down_arrive_after_it_returns(db_url, conn, tmp_path):
    """C01: a test-owned search server is stopped (its process ends); block deletes, a book delete
    (book + its blocks), updates and creates are committed meanwhile.  The worker keeps retrying
    (es_connect, never failed: an outage does not spend the attempt budget), stays alive, and when
    the server is started again on the same port every change lands: Elasticsearch == search_index."""
    server = EmbeddedElastic(tmp_path / "es", free_port())
    server.start()
    es = Elasticsearch(server.url())
    index = f"wl-c01-{uuid.uuid4().hex[:8]}"
    runner = build_runner(settings_for("search", db_url, server.url(), index, OUTBOX_MAX_ATTEMPTS="3",
                                       OUTBOX_BASE_BACKOFF_SECONDS="0.05", OUTBOX_MAX_BACKOFF_SECONDS="0.3",
                                       OUTBOX_POLL_INTERVAL_SECONDS="0.1"))
    import random
    rng = random.Random(1)
    try:
        with RunnerThread(runner):
            books, blocks = seed_books(conn, rng, 30, n_books=3)
            wait_until(lambda: outbox_settled(conn), 15, message="initial indexing")
            assert assert_es_matches_search_index(conn, es, index, "before the outage") == 33

            server.stop()
            assert not server.alive()
            for block in blocks[:8]:
                domain.soft_delete_block(conn, block)
            domain.soft_delete_book(conn, books[2])  # the book and its 10 blocks leave search
            for block in blocks[10:14]:
                domain.update_block(conn, block, content=f"updated while down {block}")
            library = conn.execute("SELECT library_id FROM books WHERE id = %s", (books[0],)).fetchone()[0]
            domain.create_book_with_blocks(conn, library, "Written while down", ["new 1", "new 2"])
            # Several attempts fail with es_connect, more than OUTBOX_MAX_ATTEMPTS, none ends failed.
            wait_until(lambda: conn.execute("SELECT min(attempts) FROM search_outbox_events"
                                            " WHERE status <> 'done'").fetchone()[0] >= 4, 15,
                       message="attempts beyond the budget while the server is down")
            counts = status_counts(conn, "search")
            assert "failed" not in counts, counts
            reasons = {r[0] for r in conn.execute("SELECT DISTINCT error_reason FROM search_outbox_events"
                                                  " WHERE status = 'pending'")}
            assert reasons == {"es_connect"}
            pending_ops = {r[0] for r in conn.execute("SELECT DISTINCT op FROM search_outbox_events"
                                                      " WHERE status = 'pending'")}
            assert pending_ops == {"upsert", "delete"}
            assert runner.health.readiness()["ok"]  # Elasticsearch is not required for readiness here

            server.start()
            wait_until(lambda: outbox_settled(conn), 15, message="delivery after the server returned")
        assert status_counts(conn, "search") == {"done": sum(status_counts(conn, "search").values())}
        n = assert_es_matches_search_index(conn, es, index, "after the outage")
        assert n == 33 - 8 - 11 + 3
        for block in blocks[:8] + [b for b in blocks[20:30]]:
            assert es_doc(es, index, document_id("block", block)) is None
        m = runner.metrics
        assert m.value("outbox_retry_scheduled_total", projection="search", op="delete", reason="es_connect") > 0
        assert m.value("outbox_terminal_failed_total", projection="search", op="delete", reason="es_connect") == 0
    finally:
        es.close()
        server.stop()


# -- C07 ------------------------------------------------------------------------------------------
def test_C07_items_answered_429_alone_are_retried_with_jittered_exponential_backoff(conn, es, es_index, proxy,
                                                                                   make_runner):
    """C07: the proxy answers 429 for 25 of 40 items of each _bulk (HTTP 200, errors: true; only the
    other 15 reach the server).  Only those 25 rows are retried; the next requests carry exactly
    them; their delays are full-jitter draws under base * 2^attempt, growing round by round."""
    entities = [uuid.uuid4() for _ in range(40)]
    for e in entities:
        put_search_row(conn, "block", e, f"text {e}", 3)
    ids = {e: add_event(conn, "search", "block", e, "upsert", 3) for e in entities}
    rejected_entities = entities[::2] + entities[1:10:2]  # 20 + 5
    rejected_docs = {document_id("block", e) for e in rejected_entities}
    rejected_ids = {ids[e] for e in rejected_entities}
    proxy.add(RejectItems(ids=rejected_docs, status=429))
    runner = make_runner(proxy.url, OUTBOX_BASE_BACKOFF_SECONDS="1", OUTBOX_MAX_BACKOFF_SECONDS="60")

    windows = []
    for round_no in range(3):
        report = runner.run_once()
        expected_claim = 40 if round_no == 0 else 25
        assert report.claimed == expected_claim
        assert (report.done, report.retried, report.failed) == (expected_claim - 25, 25, 0)
        rows = outbox_rows(conn, "search")
        assert {i for i, r in rows.items() if r["status"] == "pending"} == rejected_ids
        assert all(rows[i]["attempts"] == round_no + 1 and rows[i]["error_reason"] == "es_429" for i in rejected_ids)
        bulk = proxy.bulk_records()[-1]
        assert set(bulk.ids) == (set(document_id("block", e) for e in entities) if round_no == 0 else rejected_docs)
        assert set(bulk.rejected) == rejected_docs
        delays = list(retry_delays(conn, rejected_ids).values())
        ceiling = 1.0 * 2 ** round_no
        assert all(-0.01 <= d <= ceiling + 0.01 for d in delays), (round_no, delays)
        assert len({round(d, 4) for d in delays}) >= 24, "retries must not share one instant"
        assert statistics.pstdev(delays) > ceiling * 0.15, delays  # uniform on [0, c] has sd c*0.29
        windows.append(max(delays))
        make_due(conn)
    assert windows[2] > 1.0, "the third round's window must be wider than the first's (exponential)"
    # The server state is truthful: rejected items were never written.
    assert all(es_doc(es, es_index, d) is None for d in rejected_docs)
    proxy.clear()
    drain(runner)
    assert status_counts(conn, "search") == {"done": 40}
    assert all(es_doc(es, es_index, document_id("block", e))[0] == 3 for e in entities)
    m = runner.metrics
    assert m.value("outbox_retry_scheduled_total", projection="search", op="upsert", reason="es_429") == 75
    assert m.value("outbox_es_bulk_item_failures_total", projection="search", op="upsert",
                   failure_class="es_429") == 75
    assert m.value("outbox_processed_total", projection="search", op="upsert") == 40


# -- C08 ------------------------------------------------------------------------------------------
def test_C08_413_splits_the_batch_and_a_single_oversize_document_fails_alone(conn, es, es_index, proxy,
                                                                            make_runner):
    """C08: the proxy answers 413 to any request body over 6,000 bytes (like http.max_content_length).
    The worker's one 30-item request is split until the parts fit; the one document that is too
    large on its own is failed es_4xx at its first attempt, every other row is done."""
    limit = 6000
    proxy.add(Answer(413, {"error": "Request Entity Too Large", "status": 413}), when=body_over(limit))
    entities = [uuid.uuid4() for _ in range(30)]
    big = entities[17]
    for e in entities:
        put_search_row(conn, "book", e, ("x" * 9000) if e == big else f"small text {e}", 1)
    ids = {e: add_event(conn, "search", "book", e, "upsert", 1) for e in entities}
    runner = make_runner(proxy.url)  # default byte budget (5 MiB): the server's limit is lower
    [report] = drain(runner)
    assert (report.done, report.failed, report.retried) == (29, 1, 0)
    rows = outbox_rows(conn, "search")
    assert (rows[ids[big]]["status"], rows[ids[big]]["error_reason"], rows[ids[big]]["attempts"]) == ("failed", "es_4xx", 1)
    assert "413" in rows[ids[big]]["error"]
    assert all(rows[ids[e]]["status"] == "done" for e in entities if e != big)
    bulks = proxy.bulk_records()
    assert bulks[0].status == 413 and len(bulks[0].ids) == 30  # the whole batch first
    assert all(r.size <= limit for r in bulks if r.status == 200)
    assert sorted(d for r in bulks if r.status == 200 for d in r.ids) == sorted(
        document_id("book", e) for e in entities if e != big)
    assert es_doc(es, es_index, document_id("book", big)) is None
    assert all(es_doc(es, es_index, document_id("book", e)) for e in entities if e != big)
    assert runner.metrics.value("outbox_es_bulk_requests_total", projection="search", result="split_413") >= 3


# -- C09 ------------------------------------------------------------------------------------------
def test_C09_bulk_chunks_are_sized_by_encoded_bytes_not_characters(conn, es, es_index, proxy, make_runner):
    """C09: 60 documents of é, €, emoji, CJK and ß (text and snippet: 440 characters, 1,250 bytes)
    with a 4,096-byte budget; the proxy answers 413 to anything larger.  No request exceeds the
    budget in bytes, none is refused, and every text arrives intact.  Counting characters instead
    would have sent about 2.5 times the budget per request."""
    budget = 4096
    proxy.add(Answer(413), when=body_over(budget))
    entities = [uuid.uuid4() for _ in range(60)]
    for e in entities:
        put_search_row(conn, "block", e, UNICODE_TEXT, 1)
        add_event(conn, "search", "block", e, "upsert", 1)
    assert len(UNICODE_TEXT.encode()) > 2.5 * len(UNICODE_TEXT)
    runner = make_runner(proxy.url, OUTBOX_BULK_MAX_BYTES=str(budget))
    drain(runner)
    bulks = proxy.bulk_records()
    assert bulks and all(r.status == 200 for r in bulks), [(r.status, r.size) for r in bulks]
    assert max(r.size for r in bulks) <= budget
    assert len(bulks) >= (60 * len(UNICODE_TEXT.encode())) // budget  # really chunked
    assert sum(len(r.ids) for r in bulks) == 60
    assert status_counts(conn, "search") == {"done": 60}
    assert all(es_doc(es, es_index, document_id("block", e))[1]["text"] == UNICODE_TEXT for e in entities)


# -- C17 ------------------------------------------------------------------------------------------
def test_C17_a_thousand_rows_failing_at_once_spread_their_retries(conn, proxy, make_runner):
    """C17 with a real failing request: 1,000 rows in one batch, the proxy answers 503 to the whole
    _bulk.  Every row is retried es_5xx, and their next_retry_at spread over the jitter window
    (attempts 5: [0, 16 s]) instead of coming back at one instant."""
    conn.execute("INSERT INTO search_outbox_events (id, entity_type, entity_id, op, event_version, attempts)"
                 " SELECT gen_random_uuid(), 'block', gen_random_uuid(), 'delete', 1, 5"
                 " FROM generate_series(1, 1000)")
    proxy.add(Answer(503), when=is_bulk)
    runner = make_runner(proxy.url, OUTBOX_BATCH_SIZE="1000", OUTBOX_BASE_BACKOFF_SECONDS="0.5",
                         OUTBOX_MAX_BACKOFF_SECONDS="30")
    report = runner.run_once()
    assert (report.claimed, report.retried) == (1000, 1000)
    rows = conn.execute("SELECT extract(epoch FROM next_retry_at - updated_at)::float8, error_reason, attempts"
                        " FROM search_outbox_events").fetchall()
    assert {(r[1], r[2]) for r in rows} == {("es_5xx", 6)}
    delays = [r[0] for r in rows]
    assert len({round(d, 3) for d in delays}) > 900
    assert min(delays) >= -0.01 and max(delays) <= 16.01
    buckets = [0] * 8
    for d in delays:
        buckets[min(int(d / 2.0), 7)] += 1
    assert min(buckets) > 80, buckets  # about 125 per 2-second slot
    # at most a handful of rows come due in any 100 ms: no stampede
    per_slot: dict[int, int] = {}
    for d in delays:
        per_slot[int(d * 10)] = per_slot.get(int(d * 10), 0) + 1
    assert max(per_slot.values()) < 25, max(per_slot.values())
    assert len(proxy.bulk_records()) == 1


# -- per-event mode (OUTBOX_USE_ES_BULK=0) -------------------------------------------------------------
def test_use_es_bulk_0_writes_one_document_per_request_with_the_same_classification(conn, es, es_index, proxy,
                                                                                  make_runner):
    """OUTBOX_USE_ES_BULK=0 (v3's per-event mode) is honoured: no _bulk request at all; external
    versions, 429 retried (only that row), stale upsert 409 = no-op, delete of a missing document
    404 = no-op; and a batch slower than its lease (each request answered 0.8 s late) keeps it."""
    fresh, stale, busy, gone = (uuid.uuid4() for _ in range(4))
    put_search_row(conn, "book", fresh, "fresh", 2)
    put_search_row(conn, "book", stale, "stale row", 2)
    put_search_row(conn, "book", busy, "busy", 1)
    remove_search_row(conn, "book", gone, 3)
    es.index(index=es_index, id=document_id("book", stale), document={"text": "newer"}, version=7,
             version_type="external")
    ids = {name: add_event(conn, "search", "book", e, op, v) for name, e, op, v in
           [("fresh", fresh, "upsert", 2), ("stale", stale, "upsert", 2), ("busy", busy, "upsert", 1),
            ("gone", gone, "delete", 3)]}
    proxy.add(Answer(429), when=lambda req: document_write(req) and str(busy) in req.path, times=1)
    proxy.add(Slow(after=0.8), when=document_write)
    runner = make_runner(proxy.url, OUTBOX_USE_ES_BULK="0", OUTBOX_LEASE_SECONDS="1")
    runner.lease_keeper.start()
    other = OutboxStore("search")
    reclaimed = []
    done = {}
    import threading

    t = threading.Thread(target=lambda: done.setdefault("report", runner.run_once()))
    t.start()
    while t.is_alive():
        result = other.reclaim_expired(conn, max_processing_seconds=600, max_reclaims=3)
        reclaimed += result.to_pending + result.to_failed
        time.sleep(0.1)
    t.join()
    report = done["report"]
    assert reclaimed == [] and report.lost == 0
    assert (report.done, report.retried) == (3, 1)
    rows = outbox_rows(conn, "search")
    assert (rows[ids["busy"]]["status"], rows[ids["busy"]]["error_reason"]) == ("pending", "es_429")
    assert all(rows[ids[n]]["status"] == "done" for n in ("fresh", "stale", "gone"))
    assert not proxy.bulk_records()
    assert es_doc(es, es_index, document_id("book", fresh))[0] == 2
    assert es_doc(es, es_index, document_id("book", stale))[0] == 7  # never regressed
    m = runner.metrics
    assert m.value("outbox_idempotent_noop_total", projection="search", op="upsert", reason="es_409") == 1
    assert m.value("outbox_idempotent_noop_total", projection="search", op="delete", reason="es_404") == 1
    make_due(conn)
    proxy.clear()
    drain(runner)
    assert es_doc(es, es_index, document_id("book", busy))[0] == 1


# -- watchdog ----------------------------------------------------------------------------------------
def test_watchdog_flags_a_backlog_growing_while_nothing_is_delivered(db_url, conn, es_index, proxy, caplog):
    """The search server becomes unreachable (the proxy stops listening) while rows keep arriving:
    after OUTBOX_HEALTH_MAX_SILENCE_SECONDS without a delivery the watchdog logs one line and sets
    outbox_backlog_stalled 1; once deliveries resume it goes back to 0."""
    runner = build_runner(settings_for("search", db_url, proxy.url, es_index, OUTBOX_HEALTH_MAX_SILENCE_SECONDS="0.5",
                                       OUTBOX_DB_PING_INTERVAL_SECONDS="0.1", OUTBOX_BASE_BACKOFF_SECONDS="0.05",
                                       OUTBOX_MAX_BACKOFF_SECONDS="0.2", OUTBOX_POLL_INTERVAL_SECONDS="0.1"))
    stalled = lambda: runner.metrics.value("outbox_backlog_stalled", projection="search")  # noqa: E731
    caplog.set_level(logging.INFO, logger="wordloom.outbox.monitor")
    with RunnerThread(runner):
        e = uuid.uuid4()
        put_search_row(conn, "book", e, "t", 1)
        add_event(conn, "search", "book", e, "upsert", 1)
        wait_until(lambda: status_counts(conn, "search") == {"done": 1}, 10, message="first delivery")
        proxy.stop_listening()
        deadline = time.monotonic() + 10
        v = 1
        while not stalled():
            assert time.monotonic() < deadline, "watchdog never fired"
            v += 1
            put_search_row(conn, "book", e, "t", v)
            add_event(conn, "search", "book", e, "upsert", v)
            time.sleep(0.1)
        assert sum("watchdog: backlog grows" in r.getMessage() for r in caplog.records) == 1
        proxy.start_listening()
        wait_until(lambda: outbox_settled(conn), 15, message="backlog drained")
        wait_until(lambda: stalled() == 0, 5, message="watchdog cleared")
    assert any("watchdog: backlog moving again" in r.getMessage() for r in caplog.records)
