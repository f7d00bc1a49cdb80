"""Zero-downtime Elasticsearch rebuild behind the alias, against the real servers."""
from __future__ import annotations

import random
import threading
import time
import uuid

import psycopg
import pytest
from elasticsearch import Elasticsearch, helpers

from tests.support.ops_fixtures import add_search_row, run_cli
from wordloom.db.queries import query
from wordloom.search.index import document_from_row, document_id, ensure_index

REBUILD_ES = ("ops", "rebuild-es")


@pytest.fixture
def es(stack):
    client = Elasticsearch(stack.elastic_url, request_timeout=30)
    yield client
    client.close()


def _seed_rows(conn, n: int) -> list[uuid.UUID]:
    ids = [uuid.uuid4() for _ in range(n)]
    for i, entity_id in enumerate(ids):
        add_search_row(conn, "book", entity_id, f"common text {i}", 1)
        conn.execute("INSERT INTO entity_versions VALUES ('book', %s, 1)", (entity_id,))
    return ids


class SimulatedWriter:
    """The API and the search worker in one loop: change search_index + outbox in one transaction,
    then transfer the entity's state to the alias under the worker's per-entity lock."""

    def __init__(self, db_url: str, es: Elasticsearch, alias: str, ids: list[uuid.UUID]):
        self.db_url, self.es, self.alias, self.ids = db_url, es, alias, list(ids)
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.writes = 0

    def change(self, conn, entity_id, delete: bool = False) -> None:
        with conn.transaction():
            version = conn.execute("UPDATE entity_versions SET version = version + 1 WHERE entity_type = 'book'"
                                   " AND entity_id = %s RETURNING version", (entity_id,)).fetchone()[0]
            if delete:
                conn.execute("DELETE FROM search_index WHERE entity_type = 'book' AND entity_id = %s", (entity_id,))
            else:
                conn.execute("UPDATE search_index SET text = %s, event_version = %s, updated_at = now()"
                             " WHERE entity_type = 'book' AND entity_id = %s", (f"common v{version}", version, entity_id))
            conn.execute("INSERT INTO search_outbox_events (id, entity_type, entity_id, op, event_version)"
                         " VALUES (gen_random_uuid(), 'book', %s, %s, %s)",
                         (entity_id, "delete" if delete else "upsert", version))
        with conn.transaction():
            params = {"entity_types": ["book"], "entity_ids": [entity_id]}
            conn.execute(query("outbox_search_lock_entities"), params)
            row = conn.execute("SELECT entity_type, entity_id, library_id, text, snippet, rank_score, event_version"
                               " FROM search_index WHERE entity_type = 'book' AND entity_id = %s", (entity_id,)).fetchone()
            es = self.es.options(ignore_status=(404, 409))
            doc_id = document_id("book", entity_id)
            if row is None:
                es.delete(index=self.alias, id=doc_id, version=version, version_type="external")
            else:
                cols = ("entity_type", "entity_id", "library_id", "text", "snippet", "rank_score", "event_version")
                es.index(index=self.alias, id=doc_id, document=document_from_row(dict(zip(cols, row))),
                         version=row[6], version_type="external")
        self.writes += 1

    def run(self) -> None:
        rng = random.Random(7)
        with psycopg.connect(self.db_url, autocommit=True) as conn:
            while not self.stop.is_set():
                try:
                    victim = rng.choice(self.ids)
                    delete = rng.random() < 0.1 and len(self.ids) > 20
                    self.change(conn, victim, delete=delete)
                    if delete:
                        self.ids.remove(victim)
                except Exception as exc:  # reported by the test
                    self.errors.append(repr(exc))
                time.sleep(0.01)


class SearchLoop:
    """A reader that must never see an error or an empty result while the alias moves."""

    def __init__(self, es: Elasticsearch, alias: str):
        self.es, self.alias = es, alias
        self.stop = threading.Event()
        self.errors: list[str] = []
        self.empty = 0
        self.searches = 0

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                hits = self.es.search(index=self.alias, query={"match": {"text": "common"}}, size=1)["hits"]["total"]["value"]
                self.searches += 1
                if hits == 0:
                    self.empty += 1
            except Exception as exc:
                self.errors.append(repr(exc))
            time.sleep(0.005)


