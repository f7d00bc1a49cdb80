"""The claim reads only the rows it takes: an index scan in (created_at, id) order, no sort.

The bench found the first claim query walking and sorting the whole pending set for every batch
(O(backlog): 32 ms per claim at 100k pending).  This pins the plan that fixed it.
"""
import psycopg
import pytest

from wordloom.db.queries import query


@pytest.mark.parametrize("projection,name,index", [
    ("search", "outbox_claim_batch", "search_outbox_claim_clean_idx"),
    ("search", "outbox_claim_suspects", "search_outbox_claim_suspect_idx"),
    ("chronicle", "outbox_claim_batch", "chronicle_outbox_claim_clean_idx"),
])
def test_claim_uses_its_partial_index_without_sorting_the_backlog(db_url, projection, name, index):
    table = f"{projection}_outbox_events"
    with psycopg.connect(db_url, autocommit=True) as conn:
        # one big transaction: 20,000 rows sharing one created_at, as an import or a rebuild makes
        conn.execute(f"INSERT INTO {table} (id, entity_type, entity_id, op, reclaim_count)"
                     " SELECT gen_random_uuid(), 'book', gen_random_uuid(), 'upsert', (g % 50 = 0)::int"
                     " FROM generate_series(1, 20000) g")
        conn.execute(f"ANALYZE {table}")
        with psycopg.ClientCursor(conn) as cur:
            cur.execute("EXPLAIN " + query(name, projection), {"owner": "w", "limit": 100, "lease_seconds": 30})
            plan = "\n".join(r[0] for r in cur.fetchall())
    assert index in plan, plan
    assert "Sort" not in plan, plan


def test_claim_takes_the_oldest_rows_first_across_a_shared_timestamp(db_url):
    from wordloom.outbox.store import OutboxStore

    store = OutboxStore("search")
    with psycopg.connect(db_url, autocommit=True) as conn:
        conn.execute("INSERT INTO search_outbox_events (id, entity_type, entity_id, op, created_at)"
                     " SELECT gen_random_uuid(), 'book', gen_random_uuid(), 'upsert', now() - interval '1 hour'"
                     " FROM generate_series(1, 5)")
        conn.execute("INSERT INTO search_outbox_events (id, entity_type, entity_id, op)"
                     " SELECT gen_random_uuid(), 'book', gen_random_uuid(), 'upsert' FROM generate_series(1, 50)")
        old = {r[0] for r in conn.execute("SELECT id FROM search_outbox_events WHERE created_at < now() - interval '1 minute'")}
        claimed = store.claim_batch(conn, "w", 5, 30)
        assert {e.id for e in claimed} == old
        suspect = store.claim_batch(conn, "w", 5, 30, suspects=True)
        assert suspect == []
