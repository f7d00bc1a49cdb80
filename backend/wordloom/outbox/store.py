"""Every operation on an outbox table, by name.  The SQL lives in db/queries/outbox.sql.

`OutboxStore(projection)` is bound to one table (search | chronicle) and takes the connection per
call, so the runner, a sink's transaction and the tests share one code path.  Operator tools that
change rows in bulk (audited replay, prune) live in wordloom/ops with their SQL in ops.sql.
Write methods on claimed rows return the ids they really changed; callers compare that set with
the ids they meant, because a row whose lease was lost belongs to someone else now.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Iterable, Sequence

import psycopg
from psycopg.rows import dict_row

from ..db.queries import OUTBOX_TABLES, query

STATUSES = ("pending", "processing", "done", "failed")
OPS = ("upsert", "delete")


@dataclass(frozen=True)
class OutboxEvent:
    id: uuid.UUID
    entity_type: str
    entity_id: uuid.UUID
    op: str
    event_version: int
    attempts: int
    reclaim_count: int
    created_at: datetime
    traceparent: str | None = None
    tracestate: str | None = None

    @property
    def entity_key(self) -> tuple[str, uuid.UUID]:
        return (self.entity_type, self.entity_id)


@dataclass(frozen=True)
class FailedRow:
    """One row to retry (delay_seconds set) or to fail (delay_seconds None)."""

    id: uuid.UUID
    reason: str
    error: str
    delay_seconds: float | None = None


@dataclass(frozen=True)
class ReclaimResult:
    to_pending: list[uuid.UUID]
    to_failed: list[uuid.UUID]
    failed_ops: list[str]


@dataclass(frozen=True)
class BacklogStats:
    lag: int
    oldest_age_seconds: float
    inflight: int
    stuck: int
    failed: int


def _ids(values: Iterable) -> list[uuid.UUID]:
    return [v if isinstance(v, uuid.UUID) else uuid.UUID(str(v)) for v in values]


class OutboxStore:
    def __init__(self, projection: str):
        if projection not in OUTBOX_TABLES:
            raise ValueError(f"unknown projection {projection!r}")
        self.projection = projection
        self.table = OUTBOX_TABLES[projection]

    def _sql(self, name: str) -> str:
        return query(name, self.projection)

    def _returned_ids(self, conn: psycopg.Connection, name: str, params: dict) -> set[uuid.UUID]:
        return {row[0] for row in conn.execute(self._sql(name), params).fetchall()}

    # -- producing (tools, labs, tests) -------------------------------------------------------
    def insert_event(self, conn: psycopg.Connection, entity_type: str, entity_id, op: str, event_version: int,
                     traceparent: str | None = None, tracestate: str | None = None) -> uuid.UUID:
        row = conn.execute(self._sql("outbox_insert_event"), {
            "entity_type": entity_type, "entity_id": entity_id, "op": op, "event_version": event_version,
            "traceparent": traceparent, "tracestate": tracestate,
        }).fetchone()
        return row[0]

    # -- the claimed-row life cycle -------------------------------------------------------------
    def claim_batch(self, conn: psycopg.Connection, owner: str, limit: int, lease_seconds: float,
                    *, suspects: bool = False) -> list[OutboxEvent]:
        """Claim up to `limit` due pending rows (oldest first).  suspects=True claims among rows
        reclaimed before instead of clean ones."""
        with conn.cursor(row_factory=dict_row) as cur:
            name = "outbox_claim_suspects" if suspects else "outbox_claim_batch"
            cur.execute(self._sql(name), {"owner": owner, "limit": limit, "lease_seconds": float(lease_seconds)})
            rows = cur.fetchall()
        events = [OutboxEvent(**row) for row in rows]
        events.sort(key=lambda e: (e.created_at, str(e.id)))
        return events

    def renew_lease(self, conn: psycopg.Connection, owner: str, ids: Sequence, lease_seconds: float) -> set[uuid.UUID]:
        if not ids:
            return set()
        return self._returned_ids(conn, "outbox_renew_lease",
                                  {"owner": owner, "ids": _ids(ids), "lease_seconds": float(lease_seconds)})

    def settled_by(self, conn: psycopg.Connection, owner: str, ids: Sequence) -> set[uuid.UUID]:
        """Those of `ids` this owner has already settled as done or failed."""
        if not ids:
            return set()
        return self._returned_ids(conn, "outbox_settled_by", {"owner": owner, "ids": _ids(ids)})

    def ack_done(self, conn: psycopg.Connection, owner: str, ids: Sequence) -> set[uuid.UUID]:
        if not ids:
            return set()
        return self._returned_ids(conn, "outbox_ack_done", {"owner": owner, "ids": _ids(ids)})

    def schedule_retry(self, conn: psycopg.Connection, owner: str, rows: Sequence[FailedRow]) -> set[uuid.UUID]:
        if not rows:
            return set()
        return self._returned_ids(conn, "outbox_schedule_retry", {
            "owner": owner,
            "ids": [r.id for r in rows],
            "delays": [float(r.delay_seconds or 0.0) for r in rows],
            "errors": [r.error[:2000] for r in rows],
            "reasons": [r.reason[:80] for r in rows],
        })

    def mark_failed(self, conn: psycopg.Connection, owner: str, rows: Sequence[FailedRow]) -> set[uuid.UUID]:
        if not rows:
            return set()
        return self._returned_ids(conn, "outbox_mark_failed", {
            "owner": owner,
            "ids": [r.id for r in rows],
            "errors": [r.error[:2000] for r in rows],
            "reasons": [r.reason[:80] for r in rows],
        })

    def reclaim_expired(self, conn: psycopg.Connection, max_processing_seconds: float, max_reclaims: int,
                        limit: int = 1000) -> ReclaimResult:
        rows = conn.execute(self._sql("outbox_reclaim_expired"), {
            "max_processing_seconds": float(max_processing_seconds), "max_reclaims": max_reclaims, "limit": limit,
        }).fetchall()
        return ReclaimResult(to_pending=[r[0] for r in rows if r[1] == "pending"],
                             to_failed=[r[0] for r in rows if r[1] == "failed"],
                             failed_ops=[r[2] for r in rows if r[1] == "failed"])

    def release_owned(self, conn: psycopg.Connection, owner: str) -> set[uuid.UUID]:
        return self._returned_ids(conn, "outbox_release_owned", {"owner": owner})

    def backlog_stats(self, conn: psycopg.Connection) -> BacklogStats:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql("outbox_backlog_stats"))
            row = cur.fetchone()
        return BacklogStats(lag=row["lag"], oldest_age_seconds=float(row["oldest_age_seconds"]),
                            inflight=row["inflight"], stuck=row["stuck"], failed=row["failed"])

    def events_by_id(self, conn: psycopg.Connection, ids: Sequence) -> dict[uuid.UUID, dict]:
        with conn.cursor(row_factory=dict_row) as cur:
            cur.execute(self._sql("outbox_events_by_id"), {"ids": _ids(ids)})
            return {row["id"]: row for row in cur.fetchall()}
