"""Rebuild chronicle_entries from chronicle_events.

Phases (keyset batches, one transaction + checkpoint each, resumable like the search rebuild):
  events   upsert an entry per event; a lower projection_version never overwrites a higher one
  orphans  (--truncate only) delete entries whose event no longer exists
--truncate never empties the table (upsert, then sweep).  --emit-outbox queues one
chronicle_outbox_events `upsert` per rebuilt event and NEVER deletes outbox rows: v3's
`--truncate --emit-outbox` deleted the whole chronicle outbox, pending and failed rows included.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import psycopg

from ..db.queries import query
from ..settings import Env
from .progress import Progress
from .rebuild_runs import (RebuildUsageError, begin_checkpoint, clear_checkpoint, exclusive_run,
                           projection_run, walk_phases)

PROJECTION = "chronicle_events_to_entries"
PHASES = ("events", "orphans")


def projection_version_from_env() -> int:
    env = Env()
    return env.int("CHRONICLE_PROJECTION_VERSION", None, minimum=1) or env.int("OUTBOX_PROJECTION_VERSION", 1, minimum=1)


@dataclass(frozen=True)
class ChronicleRebuildOptions:
    truncate: bool = False
    emit_outbox: bool = False
    batch_size: int = 500
    limit: int = 0
    projection_version: int = 1

    def checkpoint_key(self) -> dict:
        return {"truncate": self.truncate, "emit_outbox": self.emit_outbox, "limit": self.limit,
                "projection_version": self.projection_version}


@dataclass
class ChronicleRebuildResult:
    events: int
    written: int
    orphans_removed: int
    emitted: int
    resumed: bool


def _events_batch(conn, after, limit, opts: ChronicleRebuildOptions, counts: dict):
    rows = conn.execute(query("rebuild_chronicle_page"), {
        "after": after, "limit": limit, "projection_version": opts.projection_version}).fetchall()
    if not rows:
        return None, 0
    ids = [r[0] for r in rows]
    counts["events"] = counts.get("events", 0) + len(rows)
    counts["written"] = counts.get("written", 0) + sum(1 for r in rows if r[1])
    if opts.emit_outbox:
        conn.execute(query("rebuild_chronicle_emit"), {"ids": ids})
        counts["emitted"] = counts.get("emitted", 0) + len(ids)
    return ids[-1], len(rows)


def _orphans_batch(conn, after, limit, opts, counts: dict):
    last_id, scanned, deleted = conn.execute(query("rebuild_chronicle_delete_orphans"),
                                             {"after": after, "limit": limit}).fetchone()
    if last_id is None:
        return None, 0
    counts["orphans_removed"] = counts.get("orphans_removed", 0) + deleted
    return last_id, scanned


BATCHES = {"events": _events_batch, "orphans": _orphans_batch}


def rebuild_chronicle_entries(conn: psycopg.Connection, opts: ChronicleRebuildOptions, *, resume: bool = False,
                              out: Callable[[str], None] = print) -> ChronicleRebuildResult:
    """`conn` must be in autocommit mode: each batch opens its own transaction."""
    if opts.truncate and opts.limit:
        raise RebuildUsageError("--truncate cannot be combined with --limit: a partial rebuild cannot tell "
                                "which entries are orphans")
    with exclusive_run(conn, PROJECTION), projection_run(conn, PROJECTION):
        cp = begin_checkpoint(conn, PROJECTION, PHASES[0], opts.checkpoint_key(), resume, out)
        total = conn.execute(query("rebuild_chronicle_source_count")).fetchone()[0]
        with Progress("rebuild chronicle_entries", total) as progress:
            phases = [p for p in PHASES if p != "orphans" or opts.truncate]
            walk_phases(conn, PROJECTION, cp, phases, BATCHES, opts, progress, {"events": "events"})
        clear_checkpoint(conn, PROJECTION)
    c = cp.counts
    return ChronicleRebuildResult(c.get("events", 0), c.get("written", 0), c.get("orphans_removed", 0),
                                  c.get("emitted", 0), cp.resumed)

