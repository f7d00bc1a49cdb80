"""The labs inserters (CONTRACT.md section 5): environment knobs, versions that keep growing, stdout
that holds only ids (search) or one JSON object (chronicle), and the rows a worker then drains."""
from __future__ import annotations

import json
import subprocess
import uuid

import pytest

from tests.entrypoints.support import REPO, VENV_PY, clean_env
from wordloom.domain import create_book, create_library
from wordloom.labs.inserters import (
    ChronicleInsertSpec, SearchInsertSpec, insert_chronicle_pending, insert_search_pending,
)
from wordloom.settings import ConfigError


def rows(conn, ids):
    return conn.execute(
        "SELECT id, entity_type, entity_id, op, event_version, status, traceparent, tracestate"
        " FROM search_outbox_events WHERE id = ANY(%s) ORDER BY event_version", (list(ids),)).fetchall()


def test_defaults_one_pending_book_upsert_without_a_search_index_row():
    spec = SearchInsertSpec.from_env({})
    assert (spec.count, spec.entity_type, spec.op, spec.create_search_index_row, spec.entity_id) == (
        1, "book", "upsert", False, None)


@pytest.mark.parametrize("name, value", [
    ("OUTBOX_OP", "merge"), ("OUTBOX_INSERT_COUNT", "0"), ("OUTBOX_ENTITY_ID", "not-a-uuid"),
    ("OUTBOX_CREATE_SEARCH_INDEX_ROW", "maybe"), ("OUTBOX_EVENT_VERSION", "x"),
])
def test_bad_values_name_the_variable(name, value):
    with pytest.raises(ConfigError, match=name):
        SearchInsertSpec.from_env({name: value})


def test_one_entity_many_rows_versions_grow_and_follow_the_domain_writer(conn):
    lib = create_library(conn, "lib")
    book = create_book(conn, lib["id"], "Title", "summary")  # the domain writer gives version 1
    spec = SearchInsertSpec(count=3, entity_id=book["id"], create_search_index_row=True,
                            search_index_text="lab text", library_id=lib["id"],
                            traceparent="00-" + "a" * 32 + "-" + "b" * 16 + "-01", tracestate="k=v")
    ids = insert_search_pending(conn, spec)
    got = rows(conn, ids)
    assert [r[4] for r in got] == [2, 3, 4]
    assert {r[5] for r in got} == {"pending"} and {r[1] for r in got} == {"book"}
    assert got[0][6].startswith("00-aaaa") and got[0][7] == "k=v"
    text, version = conn.execute("SELECT text, event_version FROM search_index WHERE entity_id = %s",
                                 (book["id"],)).fetchone()
    assert (text, version) == ("lab text", 4)
    # The API's next write keeps growing past the inserted versions.
    from wordloom.domain import update_book
    update_book(conn, book["id"], title="Renamed")
    assert conn.execute("SELECT max(event_version) FROM search_outbox_events WHERE entity_id = %s",
                        (book["id"],)).fetchone()[0] == 5


def test_explicit_version_is_used_and_recorded_as_the_highest(conn):
    entity = uuid.uuid4()
    ids = insert_search_pending(conn, SearchInsertSpec(entity_id=entity, event_version=7))
    assert rows(conn, ids)[0][4] == 7
    ids = insert_search_pending(conn, SearchInsertSpec(entity_id=entity))
    assert rows(conn, ids)[0][4] == 8


def test_fresh_entity_per_row_and_delete_removes_the_row(conn):
    ids = insert_search_pending(conn, SearchInsertSpec(count=2, create_search_index_row=True))
    assert len({r[2] for r in rows(conn, ids)}) == 2
    entity = rows(conn, ids)[0][2]
    ids = insert_search_pending(conn, SearchInsertSpec(entity_id=entity, op="delete", create_search_index_row=True))
    assert rows(conn, ids)[0][3] == "delete"
    assert conn.execute("SELECT count(*) FROM search_index WHERE entity_id = %s", (entity,)).fetchone()[0] == 0


def test_chronicle_twin_makes_library_shelf_book_event_and_pending_outbox_row(conn):
    made = insert_chronicle_pending(conn, ChronicleInsertSpec())
    status, entity_id = conn.execute("SELECT status, entity_id FROM chronicle_outbox_events WHERE id = %s",
                                     (made["outbox_id"],)).fetchone()
    assert status == "pending" and str(entity_id) == made["chronicle_event_id"]
    book = conn.execute("SELECT library_id, bookshelf_id FROM books WHERE id = %s", (made["book_id"],)).fetchone()
    assert [str(v) for v in book] == [made["library_id"], made["bookshelf_id"]]
    assert made["event_type"] == "book_created"


def _run(args, db_url, **env):
    return subprocess.run([str(VENV_PY), *args], cwd=REPO, capture_output=True, timeout=60,
                          env=clean_env(**{"DATABASE_URL": db_url, "WORDLOOM_ENV": "test", **env}))


def test_script_stdout_is_only_ids_one_per_line(db_url):
    proc = _run(["backend/scripts/labs/labs_009_insert_search_outbox_pending.py"], db_url, OUTBOX_INSERT_COUNT="3")
    assert proc.returncode == 0, proc.stderr.decode()
    lines = proc.stdout.decode().splitlines()
    assert len(lines) == 3 and all(uuid.UUID(line) for line in lines)


def test_cli_chronicle_twin_prints_one_json_object(db_url):
    proc = _run(["backend/scripts/cli.py", "labs", "insert-chronicle-pending"], db_url)
    assert proc.returncode == 0, proc.stderr.decode()
    made = json.loads(proc.stdout)
    assert uuid.UUID(made["outbox_id"]) and proc.stdout.decode().count("\n") == 1


def test_unknown_library_is_one_line_exit_1(db_url):
    proc = _run(["backend/scripts/cli.py", "labs", "insert-chronicle-pending"], db_url,
                OUTBOX_LIBRARY_ID=str(uuid.uuid4()))
    assert proc.returncode == 1 and proc.stdout == b""
    assert "Traceback" not in proc.stderr.decode()


def test_environment_guard_refuses_another_environments_database(db_url):
    proc = _run(["backend/scripts/cli.py", "labs", "insert-search-pending"], db_url, WORDLOOM_ENV="dev")
    assert proc.returncode == 2 and proc.stdout == b"" and b"refusing" in proc.stderr