def _in_threads(*workers):
    threads = [threading.Thread(target=w.run, daemon=True) for w in workers]
    for t in threads:
        t.start()
    return threads


def _stop(threads, *workers):
    for w in workers:
        w.stop.set()
    for t in threads:
        t.join(10)


def _assert_index_equals_search_index(es, db_url, index):
    es.indices.refresh(index=index)
    with psycopg.connect(db_url) as conn:
        rows = conn.execute("SELECT entity_type, entity_id, event_version FROM search_index").fetchall()
    docs = {h["_id"]: h["_source"]["event_version"]
            for h in helpers.scan(es, index=index, query={"query": {"match_all": {}}})}
    assert docs == {document_id(t, i): v for t, i, v in rows}


def test_conversion_and_swaps_keep_search_working_under_writes(db_url, worker_env, es, es_index):
    alias = es_index
    with psycopg.connect(db_url, autocommit=True) as conn:
        ids = _seed_rows(conn, 40)
    # what a v3 deployment has: a concrete index carrying the alias's name, filled by the worker
    ensure_index(es, alias)
    helpers.bulk(es, [{"_index": alias, "_id": document_id("book", i), "version": 1, "version_type": "external",
                       "_source": document_from_row({"entity_type": "book", "entity_id": i, "text": "common",
                                                     "event_version": 1})} for i in ids], refresh=True)

    writer, reader = SimulatedWriter(db_url, es, alias, ids), SearchLoop(es, alias)
    threads = _in_threads(writer, reader)
    try:
        first = run_cli(worker_env, *REBUILD_ES, "--batch-size", "7")
        assert first.returncode == 0, first.stderr
        assert f"alias {alias} -> {alias}_v2" in first.stdout and "converted=True" in first.stdout
        assert sorted(es.indices.get_alias(name=alias)) == [f"{alias}_v2"]
        assert es.indices.exists(index=f"{alias}_v1"), "the copy of the concrete index is kept for --rollback"

        second = run_cli(worker_env, *REBUILD_ES)
        assert second.returncode == 0, second.stderr
        assert f"alias {alias} -> {alias}_v3 (previous: {alias}_v2)" in second.stdout
        assert f"deleted_old={alias}_v1" in second.stdout
        time.sleep(0.3)
    finally:
        _stop(threads, writer, reader)
    assert writer.errors == [] and writer.writes > 10
    assert reader.errors == [] and reader.empty == 0 and reader.searches > 20
    assert sorted(es.indices.get(index=f"{alias}*")) == [f"{alias}_v2", f"{alias}_v3"]
    _assert_index_equals_search_index(es, db_url, alias)

    with psycopg.connect(db_url) as conn:
        history = conn.execute("SELECT index_name, action, deactivated_at IS NULL FROM search_alias_history"
                               " ORDER BY id").fetchall()
        status = conn.execute("SELECT last_success FROM projection_status"
                              " WHERE projection = 'search_index_to_elastic'").fetchone()
    assert history == [(f"{alias}_v1", "convert", False), (f"{alias}_v2", "convert", False),
                       (f"{alias}_v3", "rebuild", True)]
    assert status == (True,)


def test_failed_verification_leaves_the_alias_where_it_was(db_url, worker_env, es, es_index):
    alias = es_index
    with psycopg.connect(db_url, autocommit=True) as conn:
        _seed_rows(conn, 10)
    assert run_cli(worker_env, *REBUILD_ES).returncode == 0
    assert sorted(es.indices.get_alias(name=alias)) == [f"{alias}_v1"]

    r = run_cli(worker_env, *REBUILD_ES, extra_env={"WORDLOOM_REBUILD_ES_FORCE_VERIFY_FAILURE": "1"})
    assert r.returncode == 1
    assert "verification of" in r.stderr and "was not moved" in r.stderr and "Traceback" not in r.stderr
    assert sorted(es.indices.get_alias(name=alias)) == [f"{alias}_v1"]
    assert not es.indices.exists(index=f"{alias}_v2"), "the half-built index is removed"
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT last_success, last_error LIKE '%%verification%%' FROM projection_status"
                            " WHERE projection = 'search_index_to_elastic'").fetchone() == (False, True)


