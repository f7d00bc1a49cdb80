"""The chronicle sink with an in-process runner: entries and acks in one transaction."""
import uuid

from tests.support.outbox_helpers import (
    add_block, add_chronicle_event, add_event, chronicle_snapshot, drain, make_book, outbox_rows,
)


def test_entries_are_projected_with_the_contract_summary(conn, chronicle_runner):
    _, book = make_book(conn)
    block = add_block(conn, book)
    e1 = add_chronicle_event(conn, book, "book_created", payload={"title": "A book"})
    e2 = add_chronicle_event(conn, book, "block_added", block_id=block)
    runner = chronicle_runner(CHRONICLE_PROJECTION_VERSION="3")
    [report] = drain(runner)
    assert report.done == 2
    rows = dict((r[0], r) for r in conn.execute("SELECT id, summary, projection_version, payload FROM chronicle_entries"))
    assert rows[e1][1] == f"book_created (book={book})" and rows[e1][2] == 3 and rows[e1][3] == {"title": "A book"}
    assert rows[e2][1] == f"block_added (book={book}, block={block})"
    assert {r["status"] for r in outbox_rows(conn, "chronicle").values()} == {"done"}


def test_chronicle_exactly_once_same_batch_twice_is_byte_identical(conn, chronicle_runner):
    """Chronicle exactly-once and C04: the same batch delivered again (re-claimed) leaves every
    chronicle_entries column byte-identical, updated_at included."""
    _, book = make_book(conn)
    for i in range(5):
        add_chronicle_event(conn, book, "block_added", payload={"n": i, "text": "é€😀"})
    runner = chronicle_runner()
    drain(runner)
    once = chronicle_snapshot(conn)
    assert len(once) == 5
    conn.execute("UPDATE chronicle_outbox_events SET status = 'pending', owner = NULL")  # redelivery
    [again] = drain(runner)
    assert again.done == 5
    assert chronicle_snapshot(conn) == once
    assert runner.metrics.value("outbox_idempotent_noop_total", projection="chronicle", op="upsert",
                                reason="unchanged") == 5


def test_C04_lost_lease_redelivery_counts_a_mismatch_and_changes_nothing(conn, chronicle_runner):
    _, book = make_book(conn)
    for i in range(3):
        add_chronicle_event(conn, book, "book_renamed", payload={"i": i})
    worker_a, worker_b = chronicle_runner(), chronicle_runner()
    events_a = worker_a.store.claim_batch(worker_a.conn, worker_a.owner, 10, 30)
    conn.execute("UPDATE chronicle_outbox_events SET lease_until = now() - interval '1 second'")
    worker_b.store.reclaim_expired(worker_b.conn, 600, 3)
    drain(worker_b)
    single = chronicle_snapshot(conn)
    late = worker_a.process_events(events_a)
    assert (late.lost, late.done) == (3, 0)
    assert worker_a.metrics.value("outbox_owner_mismatch_skips_total", projection="chronicle") == 3
    assert chronicle_snapshot(conn) == single


def test_a_lower_projection_version_never_overwrites_a_higher_one(conn, chronicle_runner):
    _, book = make_book(conn)
    event_id = add_chronicle_event(conn, book, "book_created")
    drain(chronicle_runner(CHRONICLE_PROJECTION_VERSION="2"))
    before = chronicle_snapshot(conn)
    conn.execute("UPDATE chronicle_events SET payload = '{\"changed\": true}' WHERE id = %s", (event_id,))
    add_event(conn, "chronicle", "chronicle_event", event_id, "upsert", 1)
    drain(chronicle_runner(CHRONICLE_PROJECTION_VERSION="1"))
    assert chronicle_snapshot(conn) == before
    add_event(conn, "chronicle", "chronicle_event", event_id, "upsert", 1)
    drain(chronicle_runner(CHRONICLE_PROJECTION_VERSION="2"))
    assert conn.execute("SELECT payload FROM chronicle_entries WHERE id = %s", (event_id,)).fetchone()[0] == {"changed": True}


def test_an_event_that_is_gone_removes_its_entry(conn, chronicle_runner):
    _, book = make_book(conn)
    keep = add_chronicle_event(conn, book, "book_created")
    runner = chronicle_runner()
    drain(runner)
    other_lib, other_book = make_book(conn, "to be deleted")
    gone = add_chronicle_event(conn, other_book, "book_created")
    drain(runner)
    conn.execute("DELETE FROM books WHERE id = %s", (other_book,))  # cascades to its chronicle events
    delete_id = add_event(conn, "chronicle", "chronicle_event", gone, "delete", 2)
    drain(runner)
    ids = {r[0] for r in conn.execute("SELECT id FROM chronicle_entries")}
    assert ids == {keep}
    assert outbox_rows(conn, "chronicle")[delete_id]["status"] == "done"


def test_entries_and_acks_commit_together(conn, chronicle_runner):
    """A failure inside the batch transaction leaves neither entries nor acks behind."""
    _, book = make_book(conn)
    event_id = add_chronicle_event(conn, book, "book_created")
    runner = chronicle_runner(OUTBOX_FAULT_INJECT_KIND="transient", OUTBOX_MAX_ATTEMPTS="5")
    report = runner.run_once()
    assert report.retried == 1
    assert conn.execute("SELECT count(*) FROM chronicle_entries").fetchone()[0] == 0
    row = next(iter(outbox_rows(conn, "chronicle").values()))
    assert (row["status"], row["error_reason"]) == ("pending", "unknown_exception")
    assert uuid.UUID(str(event_id))
