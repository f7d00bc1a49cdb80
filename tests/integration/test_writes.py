"""The single write path against a real PostgreSQL: one transaction per write, five tables each."""
from __future__ import annotations

import uuid

import psycopg
import pytest

from wordloom import domain
from wordloom.db import connect
from wordloom.observability.api_metrics import OUTBOX_PRODUCED

pytestmark = pytest.mark.integration

TABLES = ("search_index", "search_outbox_events", "chronicle_events", "chronicle_outbox_events", "entity_versions")


@pytest.fixture
def conn(db_url):
    with connect(db_url, autocommit=True) as c:
        yield c


def counts(conn) -> dict:
    return {t: conn.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in TABLES}


def delta(before: dict, after: dict) -> dict:
    return {t: after[t] - before[t] for t in TABLES}


def outbox(conn, table="search_outbox_events"):
    return conn.execute(f"SELECT entity_type, entity_id, op, event_version, traceparent, tracestate "
                        f"FROM {table} ORDER BY created_at, event_version").fetchall()


def produced(event_type: str, entity_type: str) -> float:
    return OUTBOX_PRODUCED.labels(event_type=event_type, entity_type=entity_type)._value.get()


def test_create_book_writes_all_five_tables_in_one_transaction(conn):
    lib = domain.create_library(conn, "L")
    before = counts(conn)
    ctx = domain.WriteContext(traceparent="00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01", tracestate="k=v")
    book = domain.create_book(conn, lib["id"], "Title", "Summary", ctx=ctx)
    assert delta(before, counts(conn)) == {t: 1 for t in TABLES}
    row = conn.execute("SELECT entity_type, library_id, text, snippet, event_version FROM search_index"
                       " WHERE entity_id = %s", (book["id"],)).fetchone()
    assert row == ("book", lib["id"], "Title\nSummary", "Title\nSummary", 1)
    assert outbox(conn) == [("book", book["id"], "upsert", 1, ctx.traceparent, "k=v")]
    ev = conn.execute("SELECT id, event_type, book_id, block_id, payload FROM chronicle_events").fetchone()
    assert ev[1:] == ("book_created", book["id"], None, {"title": "Title"})
    assert outbox(conn, "chronicle_outbox_events") == [("chronicle_event", ev[0], "upsert", 1, ctx.traceparent, "k=v")]


def test_block_write_and_update_bump_versions_per_entity(conn):
    lib = domain.create_library(conn, "L")
    book = domain.create_book(conn, lib["id"], "T")
    block = domain.create_block(conn, book["id"], "first text")
    other = domain.create_block(conn, book["id"], "other")
    assert (block["position"], other["position"]) == (0, 1)
    before = counts(conn)
    domain.update_block(conn, block["id"], content="second text")
    domain.update_block(conn, block["id"], content="third text")
    # entity_versions rows are per entity, so updates add none; every other table +1 per write
    assert delta(before, counts(conn)) == {"search_index": 0, "search_outbox_events": 2, "chronicle_events": 2,
                                          "chronicle_outbox_events": 2, "entity_versions": 0}
    versions = [r[3] for r in outbox(conn) if r[1] == block["id"]]
    assert versions == [1, 2, 3]
    assert [r[3] for r in outbox(conn) if r[1] == other["id"]] == [1]
    assert conn.execute("SELECT text, event_version FROM search_index WHERE entity_id = %s",
                        (block["id"],)).fetchone() == ("third text", 3)


def test_rename_book_reindexes_only_the_book(conn):
    lib = domain.create_library(conn, "L")
    book, blocks = domain.create_book_with_blocks(conn, lib["id"], "Old", ["a", "b"])
    before = outbox(conn)
    domain.update_book(conn, book["id"], title="New")
    new = outbox(conn)[len(before):]
    assert [(r[0], r[2], r[3]) for r in new] == [("book", "upsert", 2)]
    assert conn.execute("SELECT event_type, payload FROM chronicle_events ORDER BY occurred_at DESC LIMIT 1"
                        ).fetchone() == ("book_renamed", {"changed": ["title"], "title": "New"})


