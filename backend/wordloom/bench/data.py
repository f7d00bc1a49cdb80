"""Seeding with one set-based statement per table (generate_series), so 1,000,000 rows take
seconds, not the time under test.  Document text is deterministic: `repeat(md5(seed || i), k)`
(32 hex characters per repeat), so a run can be reproduced byte for byte.
"""
from __future__ import annotations

import uuid

import psycopg
from psycopg.rows import dict_row

from ..search.index import document_from_row, document_id

LIBRARY_ID = uuid.UUID("00000000-0000-4000-8000-00000000b001")
BOOK_ID = uuid.UUID("00000000-0000-4000-8000-00000000b002")


def repeats_for(doc_bytes: int) -> int:
    return max(1, round(doc_bytes / 32))


def seed_search_index(conn: psycopg.Connection, n: int, doc_bytes: int, seed: str = "wl") -> None:
    """n search_index rows (entity_type 'block', version 1) with ~doc_bytes of text each."""
    conn.execute("""
        INSERT INTO entity_versions (entity_type, entity_id, version)
        SELECT 'block', md5(%(seed)s || i)::uuid, 1 FROM generate_series(1, %(n)s) AS i
        ON CONFLICT DO NOTHING""", {"seed": seed, "n": n})
    conn.execute("""
        INSERT INTO search_index (id, entity_type, entity_id, library_id, text, snippet, rank_score, event_version)
        SELECT gen_random_uuid(), 'block', md5(%(seed)s || i)::uuid, %(lib)s, t, left(t, 200), 1.0, 1
        FROM (SELECT i, repeat(md5('t' || i), %(k)s) AS t FROM generate_series(1, %(n)s) AS i) AS s
        ON CONFLICT DO NOTHING""", {"seed": seed, "n": n, "k": repeats_for(doc_bytes), "lib": LIBRARY_ID})
    conn.execute("ANALYZE search_index; ANALYZE entity_versions")


# Rows committed by one transaction share created_at (now()).  Traffic through the API commits one
# write per transaction, so by default every seeded row gets its own created_at, one microsecond
# apart, in the order they were "written".  same_created_at=True reproduces a bulk producer
# (import, `rebuild-search-index --emit-outbox`): see "claim cost and one-transaction backlogs"
# in docs/BENCHMARKS.md.
def _created_at(same: bool) -> str:
    return "now()" if same else "now() - make_interval(secs => (count(*) OVER () - row_number() OVER ()) / 1e6)"


def add_search_pending(conn: psycopg.Connection, n: int | None = None, *, same_created_at: bool = False) -> int:
    """One pending search outbox upsert per search_index row (or the first n), in ONE commit:
    the trigger sends one NOTIFY; the rows become claimable at once."""
    limit = "" if n is None else "LIMIT %(n)s"
    cur = conn.execute(f"""
        INSERT INTO search_outbox_events (id, entity_type, entity_id, op, event_version, created_at)
        SELECT gen_random_uuid(), entity_type, entity_id, 'upsert', event_version, {_created_at(same_created_at)}
        FROM (SELECT entity_type, entity_id, event_version FROM search_index ORDER BY entity_id {limit}) AS s""",
                       {"n": n})
    return cur.rowcount


def seed_chronicle_events(conn: psycopg.Connection, n: int) -> None:
    conn.execute("INSERT INTO libraries (id, name) VALUES (%s, 'bench') ON CONFLICT DO NOTHING", (LIBRARY_ID,))
    conn.execute("INSERT INTO books (id, library_id, title) VALUES (%s, %s, 'bench') ON CONFLICT DO NOTHING",
                 (BOOK_ID, LIBRARY_ID))
    conn.execute("""
        INSERT INTO chronicle_events (id, event_type, book_id, payload, occurred_at)
        SELECT md5('ce' || i)::uuid, 'block_created', %(book)s,
               jsonb_build_object('position', i, 'length', 1024, 'note', md5('p' || i)),
               now() - make_interval(secs => %(n)s - i)
        FROM generate_series(1, %(n)s) AS i
        ON CONFLICT DO NOTHING""", {"n": n, "book": BOOK_ID})
    conn.execute("ANALYZE chronicle_events")


