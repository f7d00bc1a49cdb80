"""The HTTP API against real PostgreSQL and the Elasticsearch-compatible server."""
from __future__ import annotations

import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient

from wordloom.api import create_app
from wordloom.envguard import EnvironmentMismatch
from wordloom.search.index import document_from_row, document_id, ensure_index
from wordloom.settings import ApiSettings

pytestmark = pytest.mark.integration

TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"


def settings_for(stack, db_url, es_index, env="test") -> ApiSettings:
    return ApiSettings(database_url=db_url, elastic_url=stack.elastic_url, elastic_index=es_index,
                       elastic_api_key=None, host="127.0.0.1", port=0, wordloom_env=env)


@pytest.fixture
def client(stack, db_url, es_index):
    with TestClient(create_app(settings_for(stack, db_url, es_index))) as c:
        yield c


def make_book(client, title="Book", summary="", blocks=()):
    lib = client.post("/api/v1/libraries", json={"name": "Lib"}).json()
    book = client.post("/api/v1/books", json={"library_id": lib["id"], "title": title, "summary": summary}).json()
    made = [client.post("/api/v1/blocks", json={"book_id": book["id"], "content": c}).json() for c in blocks]
    return lib, book, made


def test_crud_round_trip_and_traceparent_on_outbox_rows(client, db_url):
    lib = client.post("/api/v1/libraries", json={"name": "Lib"})
    assert lib.status_code == 201
    lib_id = lib.json()["id"]
    r = client.post("/api/v1/books", json={"library_id": lib_id, "title": "T", "summary": "S"},
                    headers={"traceparent": TRACEPARENT, "tracestate": "vendor=1"})
    assert r.status_code == 201
    book_id = r.json()["id"]
    assert client.patch(f"/api/v1/books/{book_id}", json={"title": "T2"}).json()["title"] == "T2"
    block = client.post("/api/v1/blocks", json={"book_id": book_id, "content": "hello"}).json()
    assert client.patch(f"/api/v1/blocks/{block['id']}", json={"content": "bye"}).json()["content"] == "bye"
    assert client.delete(f"/api/v1/blocks/{block['id']}").json()["deleted_at"] is not None
    assert client.post(f"/api/v1/blocks/{block['id']}/restore").json()["deleted_at"] is None
    assert client.delete(f"/api/v1/books/{book_id}").json()["deleted_at"] is not None
    assert client.patch(f"/api/v1/books/{book_id}", json={"title": "x"}).status_code == 409
    assert client.post(f"/api/v1/books/{book_id}/restore").json()["deleted_at"] is None
    tag = client.post("/api/v1/tags", json={"library_id": lib_id, "name": "py"}).json()
    assert client.put(f"/api/v1/books/{book_id}/tags/{tag['id']}").json()["changed"] is True
    assert [t["name"] for t in client.get(f"/api/v1/books/{book_id}/tags").json()] == ["py"]
    assert client.patch(f"/api/v1/tags/{tag['id']}", json={"name": "python"}).json()["name"] == "python"
    assert client.post("/api/v1/tags", json={"library_id": lib_id, "name": "python"}).status_code == 409
    assert client.delete(f"/api/v1/tags/{tag['id']}").status_code == 204
    assert client.patch(f"/api/v1/libraries/{lib_id}", json={"name": "Renamed"}).json()["name"] == "Renamed"
    with psycopg.connect(db_url) as conn:
        tp, ts = conn.execute("SELECT traceparent, tracestate FROM search_outbox_events"
                              " WHERE entity_id = %s ORDER BY event_version LIMIT 1", (book_id,)).fetchone()
        # The row continues the caller's trace through the API's own server span: same trace id,
        # the API span as parent (not the caller's span), caller's tracestate kept.
        caller_trace, caller_span = TRACEPARENT.split("-")[1:3]
        assert tp.split("-")[1] == caller_trace and tp.split("-")[2] != caller_span
        assert ts == "vendor=1"
        assert conn.execute("SELECT count(*) FROM chronicle_outbox_events WHERE traceparent LIKE %s",
                            (f"00-{caller_trace}-%",)).fetchone()[0] == 1
        # requests without the header still get a traceparent: the API starts its own trace
        assert conn.execute("SELECT count(*) FROM search_outbox_events WHERE traceparent IS NULL"
                            ).fetchone()[0] == 0
    deleted = client.delete(f"/api/v1/libraries/{lib_id}").json()
    assert (deleted["books"], deleted["blocks"]) == (1, 1)
    assert client.get(f"/api/v1/books/{book_id}").status_code == 404