def test_failed_write_leaves_nothing_behind(conn):
    """A block for a missing book, and a constraint violation mid-write: no business row, no outbox row."""
    lib = domain.create_library(conn, "L")
    before = counts(conn)
    with pytest.raises(domain.NotFound):
        domain.create_block(conn, uuid.uuid4(), "orphan")
    with pytest.raises(psycopg.errors.CheckViolation):
        # The book row passes, the empty title fails its CHECK: nothing may survive.
        domain.create_book_with_blocks(conn, lib["id"], "", ["x"])
    with pytest.raises(psycopg.errors.CheckViolation):
        # A valid book is written and indexed, then a later statement of the same write fails.
        from wordloom.domain.books import create_book_in_unit
        from wordloom.domain.unit import write_unit
        with write_unit(conn) as unit:
            create_book_in_unit(unit, lib["id"], "Good")
            assert counts(conn)["search_outbox_events"] == before["search_outbox_events"] + 1
            unit.conn.execute("INSERT INTO libraries (id, name) VALUES (gen_random_uuid(), '')")
    assert counts(conn) == before
    assert conn.execute("SELECT count(*) FROM books").fetchone()[0] == 0
    assert conn.execute("SELECT count(*) FROM blocks").fetchone()[0] == 0
    assert conn.info.transaction_status == psycopg.pq.TransactionStatus.IDLE


def test_produced_counter_moves_only_after_commit(conn):
    lib = domain.create_library(conn, "L")
    ok_before = produced("book_created", "book")
    domain.create_book(conn, lib["id"], "Counted")
    assert produced("book_created", "book") == ok_before + 1
    with pytest.raises(psycopg.errors.CheckViolation):
        domain.create_book_with_blocks(conn, lib["id"], "", ["x"])
    assert produced("book_created", "book") == ok_before + 1


def test_soft_delete_and_restore_book_moves_book_and_blocks_out_of_and_into_search(conn):
    lib = domain.create_library(conn, "L")
    book, blocks = domain.create_book_with_blocks(conn, lib["id"], "T", ["a", "b", "c"])
    domain.soft_delete_block(conn, blocks[2]["id"])
    n = len(outbox(conn))
    domain.soft_delete_book(conn, book["id"])
    deleted = outbox(conn)[n:]
    assert sorted((r[0], r[2]) for r in deleted) == [("block", "delete")] * 2 + [("book", "delete")]
    assert conn.execute("SELECT count(*) FROM search_index").fetchone()[0] == 0
    # soft delete is idempotent: a second call writes nothing
    n = len(outbox(conn))
    domain.soft_delete_book(conn, book["id"])
    assert len(outbox(conn)) == n
    # a deleted book refuses edits
    with pytest.raises(domain.Conflict):
        domain.update_book(conn, book["id"], title="x")
    domain.restore_book(conn, book["id"])
    restored = outbox(conn)[n:]
    assert sorted((r[0], r[2]) for r in restored) == [("block", "upsert")] * 2 + [("book", "upsert")]
    indexed = {r[0] for r in conn.execute("SELECT entity_id FROM search_index")}
    assert indexed == {book["id"], blocks[0]["id"], blocks[1]["id"]}  # the soft-deleted block stays out
    # each entity's versions only grew: create 1, delete 2, restore 3
    assert conn.execute("SELECT version FROM entity_versions WHERE entity_id = %s", (blocks[0]["id"],)).fetchone()[0] == 3
    events = [r[0] for r in conn.execute("SELECT event_type FROM chronicle_events WHERE block_id IS NULL"
                                         " ORDER BY occurred_at")]
    assert events == ["book_created", "book_soft_deleted", "book_restored"]


