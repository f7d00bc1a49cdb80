"""Labs inserters: manufacture pending outbox rows for drills, evidence runs and the docs-as-tests.

Two tools (CONTRACT.md section 5):

- `insert_search_pending`: the v3 `labs_009_insert_search_outbox_pending.py`.  Queues
  OUTBOX_INSERT_COUNT search outbox rows for one entity (OUTBOX_ENTITY_ID) or for fresh entities,
  optionally with their search_index rows, and returns the outbox ids in insertion order.
- `insert_chronicle_pending`: its chronicle twin.  Creates library -> bookshelf -> book through the
  domain write path, which records the book's `book_created` chronicle event and its chronicle outbox
  row in the same transaction, and returns what it made.

Versions follow the domain writer: unless OUTBOX_EVENT_VERSION is given, each row takes the
entity's next version from entity_versions, so inserted events never regress a document written by
the API and later API writes keep growing past them.  Everything of one call commits in ONE
transaction: a failure leaves nothing behind.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Mapping

import psycopg

from ..db import query
from ..domain import WriteContext, create_book, create_bookshelf, create_library, get_library
from ..settings import ConfigError, Env

OPS = ("upsert", "delete")
DEFAULT_TEXT = "labs-009 pending search event"


def _uuid(env: Env, name: str) -> uuid.UUID | None:
    value = env.raw(name)
    if value is None:
        return None
    try:
        return uuid.UUID(value)
    except ValueError:
        raise ConfigError(f"{name}={value!r} is not a UUID") from None


def _trace(env: Env) -> tuple[str | None, str | None]:
    return env.str("OUTBOX_TRACEPARENT"), env.str("OUTBOX_TRACESTATE")


@dataclass(frozen=True)
class SearchInsertSpec:
    """What `insert_search_pending` writes; `from_env` reads the v3 variables."""

    count: int = 1
    entity_type: str = "book"
    entity_id: uuid.UUID | None = None  # None: a fresh entity per row
    op: str = "upsert"
    create_search_index_row: bool = False
    search_index_text: str = DEFAULT_TEXT
    library_id: uuid.UUID | None = None
    traceparent: str | None = None
    tracestate: str | None = None
    event_version: int | None = None  # None: the entity's next version (entity_versions)

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "SearchInsertSpec":
        env = Env(environ)
        op = (env.str("OUTBOX_OP", "upsert") or "").lower()
        if op not in OPS:
            raise ConfigError(f"OUTBOX_OP={op!r} must be one of: {', '.join(OPS)}")
        entity_type = env.str("OUTBOX_ENTITY_TYPE", "book")
        if len(entity_type) > 50:
            raise ConfigError("OUTBOX_ENTITY_TYPE is longer than 50 characters")
        traceparent, tracestate = _trace(env)
        return cls(
            count=env.int("OUTBOX_INSERT_COUNT", 1, minimum=1),
            entity_type=entity_type,
            entity_id=_uuid(env, "OUTBOX_ENTITY_ID"),
            op=op,
            create_search_index_row=env.bool("OUTBOX_CREATE_SEARCH_INDEX_ROW", False),
            search_index_text=env.str("OUTBOX_SEARCH_INDEX_TEXT", DEFAULT_TEXT),
            library_id=_uuid(env, "OUTBOX_LIBRARY_ID"),
            traceparent=traceparent,
            tracestate=tracestate,
            event_version=env.int("OUTBOX_EVENT_VERSION", None, minimum=1),
        )


def insert_search_pending(conn: psycopg.Connection, spec: SearchInsertSpec) -> list[uuid.UUID]:
    """Queue `spec.count` pending search outbox rows in one transaction; return their ids in order.

    With create_search_index_row, an upsert also writes the entity's search_index row at the same
    version (so the worker has a document to carry), and a delete removes it (so the worker carries
    the removal instead of re-creating the document from a row that is still there)."""
    ids: list[uuid.UUID] = []
    with conn.transaction():
        for _ in range(spec.count):
            entity_id = spec.entity_id or uuid.uuid4()
            key = {"entity_type": spec.entity_type, "entity_id": entity_id}
            version = conn.execute(query("labs_bump_entity_version"),
                                   {**key, "explicit_version": spec.event_version}).fetchone()[0]
            if spec.event_version is not None:
                version = spec.event_version
            if spec.create_search_index_row:
                if spec.op == "upsert":
                    conn.execute(query("labs_upsert_search_index_row"), {
                        **key, "library_id": spec.library_id, "text": spec.search_index_text,
                        "event_version": version,
                    })
                else:
                    conn.execute(query("labs_remove_search_index_row"), {**key, "event_version": version})
            row = conn.execute(query("outbox_insert_event", "search"), {
                **key, "op": spec.op, "event_version": version,
                "traceparent": spec.traceparent, "tracestate": spec.tracestate,
            }).fetchone()
            ids.append(row[0])
    return ids


@dataclass(frozen=True)
class ChronicleInsertSpec:
    """What `insert_chronicle_pending` writes; `from_env` reads the labs variables."""

    library_id: uuid.UUID | None = None  # None: a new library
    book_title: str | None = None
    traceparent: str | None = None
    tracestate: str | None = None

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "ChronicleInsertSpec":
        env = Env(environ)
        traceparent, tracestate = _trace(env)
        return cls(library_id=_uuid(env, "OUTBOX_LIBRARY_ID"), book_title=env.str("OUTBOX_BOOK_TITLE"),
                   traceparent=traceparent, tracestate=tracestate)


def insert_chronicle_pending(conn: psycopg.Connection, spec: ChronicleInsertSpec) -> dict:
    """library -> bookshelf -> book through the domain write path; returns the ids it made.

    The book's write commits its `book_created` chronicle event and that event's chronicle outbox
    row (pending) together, plus the book's search_index row and search outbox row.  `conn` must be
    idle (autocommit): the domain functions own their transactions."""
    ctx = WriteContext.from_headers(spec.traceparent, spec.tracestate, source="labs",
                                    provenance="labs:009", actor_kind="system")
    tag = uuid.uuid4().hex[:8]
    if spec.library_id is not None:
        library = get_library(conn, spec.library_id)
    else:
        library = create_library(conn, f"labs-009 chronicle {tag}", ctx=ctx)
    shelf = create_bookshelf(conn, library["id"], f"labs-009 shelf {tag}", ctx=ctx)
    book = create_book(conn, library["id"], spec.book_title or f"labs-009 chronicle book {tag}",
                       "inserted by the labs chronicle inserter", bookshelf_id=shelf["id"], ctx=ctx)
    with conn.cursor() as cur:
        event_id, event_type, outbox_id = cur.execute(
            query("labs_chronicle_rows_of_book"), {"book_id": book["id"]}).fetchone()
        search_ids = [r[0] for r in cur.execute(
            query("labs_search_outbox_rows_of_entity"), {"entity_type": "book", "entity_id": book["id"]})]
    return {
        "library_id": str(library["id"]),
        "bookshelf_id": str(shelf["id"]),
        "book_id": str(book["id"]),
        "chronicle_event_id": str(event_id),
        "event_type": event_type,
        "outbox_id": str(outbox_id),
        "search_outbox_id": str(search_ids[-1]) if search_ids else None,
    }
