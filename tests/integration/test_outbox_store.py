"""OutboxStore against the real PostgreSQL: the row life of CONTRACT.md section 2."""
import uuid

import psycopg
import pytest

from tests.support.outbox_helpers import add_event, outbox_rows
from wordloom.outbox.retry import RetryPolicy
from wordloom.outbox.store import FailedRow, OutboxStore


@pytest.fixture(params=["search", "chronicle"])
def store(request):
    return OutboxStore(request.param)


def seed(conn, store, n):
    return [add_event(conn, store.projection, "book", uuid.uuid4(), "upsert", 1) for _ in range(n)]


def test_claim_then_done(conn, store):
    ids = seed(conn, store, 3)
    events = store.claim_batch(conn, "w1", 10, 30)
    assert [e.id for e in events] == ids  # oldest first
    row = outbox_rows(conn, store.projection)[ids[0]]
    assert row["status"] == "processing" and row["owner"] == "w1"
    assert row["lease_until"] > row["processing_started_at"]
    assert store.ack_done(conn, "w1", ids) == set(ids)
    rows = outbox_rows(conn, store.projection)
    assert {r["status"] for r in rows.values()} == {"done"}
    assert all(r["processed_at"] is not None and r["lease_until"] is None for r in rows.values())
    assert store.claim_batch(conn, "w1", 10, 30) == []


def test_two_claimers_never_get_the_same_row(db_url, conn, store):
    seed(conn, store, 10)
    with psycopg.connect(db_url) as other:  # holds its claim open: SKIP LOCKED must pass it by
        first = store.claim_batch(other, "w2", 4, 30)
        second = store.claim_batch(conn, "w1", 100, 30)
        other.commit()
    assert len(first) == 4 and len(second) == 6
    assert not {e.id for e in first} & {e.id for e in second}


def test_acks_are_guarded_by_owner_and_lease(conn, store):
    ids = seed(conn, store, 2)
    store.claim_batch(conn, "w1", 10, 30)
    assert store.ack_done(conn, "intruder", ids) == set()
    # an expired lease is a lost lease, even before anyone reclaimed the row
    conn.execute(f"UPDATE {store.table} SET lease_until = now() - interval '1 second' WHERE id = %s", (ids[0],))
    assert store.ack_done(conn, "w1", ids) == {ids[1]}
    assert store.mark_failed(conn, "w1", [FailedRow(ids[0], "es_4xx", "x")]) == set()
    assert outbox_rows(conn, store.projection)[ids[0]]["status"] == "processing"


def test_retry_then_failed_after_max_attempts(conn, store):
    """retry -> failed: attempts grow, next_retry_at in the future by the policy, then terminal."""
    [event_id] = seed(conn, store, 1)
    policy = RetryPolicy(base_seconds=0, cap_seconds=0, max_attempts=3)
    for attempt in range(3):
        [event] = store.claim_batch(conn, "w1", 10, 30)
        assert event.attempts == attempt
        decision = policy.decide("es_5xx", event.attempts)
        row = FailedRow(event.id, "es_5xx", "503 from the server", decision.delay_seconds if decision.retry else None)
        if decision.retry:
            assert store.schedule_retry(conn, "w1", [row]) == {event.id}
            r = outbox_rows(conn, store.projection)[event_id]
            assert r["status"] == "pending" and r["owner"] is None and r["error_reason"] == "es_5xx"
        else:
            assert store.mark_failed(conn, "w1", [row]) == {event.id}
    r = outbox_rows(conn, store.projection)[event_id]
    assert (r["status"], r["attempts"], r["error_reason"]) == ("failed", 3, "es_5xx")
    assert store.claim_batch(conn, "w1", 10, 30) == []  # only replay brings it back


def test_a_row_waits_for_its_retry_time(conn, store):
    [event_id] = seed(conn, store, 1)
    store.claim_batch(conn, "w1", 10, 30)
    store.schedule_retry(conn, "w1", [FailedRow(event_id, "es_429", "busy", 60.0)])
    assert store.claim_batch(conn, "w1", 10, 30) == []
    conn.execute(f"UPDATE {store.table} SET next_retry_at = now() - interval '1 ms'")
    assert [e.id for e in store.claim_batch(conn, "w1", 10, 30)] == [event_id]


def test_C12_reclaim_counts_attempts_and_gives_up_after_max_reclaims(conn, store):
    """C12 (store level; the process-kill version is in test_worker_process.py): a row whose holder
    keeps dying is reclaimed, with an attempt counted each time, then failed reclaim_exhausted."""
    [event_id] = seed(conn, store, 1)
    for n in range(1, 4):
        if n > 1:
            # once reclaimed the row is a suspect: clean claims pass it by, suspect claims take it alone
            assert store.claim_batch(conn, "clean", 10, 30) == []
        assert [e.id for e in store.claim_batch(conn, f"crashing-{n}", 10, 30, suspects=n > 1)] == [event_id]
        assert store.reclaim_expired(conn, 600, max_reclaims=2).to_pending == []  # lease still live
        conn.execute(f"UPDATE {store.table} SET lease_until = now() - interval '1 second'")
        result = store.reclaim_expired(conn, 600, max_reclaims=2)
        row = outbox_rows(conn, store.projection)[event_id]
        assert row["attempts"] == n and row["reclaim_count"] == n and row["owner"] is None
        if n <= 2:
            assert result.to_pending == [event_id] and row["status"] == "pending"
        else:
            assert result.to_failed == [event_id] and result.failed_ops == ["upsert"]
            assert (row["status"], row["error_reason"]) == ("failed", "reclaim_exhausted")


def test_reclaim_takes_rows_processing_for_too_long_and_rows_without_lease(conn, store):
    a, b, c = seed(conn, store, 3)
    store.claim_batch(conn, "w1", 10, 300)
    conn.execute(f"UPDATE {store.table} SET processing_started_at = now() - interval '1 hour' WHERE id = %s", (a,))
    conn.execute(f"UPDATE {store.table} SET lease_until = NULL, processing_started_at = NULL WHERE id = %s", (b,))
    result = store.reclaim_expired(conn, max_processing_seconds=60, max_reclaims=3)
    assert set(result.to_pending) == {a, b}
    assert outbox_rows(conn, store.projection)[c]["status"] == "processing"


def test_release_owned_returns_only_my_rows_without_an_attempt(conn, store):
    seed(conn, store, 4)
    mine = store.claim_batch(conn, "me", 2, 30)
    theirs = store.claim_batch(conn, "them", 2, 30)
    assert store.release_owned(conn, "me") == {e.id for e in mine}
    rows = outbox_rows(conn, store.projection)
    assert all(rows[e.id]["status"] == "pending" and rows[e.id]["attempts"] == 0 for e in mine)
    assert all(rows[e.id]["status"] == "processing" for e in theirs)


def test_backlog_stats_count_pending_and_processing_not_failed(conn, store):
    ids = seed(conn, store, 5)
    store.claim_batch(conn, "w1", 2, 30)
    conn.execute(f"UPDATE {store.table} SET status = 'failed' WHERE id = %s", (ids[4],))
    stats = store.backlog_stats(conn)
    assert (stats.lag, stats.inflight, stats.failed, stats.stuck) == (4, 2, 1, 0)
    assert stats.oldest_age_seconds >= 0
    conn.execute(f"UPDATE {store.table} SET status = 'done' WHERE status <> 'failed'")
    drained = store.backlog_stats(conn)
    assert (drained.lag, drained.oldest_age_seconds, drained.failed) == (0, 0.0, 1)