def test_restore_block_reindexes_it_only_when_its_book_is_live(conn):
    lib = domain.create_library(conn, "L")
    book, (block,) = domain.create_book_with_blocks(conn, lib["id"], "T", ["text"])
    domain.soft_delete_block(conn, block["id"])
    assert conn.execute("SELECT count(*) FROM search_index WHERE entity_id = %s", (block["id"],)).fetchone()[0] == 0
    domain.restore_block(conn, block["id"])
    assert conn.execute("SELECT event_version FROM search_index WHERE entity_id = %s", (block["id"],)).fetchone()[0] == 3
    assert outbox(conn)[-1][:4] == ("block", block["id"], "upsert", 3)
    # block restored while its book is deleted: not re-indexed until the book is restored
    domain.soft_delete_block(conn, block["id"])
    domain.soft_delete_book(conn, book["id"])
    n = len(outbox(conn))
    domain.restore_block(conn, block["id"])
    assert len(outbox(conn)) == n
    assert conn.execute("SELECT count(*) FROM search_index").fetchone()[0] == 0
    domain.restore_book(conn, book["id"])
    assert conn.execute("SELECT count(*) FROM search_index WHERE entity_id = %s", (block["id"],)).fetchone()[0] == 1


def test_delete_library_emits_deletes_for_everything_it_held(conn):
    lib = domain.create_library(conn, "L")
    keep = domain.create_library(conn, "Other")
    kept_book = domain.create_book(conn, keep["id"], "Kept")
    b1, blocks1 = domain.create_book_with_blocks(conn, lib["id"], "B1", ["x", "y"])
    b2, blocks2 = domain.create_book_with_blocks(conn, lib["id"], "B2", ["z"])
    events = {r[0] for r in conn.execute("SELECT id FROM chronicle_events WHERE book_id = ANY(%s)", ([b1["id"], b2["id"]],))}
    n_search, n_chron = len(outbox(conn)), len(outbox(conn, "chronicle_outbox_events"))
    result = domain.delete_library(conn, lib["id"])
    assert (result["books"], result["blocks"]) == (2, 3)
    search_deletes = outbox(conn)[n_search:]
    assert {r[1] for r in search_deletes} == {b1["id"], b2["id"]} | {b["id"] for b in blocks1 + blocks2}
    assert {r[2] for r in search_deletes} == {"delete"}
    chron = outbox(conn, "chronicle_outbox_events")[n_chron:]
    assert {r[1] for r in chron} == events and {r[2] for r in chron} == {"delete"}
    assert conn.execute("SELECT count(*) FROM chronicle_events").fetchone()[0] == 1  # the kept book's
    assert [r[0] for r in conn.execute("SELECT entity_id FROM search_index")] == [kept_book["id"]]
    with pytest.raises(domain.NotFound):
        domain.get_library(conn, lib["id"])


def test_replace_book_by_title_never_duplicates(conn):
    lib = domain.create_library(conn, "L")
    first, _, replaced = domain.replace_book_by_title(conn, lib["id"], "T", ["a", "b"])
    assert replaced == 0
    second, blocks, replaced = domain.replace_book_by_title(conn, lib["id"], "T", ["c"])
    assert replaced == 1 and second["id"] != first["id"]
    assert conn.execute("SELECT count(*) FROM books").fetchone()[0] == 1
    assert conn.execute("SELECT count(*) FROM search_index").fetchone()[0] == 2  # book + 1 block
    assert {r[0] for r in conn.execute("SELECT op FROM search_outbox_events WHERE entity_id = %s",
                                       (first["id"],))} == {"upsert", "delete"}


