"""The worker's pipeline (outbox/pipeline.py) against real PostgreSQL and the real search server:
the next batch is claimed and read while the previous one is at Elasticsearch.

- the overlap really happens, and an entity changed in many consecutive batches ends at its
  newest version with every row done (two batches in flight share entities: the locks order them);
- a batch that fails at the sink while the next batch, already begun, holds a lock on one of its
  entities: no deadlock, the next batch lands, the failing batch is re-run row by row and only the
  broken row fails;
- stop() with two batches in flight: both are delivered and acked, nothing is left processing;
- OUTBOX_PIPELINE=0 keeps one batch at a time.
"""
import threading
import time
import uuid

import pytest

from tests.support.outbox_helpers import (
    RunnerThread, add_event, es_doc, outbox_rows, put_search_row, settings_for, status_counts, wait_until,
)
from wordloom.outbox.worker import build_runner
from wordloom.search.index import document_id


def make(db_url, stack, es_index, after_state_read=None, **env):
    env.setdefault("OUTBOX_POLL_INTERVAL_SECONDS", "0.05")
    return build_runner(settings_for("search", db_url, stack.elastic_url, es_index, **env),
                        after_state_read=after_state_read)


class SinkWithABug:
    """The real search sink, except that delivering a batch that holds `bad` raises (a bug in the
    sink for one row, after the batch's locks were taken)."""

    projection = "search"

    def __init__(self, inner, bad):
        self.inner, self.bad = inner, bad

    def prepare(self, conn, events):
        return self.inner.prepare(conn, events)

    def complete(self, conn, events, prepared):
        if any(e.entity_id == self.bad for e in events):
            raise ValueError("the sink cannot handle this row")
        return self.inner.complete(conn, events, prepared)


@pytest.mark.parametrize("depth", ["1", "2", "3"])
def test_batches_overlap_and_an_entity_changed_in_every_batch_ends_at_its_newest_version(
        conn, es, stack, db_url, es_index, depth):
    hot = uuid.uuid4()
    others = []
    for version in range(1, 41):  # 40 batches of 5: the hot entity is in every one of them
        put_search_row(conn, "book", hot, f"hot v{version}", version)
        add_event(conn, "search", "book", hot, "upsert", version)
        for _ in range(4):
            other = uuid.uuid4()
            put_search_row(conn, "block", other, "text", 1)
            add_event(conn, "search", "block", other, "upsert", 1)
            others.append(other)
    overlapped = []
    runner = None

    def seen(events):
        overlapped.append(len(runner.pipeline.in_flight))

    runner = make(db_url, stack, es_index, after_state_read=seen, OUTBOX_BATCH_SIZE="5", OUTBOX_PIPELINE_DEPTH=depth)
    with RunnerThread(runner):
        wait_until(lambda: status_counts(conn, "search").get("done") == 200, timeout=60, message="all done")
    assert status_counts(conn, "search") == {"done": 200}
    assert any(overlapped), "no batch was read while another was in flight"
    assert max(overlapped) <= int(depth)
    version, source = es_doc(es, es_index, document_id("book", hot))
    assert version == 40 and source["text"] == "hot v40"
    assert all(es_doc(es, es_index, document_id("block", o))[0] == 1 for o in others)


@pytest.mark.parametrize("depth", ["1", "2"])
def test_a_batch_failing_in_flight_is_rerun_row_by_row_after_the_next_batch_that_shares_its_entity(
        conn, es, stack, db_url, es_index, depth):
    shared, bad = uuid.uuid4(), uuid.uuid4()
    rows = [("book", shared, 1), ("block", uuid.uuid4(), 1), ("block", bad, 1),        # batch 1
            ("book", shared, 2), ("block", uuid.uuid4(), 1), ("block", uuid.uuid4(), 1)]  # batch 2
    ids = []
    for entity_type, entity_id, version in rows:
        put_search_row(conn, entity_type, entity_id, f"{entity_type} v{version}", version)
        ids.append(add_event(conn, "search", entity_type, entity_id, "upsert", version))
        time.sleep(0.002)  # distinct created_at: the claim order is the insert order
    runner = make(db_url, stack, es_index, OUTBOX_BATCH_SIZE="3", OUTBOX_PIPELINE_DEPTH=depth)
    runner.sink = SinkWithABug(runner.sink, bad)
    with RunnerThread(runner):
        wait_until(lambda: sum(status_counts(conn, "search").get(s, 0) for s in ("done", "failed")) == 6,
                   timeout=30, message="every row settled (a deadlock would hang here)")
    after = outbox_rows(conn, "search")
    assert [after[i]["status"] for i in ids] == ["done", "done", "failed", "done", "done", "done"]
    assert after[ids[2]]["error_reason"] == "deterministic_exception"
    assert es_doc(es, es_index, document_id("book", shared))[0] == 2
    assert es_doc(es, es_index, document_id("block", bad)) is None  # never delivered
    m = runner.metrics
    assert m.value("outbox_processed_total", projection="search", op="upsert") == 5
    assert m.value("outbox_terminal_failed_total", projection="search", op="upsert",
                   reason="deterministic_exception") == 1


def test_stop_with_two_batches_in_flight_delivers_both_and_leaves_nothing_processing(
        conn, es, stack, db_url, es_index):
    entered = threading.Event()
    release = threading.Event()
    runner = None

    def hold_second_batch(events):
        if runner.pipeline.in_flight and not entered.is_set():
            entered.set()        # batch 2 is read while batch 1 is at Elasticsearch ...
            release.wait(10)     # ... and stop() arrives right now

    runner = make(db_url, stack, es_index, after_state_read=hold_second_batch, OUTBOX_BATCH_SIZE="4")
    for _ in range(12):
        entity = uuid.uuid4()
        put_search_row(conn, "block", entity, "t", 1)
        add_event(conn, "search", "block", entity, "upsert", 1)
    thread = threading.Thread(target=runner.run, daemon=True)
    thread.start()
    assert entered.wait(20), "the pipeline never had two batches at once"
    runner.stop()
    release.set()
    thread.join(20)
    assert not thread.is_alive()
    counts = status_counts(conn, "search")
    assert counts.get("processing", 0) == 0
    assert counts.get("done", 0) >= 8 and counts.get("done", 0) + counts.get("pending", 0) == 12
    es.indices.refresh(index=es_index)
    assert es.count(index=es_index)["count"] == counts["done"]


def test_pipeline_off_never_reads_a_batch_while_another_is_in_flight(conn, stack, db_url, es_index):
    for _ in range(20):
        entity = uuid.uuid4()
        put_search_row(conn, "block", entity, "t", 1)
        add_event(conn, "search", "block", entity, "upsert", 1)
    runner = make(db_url, stack, es_index, OUTBOX_BATCH_SIZE="4", OUTBOX_PIPELINE="0")
    assert runner.pipeline is None
    with RunnerThread(runner):
        wait_until(lambda: status_counts(conn, "search").get("done") == 20, timeout=30, message="all done")
