"""The test session's servers are real: PostgreSQL answers SQL, the search server answers ES calls."""
import psycopg
from elasticsearch import Elasticsearch


def test_database_is_migrated_and_guarded(db_url):
    with psycopg.connect(db_url) as conn:
        tables = {r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname='public'")}
        assert {"search_outbox_events", "chronicle_outbox_events", "search_index", "chronicle_entries"} <= tables
        assert conn.execute("SELECT env FROM environment_sentinel").fetchone()[0] == "test"
        # the status CHECK constraint exists (v3 had none)
        try:
            conn.execute("INSERT INTO search_outbox_events (id, entity_type, entity_id, op, status)"
                         " VALUES (gen_random_uuid(), 'book', gen_random_uuid(), 'upsert', 'bogus')")
        except psycopg.errors.CheckViolation:
            conn.rollback()
        else:
            raise AssertionError("status CHECK constraint missing")


def test_search_server_indexes_and_counts(stack, es_index):
    es = Elasticsearch(stack.elastic_url)
    es.index(index=es_index, id="book:1", document={"text": "hello"}, refresh=True)
    assert es.count(index=es_index)["count"] == 1