def test_rollback_restores_the_previous_index_caught_up(db_url, worker_env, es, es_index):
    alias = es_index
    with psycopg.connect(db_url, autocommit=True) as conn:
        ids = _seed_rows(conn, 12)
    assert run_cli(worker_env, *REBUILD_ES).returncode == 0
    assert run_cli(worker_env, *REBUILD_ES).returncode == 0
    assert sorted(es.indices.get_alias(name=alias)) == [f"{alias}_v2"]

    writer = SimulatedWriter(db_url, es, alias, ids)
    with psycopg.connect(db_url, autocommit=True) as conn:
        writer.change(conn, ids[0])          # written to _v2 only, after _v1 stopped receiving writes
        writer.change(conn, ids[1], delete=True)

    r = run_cli(worker_env, *REBUILD_ES, "--rollback")
    assert r.returncode == 0, r.stderr
    assert f"Rollback OK: alias {alias} -> {alias}_v1 (was {alias}_v2)" in r.stdout
    assert sorted(es.indices.get_alias(name=alias)) == [f"{alias}_v1"]
    assert es.indices.exists(index=f"{alias}_v2"), "the index rolled back from is kept"
    _assert_index_equals_search_index(es, db_url, alias)


def test_unreachable_elasticsearch_is_one_line(db_url, worker_env):
    r = run_cli({**worker_env, "ELASTIC_URL": "http://user:pw-secret@127.0.0.1:1"}, *REBUILD_ES)
    assert r.returncode == 1
    assert "127.0.0.1:1" in r.stderr and "pw-secret" not in r.stderr and "Traceback" not in r.stderr


def test_the_load_stops_on_a_rejected_document_and_counts_the_rest(conn, es, es_index):
    """bulk_load sends pre-encoded pages, several at once: every page's answers are checked, and
    a document the server refuses stops the load with its id (never a silent gap)."""
    from wordloom.ops.rebuild_es import RebuildError, bulk_load

    _seed_rows(conn, 7)
    target = f"{es_index}-load"
    ensure_index(es, target)
    assert bulk_load(es, conn, target, batch_size=2) == 7  # four pages, two in flight at a time
    es.indices.refresh(index=target)
    assert es.count(index=target)["count"] == 7
    # The same versions again: external versioning answers 409 for each, which the load counts as
    # already there.  A higher version already indexed for one id is a 409 too; a mapping that
    # refuses the document is a real rejection.
    assert bulk_load(es, conn, target, batch_size=3) == 7
    refusing = f"{es_index}-refusing"
    es.indices.create(index=refusing, mappings={"dynamic": "strict", "properties": {"entity_type": {"type": "keyword"}}})
    with pytest.raises(RebuildError, match=r"documents rejected, first: book:"):
        bulk_load(es, conn, refusing, batch_size=2)


def test_the_new_index_serves_with_periodic_refresh_and_records_its_verified_count(db_url, worker_env, es, es_index):
    """Refresh stays off through load and verification (rebuild_es.py step 5); the index the alias
    moves to must serve with periodic refresh on, and its history row carries the count that the
    verification checked against search_index."""
    alias = es_index
    with psycopg.connect(db_url, autocommit=True) as conn:
        _seed_rows(conn, 15)
    r = run_cli(worker_env, *REBUILD_ES)
    assert r.returncode == 0, r.stderr
    assert "docs=15" in r.stdout
    settings = es.indices.get_settings(index=f"{alias}_v1")[f"{alias}_v1"]["settings"]["index"]
    assert settings.get("refresh_interval") == "1s"
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT doc_count FROM search_alias_history WHERE index_name = %s",
                            (f"{alias}_v1",)).fetchone() == (15,)
