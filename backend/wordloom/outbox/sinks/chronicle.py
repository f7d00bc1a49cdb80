"""Chronicle sink: chronicle_events -> chronicle_entries, in the runner's transaction.

The entries are written in the same transaction that acks the outbox rows, so a batch either
lands with its acks or not at all: the effect is exactly once even when a batch is delivered twice
(a redelivery rewrites identical rows, and the upsert skips rows that would not change, so not
even updated_at moves; C04).  State transfer here too: an event that still exists is upserted
whatever the row's op says, an event that is gone takes its entry with it.

One statement per batch (outbox_chronicle_project): project, remove orphans and report what
happened to each event id, in a single round trip.

deliver_in_claim() goes one step further for the runner's loop: claim, project and settle in one
statement (outbox_chronicle_deliver_in_claim), because a sink in the outbox's own database needs
no lease while it works: one round trip per batch, and one write per outbox row instead of two.
"""
from __future__ import annotations

import psycopg

from ...db.queries import query
from ..outcomes import Outcome
from ..store import OutboxEvent

# What the statement says about an event id -> the noop reason of a delivered row (None: a write).
_NOOP_REASON = {"written": None, "removed": None, "unchanged": "unchanged", "missing": "absent"}


class ChronicleSink:
    projection = "chronicle"

    def __init__(self, projection_version: int = 1):
        self.projection_version = projection_version

    def prepare(self, conn: psycopg.Connection, events: list[OutboxEvent]) -> None:
        """Nothing to read ahead: the whole batch is one statement (complete)."""
        return None

    def complete(self, conn: psycopg.Connection, events: list[OutboxEvent], prepared: None = None) -> list[Outcome]:
        outcomes: list[Outcome] = []
        valid = []
        for event in events:
            if event.op in ("upsert", "delete"):
                valid.append(event)
            else:
                outcomes.append(Outcome.failure(event.id, "unknown_op", f"unknown op {event.op!r}"))
        if not valid:
            return outcomes
        ids = sorted({e.entity_id for e in valid}, key=str)
        result = dict(conn.execute(query("outbox_chronicle_project"),
                                   {"ids": ids, "projection_version": self.projection_version}).fetchall())
        for event in valid:
            # "unchanged": already identical, or a newer projection_version owns the entry.
            outcomes.append(Outcome.done(event.id, noop_reason=_NOOP_REASON[result[event.entity_id]]))
        return outcomes

    def deliver_in_claim(self, conn: psycopg.Connection, owner: str, limit: int
                         ) -> list[tuple[OutboxEvent, Outcome, bool]]:
        """Claim up to `limit` clean rows, project them and settle them, in one autocommitted
        statement: (event, outcome, settled) per claimed row, oldest first.  Raises whatever the
        statement raises, and then nothing of it happened (the runner falls back to the durable
        claim, which finds the row at fault)."""
        # Never prepared: a generic plan cannot see that LIMIT is small and hash-joins whole tables
        # (a sequential scan of the outbox and of chronicle_events per batch: 7.5 ms instead of 1.5).
        rows = conn.execute(query("outbox_chronicle_deliver_in_claim"),
                            {"owner": owner, "limit": limit, "projection_version": self.projection_version},
                            prepare=False).fetchall()
        out = []
        for *fields, what, settled in rows:
            event = OutboxEvent(*fields)
            if what == "unknown_op":
                outcome = Outcome.failure(event.id, "unknown_op", f"unknown op {event.op!r}")
            else:
                outcome = Outcome.done(event.id, noop_reason=_NOOP_REASON[what])
            out.append((event, outcome, settled))
        return out

    def process(self, conn: psycopg.Connection, events: list[OutboxEvent]) -> list[Outcome]:
        return self.complete(conn, events, self.prepare(conn, events))