def test_bad_input_is_422_naming_the_field(client):
    r = client.post("/api/v1/books", json={"library_id": "not-a-uuid", "title": "T"})
    assert r.status_code == 422
    assert any(e["loc"][-1] == "library_id" for e in r.json()["detail"])
    r = client.post("/api/v1/libraries", json={"name": ""})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]
    r = client.post("/api/v1/blocks", json={"book_id": str(uuid.uuid4()), "content": "x", "colour": "red"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "colour"]
    r = client.get("/api/v1/search", params={"q": "x", "limit": 0})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "limit"]
    r = client.get("/api/v1/search", params={"q": "x", "entity_type": "shelf"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["query", "entity_type"]


def test_unknown_ids_are_404_and_failed_writes_leave_nothing(client, db_url):
    missing = str(uuid.uuid4())
    for path in (f"/api/v1/libraries/{missing}", f"/api/v1/books/{missing}", f"/api/v1/blocks/{missing}",
                 f"/api/v1/tags/{missing}", f"/api/v1/books/{missing}/chronicle"):
        assert client.get(path).status_code == 404, path
    assert client.patch(f"/api/v1/books/{missing}", json={"title": "x"}).status_code == 404
    assert client.post(f"/api/v1/books/{missing}/restore").status_code == 404
    assert client.delete(f"/api/v1/libraries/{missing}").status_code == 404
    r = client.post("/api/v1/blocks", json={"book_id": missing, "content": "orphan"})
    assert r.status_code == 404 and missing in r.json()["detail"]
    assert client.post("/api/v1/books", json={"library_id": missing, "title": "T"}).status_code == 404
    with psycopg.connect(db_url) as conn:
        for table in ("books", "blocks", "search_outbox_events", "chronicle_outbox_events", "chronicle_events"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def index_docs(es, index, docs):
    """Fill the index the way the search worker does: its mapping, its id and document shape."""
    ensure_index(es, index)
    for d in docs:
        row = {"snippet": d["text"][:200], "rank_score": 0.0, "event_version": 1, **d}
        es.index(index=index, id=document_id(d["entity_type"], d["entity_id"]), document=document_from_row(row))
    es.indices.refresh(index=index)


def test_search_resolves_books_highlights_and_filters(client, es, es_index):
    lib, book, blocks = make_book(client, "Context managers", "about with",
                                  ["A context manager wraps a block of code.", "Unrelated words here.",
                                   "Another context manager example."])
    other_lib, other_book, other_blocks = make_book(client, "Elsewhere", "", ["context manager in other library"])
    doc = lambda kind, e, lib_id, text: {"entity_type": kind, "entity_id": e, "library_id": lib_id, "text": text}
    index_docs(es, es_index, [
        doc("book", book["id"], lib["id"], "Context managers\nabout with"),
        *[doc("block", b["id"], lib["id"], b["content"]) for b in blocks],
        doc("block", other_blocks[0]["id"], other_lib["id"], other_blocks[0]["content"]),
        doc("block", str(uuid.uuid4()), lib["id"], "context manager of a vanished block"),
    ])
    r = client.get("/api/v1/search", params={"q": "context manager"})
    assert r.status_code == 200
    body = r.json()
    ids = {h["entity_id"] for h in body["hits"]}
    assert ids == {book["id"], blocks[0]["id"], blocks[2]["id"], other_blocks[0]["id"]}  # vanished one dropped
    assert body["total"] == 4
    by_id = {h["entity_id"]: h for h in body["hits"]}
    assert by_id[blocks[0]["id"]]["book_id"] == book["id"]
    assert by_id[blocks[0]["id"]]["book_title"] == "Context managers"
    assert by_id[book["id"]]["book_id"] == book["id"]
    assert "<em>" in by_id[blocks[0]["id"]]["snippet"]
    assert all(h["score"] > 0 for h in body["hits"])

    only_blocks = client.get("/api/v1/search", params={"q": "context manager", "entity_type": "block",
                                                       "library_id": lib["id"]}).json()
    assert {h["entity_id"] for h in only_blocks["hits"]} == {blocks[0]["id"], blocks[2]["id"]}
    assert len(client.get("/api/v1/search", params={"q": "context manager", "limit": 1}).json()["hits"]) == 1

    # a soft-deleted book's hits vanish at once, even before the worker removes its documents
    client.delete(f"/api/v1/books/{book['id']}")
    after = client.get("/api/v1/search", params={"q": "context manager"}).json()
    assert {h["entity_id"] for h in after["hits"]} == {other_blocks[0]["id"]}


def test_search_on_a_missing_index_is_empty(client):
    assert client.get("/api/v1/search", params={"q": "anything"}).json() == {"total": 0, "hits": []}


def test_chronicle_is_newest_first_and_paged(client, db_url):
    _, book, _ = make_book(client)
    with psycopg.connect(db_url) as conn:
        for i in range(25):
            conn.execute(
                "INSERT INTO chronicle_entries (id, event_type, book_id, occurred_at, created_at, payload, summary)"
                " VALUES (gen_random_uuid(), %s, %s, now() - make_interval(secs => %s), now(), %s, 'x')",
                (f"event_{i}", book["id"], 100 - i, psycopg.types.json.Jsonb({"i": i})))
    first = client.get(f"/api/v1/books/{book['id']}/chronicle", params={"limit": 10}).json()
    assert first["total"] == 25
    assert [it["event_type"] for it in first["items"]] == [f"event_{i}" for i in range(24, 14, -1)]
    last = client.get(f"/api/v1/books/{book['id']}/chronicle", params={"limit": 10, "offset": 20}).json()
    assert [it["payload"]["i"] for it in last["items"]] == [4, 3, 2, 1, 0]
    assert client.get(f"/api/v1/books/{book['id']}/chronicle", params={"limit": 0}).status_code == 422


def test_health_and_metrics(client):
    health = client.get("/api/v1/health")
    assert health.status_code == 200 and health.json() == {"ok": True, "db": {"ok": True}, "es": {"ok": True}}
    make_book(client, blocks=["x"])
    text = client.get("/metrics").text
    assert 'outbox_produced_total{entity_type="block",event_type="block_created"}' in text


def test_health_reports_a_dead_search_server(stack, db_url, es_index):
    settings = settings_for(stack, db_url, es_index)
    settings = ApiSettings(**{**settings.__dict__, "elastic_url": "http://127.0.0.1:9"})
    with TestClient(create_app(settings)) as c:
        r = c.get("/api/v1/health")
        assert r.status_code == 503
        assert r.json()["db"] == {"ok": True} and r.json()["es"]["ok"] is False


def test_env_guard_refuses_a_mismatched_environment(stack, db_url, es_index):
    app = create_app(settings_for(stack, db_url, es_index, env="dev"))
    with pytest.raises(EnvironmentMismatch, match="WORDLOOM_ENV=dev"):
        with TestClient(app):
            pass


def test_search_context_manager_finds_the_with_topic_in_the_top_three(client, es, es_index, db_url):
    """The README's promise on real input: import the Python help topics, project search_index
    into the index (as the worker would), and ask for "context manager"."""
    from elasticsearch.helpers import bulk

    from wordloom.db import connect
    from wordloom.importers.pydocs import python_doc_books
    from wordloom.importers.runner import import_books
    from wordloom.domain import WriteContext

    with connect(db_url, autocommit=True) as conn:
        import_books(conn, "Python docs", python_doc_books(), ctx=WriteContext(source="import"))
        rows = conn.execute("SELECT entity_type, entity_id, library_id, text, snippet, rank_score, event_version"
                            " FROM search_index").fetchall()
    ensure_index(es, es_index)
    cols = ("entity_type", "entity_id", "library_id", "text", "snippet", "rank_score", "event_version")
    docs = [dict(zip(cols, r)) for r in rows]
    bulk(es, ({"_index": es_index, "_id": document_id(d["entity_type"], d["entity_id"]),
               "_source": document_from_row(d)} for d in docs), refresh=True)
    body = client.get("/api/v1/search", params={"q": "context manager"}).json()
    top3 = [(h["entity_type"], h["book_title"]) for h in body["hits"][:3]]
    print("context manager top 3:", top3, "of", body["total"])
    assert any(kind == "block" and title in ("with", "context-managers") for kind, title in top3), top3
