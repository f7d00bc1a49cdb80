"""The chronicle worker's one-statement batch (runner.run_in_claim, outbox_chronicle_deliver_in_claim):
claim, projection and settle in one transaction, against the real PostgreSQL.

It must keep every promise of the durable claim it replaces in the loop: oldest rows first, the
same entries and the same exactly-once effect, suspects (rows reclaimed before) still claimed alone
and durably (C12), and a failing statement that leaves nothing behind, after which the ordinary
path finds the row at fault."""
from tests.support.outbox_helpers import (
    RunnerThread, add_chronicle_event, chronicle_snapshot, make_book, outbox_rows, settings_for,
    status_counts, wait_until,
)
from wordloom.outbox.worker import build_runner


def test_one_statement_claims_the_oldest_rows_projects_and_settles_them(conn, chronicle_runner):
    _, book = make_book(conn)
    events = [add_chronicle_event(conn, book, "block_added", payload={"n": i}) for i in range(7)]
    runner = chronicle_runner(OUTBOX_BATCH_SIZE="5")
    assert runner.in_claim and runner.pipeline is None
    first = runner.run_in_claim()
    assert (first.claimed, first.done, first.failed, first.lost) == (5, 5, 0, 0)
    rows = outbox_rows(conn, "chronicle")
    done = {r["entity_id"] for r in rows.values() if r["status"] == "done"}
    assert done == set(events[:5])  # oldest first
    entries = {r[0] for r in conn.execute("SELECT id FROM chronicle_entries")}
    assert entries == set(events[:5])  # each done row has its entry, in the same transaction
    settled = conn.execute("SELECT owner, processing_started_at <= processed_at, lease_until FROM chronicle_outbox_events"
                           " WHERE status = 'done'").fetchall()
    assert settled == [(runner.owner, True, None)] * 5
    second = runner.run_in_claim()
    assert (second.claimed, second.done) == (2, 2)
    assert runner.run_in_claim().claimed == 0
    assert status_counts(conn, "chronicle") == {"done": 7}
    assert runner.metrics.value("outbox_processed_total", projection="chronicle", op="upsert") == 7


def test_the_same_rows_twice_leave_byte_identical_entries_and_count_noops(conn, chronicle_runner):
    """C04 on this path: a redelivery rewrites nothing (updated_at included)."""
    _, book = make_book(conn)
    for i in range(4):
        add_chronicle_event(conn, book, "block_added", payload={"n": i, "text": "é€😀"})
    runner = chronicle_runner()
    assert runner.run_in_claim().done == 4
    once = chronicle_snapshot(conn)
    conn.execute("UPDATE chronicle_outbox_events SET status = 'pending', owner = NULL")
    again = runner.run_in_claim()
    assert again.done == 4 and chronicle_snapshot(conn) == once
    assert runner.metrics.value("outbox_idempotent_noop_total", projection="chronicle", op="upsert",
                                reason="unchanged") == 4


def test_an_entry_whose_event_is_gone_is_removed(conn, chronicle_runner):
    _, book = make_book(conn)
    event = add_chronicle_event(conn, book, "book_created")
    runner = chronicle_runner()
    runner.run_in_claim()
    conn.execute("DELETE FROM chronicle_events WHERE id = %s", (event,))
    conn.execute("INSERT INTO chronicle_outbox_events (id, entity_type, entity_id, op) "
                 "VALUES (gen_random_uuid(), 'chronicle_event', %s, 'delete')", (event,))
    report = runner.run_in_claim()
    assert report.done == 1
    assert conn.execute("SELECT count(*) FROM chronicle_entries").fetchone()[0] == 0


def test_a_suspect_is_still_claimed_alone_and_durably(conn, chronicle_runner):
    """C12: a row reclaimed before may be one that kills its worker; it gets the lease-holding
    claim, alone, so a crash is counted by the next reclaim."""
    _, book = make_book(conn)
    add_chronicle_event(conn, book, "a")
    suspect = add_chronicle_event(conn, book, "b")
    conn.execute("UPDATE chronicle_outbox_events SET reclaim_count = 1 WHERE entity_id = %s", (suspect,))
    runner = chronicle_runner()
    report = runner.run_in_claim()
    assert report.suspect and report.claimed == 1
    assert {r["entity_id"]: r["status"] for r in outbox_rows(conn, "chronicle").values()}[suspect] == "done"
    assert status_counts(conn, "chronicle") == {"done": 1, "pending": 1}


