"""The bookshelves endpoints against real PostgreSQL (same fixtures as test_api.py)."""
from __future__ import annotations

import uuid

import psycopg
import pytest
from fastapi.testclient import TestClient

from wordloom.api import create_app
from wordloom.settings import ApiSettings

pytestmark = pytest.mark.integration


def settings_for(stack, db_url, es_index, env="test") -> ApiSettings:
    return ApiSettings(database_url=db_url, elastic_url=stack.elastic_url, elastic_index=es_index,
                       elastic_api_key=None, host="127.0.0.1", port=0, wordloom_env=env)


@pytest.fixture
def client(stack, db_url, es_index):
    with TestClient(create_app(settings_for(stack, db_url, es_index))) as c:
        yield c


def make_library(client, name="Lib"):
    r = client.post("/api/v1/libraries", json={"name": name})
    assert r.status_code == 201
    return r.json()


def test_bookshelf_crud_round_trip(client, db_url):
    lib = make_library(client)
    r = client.post("/api/v1/bookshelves", json={"library_id": lib["id"], "name": "Shelf"})
    assert r.status_code == 201
    shelf = r.json()
    assert shelf["library_id"] == lib["id"] and shelf["name"] == "Shelf"
    assert set(shelf) == {"id", "library_id", "name", "created_at", "updated_at"}

    got = client.get(f"/api/v1/bookshelves/{shelf['id']}")
    assert got.status_code == 200 and got.json() == shelf

    renamed = client.patch(f"/api/v1/bookshelves/{shelf['id']}", json={"name": "Top shelf"})
    assert renamed.status_code == 200
    assert renamed.json()["name"] == "Top shelf" and renamed.json()["id"] == shelf["id"]
    assert client.get(f"/api/v1/bookshelves/{shelf['id']}").json()["name"] == "Top shelf"

    d = client.delete(f"/api/v1/bookshelves/{shelf['id']}")
    assert d.status_code == 204 and d.content == b""
    assert client.get(f"/api/v1/bookshelves/{shelf['id']}").status_code == 404
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM bookshelves").fetchone()[0] == 0


def test_books_on_a_shelf_and_deleting_the_shelf_keeps_them(client):
    lib = make_library(client)
    shelf = client.post("/api/v1/bookshelves", json={"library_id": lib["id"], "name": "Shelf"}).json()
    r = client.post("/api/v1/books", json={"library_id": lib["id"], "title": "T", "bookshelf_id": shelf["id"]})
    assert r.status_code == 201
    book = r.json()
    assert book["bookshelf_id"] == shelf["id"]
    assert client.get(f"/api/v1/books/{book['id']}").json()["bookshelf_id"] == shelf["id"]

    assert client.delete(f"/api/v1/bookshelves/{shelf['id']}").status_code == 204
    after = client.get(f"/api/v1/books/{book['id']}")
    assert after.status_code == 200 and after.json()["bookshelf_id"] is None


def test_book_on_an_unknown_or_foreign_shelf_is_404_and_leaves_nothing(client, db_url):
    lib = make_library(client)
    other = make_library(client, "Other")
    foreign = client.post("/api/v1/bookshelves", json={"library_id": other["id"], "name": "Elsewhere"}).json()
    missing = str(uuid.uuid4())
    for shelf_id in (missing, foreign["id"]):
        r = client.post("/api/v1/books", json={"library_id": lib["id"], "title": "T", "bookshelf_id": shelf_id})
        assert r.status_code == 404 and shelf_id in r.json()["detail"]
    with psycopg.connect(db_url) as conn:
        for table in ("books", "search_outbox_events", "chronicle_outbox_events", "chronicle_events"):
            assert conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] == 0, table


def test_bad_bookshelf_input_is_422_naming_the_field(client):
    lib = make_library(client)
    r = client.post("/api/v1/bookshelves", json={"library_id": "not-a-uuid", "name": "S"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "library_id"]
    r = client.post("/api/v1/bookshelves", json={"library_id": lib["id"], "name": ""})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]
    r = client.post("/api/v1/bookshelves", json={"library_id": lib["id"], "name": "x" * 201})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]
    r = client.post("/api/v1/bookshelves", json={"library_id": lib["id"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]
    r = client.post("/api/v1/bookshelves", json={"library_id": lib["id"], "name": "S", "colour": "red"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "colour"]
    shelf = client.post("/api/v1/bookshelves", json={"library_id": lib["id"], "name": "S"}).json()
    r = client.patch(f"/api/v1/bookshelves/{shelf['id']}", json={"name": ""})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "name"]
    r = client.patch(f"/api/v1/bookshelves/{shelf['id']}", json={"library_id": lib["id"], "name": "S2"})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["body", "library_id"]
    r = client.get("/api/v1/bookshelves/not-a-uuid")
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == ["path", "bookshelf_id"]
    assert client.get(f"/api/v1/bookshelves/{shelf['id']}").json()["name"] == "S"


def test_unknown_bookshelf_ids_are_404_and_failed_writes_leave_nothing(client, db_url):
    missing = str(uuid.uuid4())
    assert client.get(f"/api/v1/bookshelves/{missing}").status_code == 404
    r = client.patch(f"/api/v1/bookshelves/{missing}", json={"name": "x"})
    assert r.status_code == 404 and missing in r.json()["detail"]
    assert client.delete(f"/api/v1/bookshelves/{missing}").status_code == 404
    r = client.post("/api/v1/bookshelves", json={"library_id": missing, "name": "Orphan"})
    assert r.status_code == 404 and missing in r.json()["detail"]
    with psycopg.connect(db_url) as conn:
        assert conn.execute("SELECT count(*) FROM bookshelves").fetchone()[0] == 0


def test_deleting_the_library_takes_its_shelves(client):
    lib = make_library(client)
    shelf = client.post("/api/v1/bookshelves", json={"library_id": lib["id"], "name": "Shelf"}).json()
    assert client.delete(f"/api/v1/libraries/{lib['id']}").status_code == 200
    assert client.get(f"/api/v1/bookshelves/{shelf['id']}").status_code == 404