def test_tags_attach_detach_and_delete_write_the_timeline(conn):
    lib = domain.create_library(conn, "L")
    book = domain.create_book(conn, lib["id"], "T")
    tag = domain.create_tag(conn, lib["id"], "python")
    with pytest.raises(domain.Conflict):
        domain.create_tag(conn, lib["id"], "python")
    assert domain.attach_tag(conn, book["id"], tag["id"]) is True
    assert domain.attach_tag(conn, book["id"], tag["id"]) is False
    assert domain.rename_tag(conn, tag["id"], "py")["name"] == "py"
    assert [t["name"] for t in domain.list_book_tags(conn, book["id"])] == ["py"]
    assert domain.delete_tag(conn, tag["id"])["books_detached"] == 1
    types = [r[0] for r in conn.execute("SELECT event_type FROM chronicle_events ORDER BY occurred_at")]
    assert types == ["book_created", "book_tag_attached", "book_tag_detached"]
    assert conn.execute("SELECT count(*) FROM chronicle_outbox_events").fetchone()[0] == 3


def test_writes_refuse_a_connection_inside_a_transaction(db_url):
    with connect(db_url) as c:
        c.execute("SELECT 1")  # opens an implicit transaction
        with pytest.raises(RuntimeError, match="idle connection"):
            domain.create_library(c, "L")


def test_bulk_blocks_are_set_based_and_fast(conn):
    import time

    lib = domain.create_library(conn, "L")
    book = domain.create_book(conn, lib["id"], "Big")
    started = time.monotonic()
    blocks = domain.add_blocks(conn, book["id"], [f"paragraph {i}" for i in range(2000)])
    elapsed = time.monotonic() - started
    assert [b["position"] for b in blocks] == list(range(2000))
    assert counts(conn)["search_outbox_events"] == 2001
    assert conn.execute("SELECT count(DISTINCT occurred_at) FROM chronicle_events").fetchone()[0] == 2001
    assert elapsed < 5, f"2000 blocks took {elapsed:.1f}s"


def test_c15_a_100kb_block_commits_and_wakeups_carry_no_payload(conn, db_url):
    """C15: writing the outbox can never fail the business transaction (NOTIFY payloads >= 8000
    bytes are rejected by PostgreSQL, so the wake-up carries none)."""
    with connect(db_url, autocommit=True) as listener:
        listener.execute("LISTEN wordloom_search_outbox")
        listener.execute("LISTEN wordloom_chronicle_outbox")
        lib = domain.create_library(conn, "L")
        book = domain.create_book(conn, lib["id"], "Big")
        text = ("€ wörd 字 " * 12_000)[:100_000]
        block = domain.create_block(conn, book["id"], text)
        stored = conn.execute("SELECT length(text), snippet FROM search_index WHERE entity_id = %s",
                              (block["id"],)).fetchone()
        assert stored == (100_000, text[:200])
        notes = list(listener.notifies(timeout=1.0, stop_after=4))
        assert {n.channel for n in notes} == {"wordloom_search_outbox", "wordloom_chronicle_outbox"}
        assert all(n.payload == "" for n in notes)


def test_versions_follow_commit_order_when_writers_overlap(conn, db_url):
    """Writer A holds its transaction open; writer B on the same block waits for A's row lock and
    so gets the next version, committed after A's: a worker never sees a lower version commit later."""
    import threading

    from wordloom.domain.unit import write_unit

    lib = domain.create_library(conn, "L")
    book, (block,) = domain.create_book_with_blocks(conn, lib["id"], "T", ["v1"])
    with connect(db_url, autocommit=True) as other:
        done = threading.Event()
        with write_unit(conn) as unit:
            unit.fetchone("domain_book_lock", {"id": book["id"]})
            unit.index("block_updated", "block", [(block["id"], lib["id"], "from A")])
            worker = threading.Thread(target=lambda: (domain.update_block(other, block["id"], content="from B"),
                                                      done.set()))
            worker.start()
            assert not done.wait(0.5), "B must wait for A's lock"
        worker.join(10)
        assert done.is_set()
    rows = conn.execute("SELECT event_version FROM search_outbox_events WHERE entity_id = %s ORDER BY created_at",
                        (block["id"],)).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3]
    assert conn.execute("SELECT text, event_version FROM search_index WHERE entity_id = %s",
                        (block["id"],)).fetchone() == ("from B", 3)