def test_a_failing_statement_changes_nothing_and_the_ordinary_path_isolates_the_row(conn, chronicle_runner):
    """A row that makes the projection fail (here a trigger refuses one entry with a data error):
    the one-statement batch rolls back whole, the batch is re-run through the durable claim, which
    fails that row alone; the others are projected."""
    _, book = make_book(conn)
    good = [add_chronicle_event(conn, book, "fine", payload={"n": i}) for i in range(3)]
    bad = add_chronicle_event(conn, book, "poison")
    conn.execute(f"""
        CREATE FUNCTION refuse_poison() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            IF NEW.id = '{bad}' THEN RAISE EXCEPTION 'poison entry' USING ERRCODE = '22023'; END IF;
            RETURN NEW;
        END $$;
        CREATE TRIGGER refuse_poison BEFORE INSERT ON chronicle_entries FOR EACH ROW EXECUTE FUNCTION refuse_poison();
    """)
    runner = chronicle_runner()
    report = runner.run_in_claim()
    assert report.claimed == 4 and report.done == 3
    statuses = {r["entity_id"]: (r["status"], r["error_reason"]) for r in outbox_rows(conn, "chronicle").values()}
    assert {statuses[e][0] for e in good} == {"done"}
    assert statuses[bad][0] in ("pending", "failed") and statuses[bad][1]  # retried or failed, with its reason
    assert {r[0] for r in conn.execute("SELECT id FROM chronicle_entries")} == set(good)


def test_fault_experiments_keep_the_durable_claim(chronicle_runner):
    assert not chronicle_runner(OUTBOX_FAULT_INJECT_KIND="deterministic").in_claim
    assert not chronicle_runner(OUTBOX_DELIVER_IN_CLAIM="0").in_claim
    assert chronicle_runner().in_claim


def test_the_worker_loop_drains_through_it(conn, db_url):
    _, book = make_book(conn)
    ids = [add_chronicle_event(conn, book, "e", payload={"n": i}) for i in range(120)]
    runner = build_runner(settings_for("chronicle", db_url, OUTBOX_POLL_INTERVAL_SECONDS="0.1"))
    with RunnerThread(runner):
        wait_until(lambda: status_counts(conn, "chronicle") == {"done": 120}, 15, message="drained")
    assert {r[0] for r in conn.execute("SELECT id FROM chronicle_entries")} == set(ids)
    assert runner.metrics.value("outbox_processed_total", projection="chronicle", op="upsert") == 120


def test_suspects_are_looked_for_once_a_second_and_at_once_after_this_workers_reclaim(conn, chronicle_runner, monkeypatch):
    """claim_suspect spares the query on most batches: a suspect another worker's reclaim made
    waits until the next look (at most SUSPECT_LOOK_SECONDS), never in a clean batch; one this
    worker's own reclaim made is taken before the next batch."""
    import wordloom.outbox.runner as runner_module

    _, book = make_book(conn)
    add_chronicle_event(conn, book, "first")
    runner = chronicle_runner()
    assert runner.run_in_claim().done == 1  # looked for suspects: none
    by_another = add_chronicle_event(conn, book, "reclaimed elsewhere")
    conn.execute("UPDATE chronicle_outbox_events SET reclaim_count = 1 WHERE entity_id = %s", (by_another,))
    assert runner.run_in_claim().claimed == 0  # not due to look yet, and the clean claim passes it by
    monkeypatch.setattr(runner_module, "SUSPECT_LOOK_SECONDS", 0.0)
    report = runner.run_in_claim()
    assert report.suspect and report.claimed == 1
    monkeypatch.setattr(runner_module, "SUSPECT_LOOK_SECONDS", 3600.0)
    assert runner.run_in_claim().claimed == 0  # looked (none left): the clock starts again
    mine = add_chronicle_event(conn, book, "held by a dead worker")
    conn.execute("UPDATE chronicle_outbox_events SET status = 'processing', owner = 'dead:1',"
                 " lease_until = now() - interval '1 minute', processing_started_at = now() - interval '2 minutes'"
                 " WHERE entity_id = %s", (mine,))
    runner._last_reclaim = float("-inf")
    runner._maybe_reclaim()
    report = runner.run_in_claim()
    assert report.suspect and report.claimed == 1
    assert status_counts(conn, "chronicle") == {"done": 3}
