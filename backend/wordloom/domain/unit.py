"""One write = one transaction: business rows, search_index, both outboxes, chronicle event.

`write_unit(conn, ctx)` opens the transaction and hands out a `WriteUnit` whose methods queue the
projection side of the write.  The produced-events counter is bumped only after COMMIT, so a
rolled-back write never shows in `outbox_produced_total`.
"""
from __future__ import annotations

import json
import uuid
from collections import Counter
from contextlib import contextmanager
from typing import Iterator, Sequence

import psycopg
from psycopg.rows import dict_row
from psycopg.pq import TransactionStatus

from ..db import query
from ..observability.api_metrics import OUTBOX_PRODUCED
from .context import DEFAULT_CONTEXT, WriteContext

SEARCHABLE = ("book", "block")


class WriteUnit:
    def __init__(self, conn: psycopg.Connection, ctx: WriteContext):
        self.conn = conn
        self.ctx = ctx
        # (event_type, outbox entity_type) -> rows queued
        self.produced: Counter[tuple[str, str]] = Counter()

    def fetchone(self, name: str, params: dict) -> dict | None:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query(name), params)
            return cur.fetchone()

    def fetchall(self, name: str, params: dict) -> list[dict]:
        with self.conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query(name), params)
            return cur.fetchall()

    def execute(self, name: str, params: dict) -> int:
        """Run a named statement; return the affected-row count."""
        return self.conn.execute(query(name), params).rowcount

    def _trace(self) -> dict:
        return {"traceparent": self.ctx.traceparent, "tracestate": self.ctx.tracestate}

    def index(self, event_type: str, entity_type: str, docs: Sequence[tuple[uuid.UUID, uuid.UUID, str]]) -> dict:
        """(entity_id, library_id, text) → search_index upsert + search outbox upsert each.
        Returns {entity_id: event_version}."""
        if not docs:
            return {}
        assert entity_type in SEARCHABLE
        rows = self.fetchall("domain_index_entities", {
            "entity_type": entity_type,
            "entity_ids": [d[0] for d in docs],
            "library_ids": [d[1] for d in docs],
            "texts": [d[2] for d in docs],
            **self._trace(),
        })
        self.produced[(event_type, entity_type)] += len(rows)
        return {r["entity_id"]: r["event_version"] for r in rows}

    def unindex(self, event_type: str, entity_type: str, entity_ids: Sequence[uuid.UUID]) -> dict:
        """Remove from search: search_index row deleted + search outbox delete each."""
        if not entity_ids:
            return {}
        assert entity_type in SEARCHABLE
        rows = self.fetchall("domain_unindex_entities", {
            "entity_type": entity_type, "entity_ids": list(entity_ids), **self._trace(),
        })
        self.produced[(event_type, entity_type)] += len(rows)
        return {r["entity_id"]: r["event_version"] for r in rows}

    def chronicle(self, event_type: str, events: Sequence[tuple[uuid.UUID, uuid.UUID | None, dict]]) -> list[uuid.UUID]:
        """(book_id, block_id, payload) → chronicle_events row + chronicle outbox upsert each."""
        if not events:
            return []
        ctx = self.ctx
        rows = self.fetchall("domain_chronicle_record", {
            "event_type": event_type,
            "book_ids": [e[0] for e in events],
            "block_ids": [e[1] for e in events],
            "payloads": [json.dumps(e[2], default=str) for e in events],
            "actor_id": ctx.actor_id, "provenance": ctx.provenance, "source": ctx.source,
            "actor_kind": ctx.actor_kind, "correlation_id": ctx.correlation_id,
            **self._trace(),
        })
        self.produced[(event_type, "chronicle_event")] += len(rows)
        return [r["entity_id"] for r in rows]

    def forget_chronicle(self, event_type: str, book_ids: Sequence[uuid.UUID]) -> int:
        """Queue chronicle outbox deletes for the events of books about to be hard-deleted."""
        if not book_ids:
            return 0
        rows = self.fetchall("domain_chronicle_forget_books", {"book_ids": list(book_ids), **self._trace()})
        self.produced[(event_type, "chronicle_event")] += len(rows)
        return len(rows)

    def publish_metrics(self) -> None:
        for (event_type, entity_type), n in self.produced.items():
            OUTBOX_PRODUCED.labels(event_type=event_type, entity_type=entity_type).inc(n)


@contextmanager
def write_unit(conn: psycopg.Connection, ctx: WriteContext | None = None) -> Iterator[WriteUnit]:
    """Run one write in its own transaction.

    The connection must be idle (autocommit, or no transaction open): a write that silently became
    a savepoint of someone else's transaction could be counted as produced and then rolled back.
    """
    if conn.info.transaction_status != TransactionStatus.IDLE:
        raise RuntimeError("domain writes own their transaction: pass an idle connection "
                           "(autocommit=True, or commit/rollback first)")
    unit = WriteUnit(conn, ctx or DEFAULT_CONTEXT)
    with conn.transaction():
        yield unit
    unit.publish_metrics()


def read_rows(conn: psycopg.Connection, name: str, params: dict) -> list[dict]:
    """Run a named read.  On an idle connection it runs in its own short transaction, so a
    non-autocommit connection is left idle again and the next write can own its transaction."""
    def run() -> list[dict]:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(query(name), params)
            return cur.fetchall()

    if conn.info.transaction_status == TransactionStatus.IDLE:
        with conn.transaction():
            return run()
    return run()


def read_row(conn: psycopg.Connection, name: str, params: dict) -> dict | None:
    rows = read_rows(conn, name, params)
    return rows[0] if rows else None