def add_chronicle_pending(conn: psycopg.Connection, *, same_created_at: bool = False) -> int:
    return conn.execute(f"""
        INSERT INTO chronicle_outbox_events (id, entity_type, entity_id, op, event_version, created_at)
        SELECT gen_random_uuid(), 'chronicle_event', id, 'upsert', 1, {_created_at(same_created_at)}
        FROM (SELECT id FROM chronicle_events ORDER BY occurred_at) AS e
    """).rowcount


def add_done_history(conn: psycopg.Connection, table: str, n: int, age_seconds: int = 2 * 86400) -> None:
    """n `done` rows processed `age_seconds` ago (what months of traffic leave behind)."""
    conn.execute(f"""
        INSERT INTO {table} (id, entity_type, entity_id, op, event_version, created_at, processed_at,
                             status, owner, attempts, updated_at)
        SELECT gen_random_uuid(), 'block', md5('h' || i)::uuid, 'upsert', 1,
               now() - make_interval(secs => %(age)s + 1), now() - make_interval(secs => %(age)s),
               'done', 'bench-history', 0, now() - make_interval(secs => %(age)s)
        FROM generate_series(1, %(n)s) AS i""", {"n": n, "age": age_seconds})
    conn.execute(f"VACUUM ANALYZE {table}")


def load_documents(conn: psycopg.Connection, index: str) -> list[dict]:
    """The bulk actions plain `helpers.bulk` sends for every search_index row: the same id,
    body and external version the worker sends."""
    with conn.cursor(row_factory=dict_row) as cur:
        rows = cur.execute("SELECT entity_type, entity_id, library_id, text, snippet, rank_score, event_version "
                           "FROM search_index ORDER BY entity_id").fetchall()
    return [{"_op_type": "index", "_index": index, "_id": document_id(r["entity_type"], r["entity_id"]),
             "version": int(r["event_version"]), "version_type": "external", "_source": document_from_row(r)}
            for r in rows]


def outbox_counts(conn: psycopg.Connection, table: str) -> dict[str, int]:
    """Rows per status: a scan of the whole table (after a run, never while a worker drains)."""
    return dict(conn.execute(f"SELECT status, count(*) FROM {table} GROUP BY status").fetchall())


def drain_progress(conn: psycopg.Connection, table: str) -> tuple[bool, int]:
    """(rows still owed?, rows failed), answered by the partial indexes alone, in well under a
    millisecond at any table size.  What the harness polls while a worker drains: a GROUP BY
    status over a 1,000,000-row outbox is a parallel scan of ~200 ms on three processes, which
    polled four times a second took the CPU of the very drain it timed.  The predicates are
    written as the partial indexes' own (status and reclaim_count), so the planner can use them."""
    row = conn.execute(f"""
        SELECT EXISTS (SELECT 1 FROM {table} WHERE status = 'pending' AND reclaim_count = 0)
            OR EXISTS (SELECT 1 FROM {table} WHERE status = 'pending' AND reclaim_count > 0)
            OR EXISTS (SELECT 1 FROM {table} WHERE status = 'processing'),
               (SELECT count(*) FROM {table} WHERE status = 'failed')""").fetchone()
    return bool(row[0]), int(row[1])


def clean_pending(conn: psycopg.Connection, table: str) -> int:
    """Pending rows never reclaimed, counted on their partial index (cost grows with the count)."""
    return conn.execute(f"SELECT count(*) FROM {table} WHERE status = 'pending' AND reclaim_count = 0").fetchone()[0]


def drain_window(conn: psycopg.Connection, table: str) -> tuple[float, int]:
    """(seconds from the first claim to the last ack, rows done), by the database clock."""
    row = conn.execute(f"""
        SELECT extract(epoch FROM max(processed_at) - min(processing_started_at))::float8, count(*)
        FROM {table} WHERE status = 'done' AND owner <> 'bench-history'""").fetchone()
    return float(row[0] or 0.0), int(row[1])
