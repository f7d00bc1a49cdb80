"""Rebuild search_index from the source-of-truth tables (books, blocks).

Phases, each a keyset walk in batches of --batch-size, each batch one transaction that also
commits the checkpoint (so --resume after a crash continues exactly after the last committed batch):
  books   live books        -> entity_type 'book',  text = title + "\\n" + summary
  blocks  live blocks of live books -> entity_type 'block', text = content
  orphans (--truncate only) delete search_index rows whose entity is not live any more
A changed row gets a new version from entity_versions, exactly like a domain write.

--truncate never empties the table (v3 committed a TRUNCATE before rebuilding, so search was
empty for the whole rebuild).  It is "upsert everything, then sweep": searches keep working all
along, and when the sweep ends search_index holds exactly the live source rows.  With
--emit-outbox the sweep also queues a `delete` per removed row, so Elasticsearch loses its orphan
documents too.  A partial rebuild (--limit) cannot say what is an orphan, so --truncate refuses it.
"""
from __future__ import annotations

import uuid
from dataclasses import dataclass
from typing import Callable

import psycopg

from ..db.queries import query
from .progress import Progress
from .rebuild_runs import (RebuildUsageError, begin_checkpoint, clear_checkpoint, exclusive_run,
                           projection_run, walk_phases)

PROJECTION = "search_sot_to_search_index"
PHASES = ("books", "blocks", "orphans")


@dataclass(frozen=True)
class SearchRebuildOptions:
    truncate: bool = False
    emit_outbox: bool = False
    batch_size: int = 500
    limit: int = 0  # per entity type; 0 = all

    def checkpoint_key(self) -> dict:
        # batch_size may change between a crash and --resume; the rest defines the result.
        return {"truncate": self.truncate, "emit_outbox": self.emit_outbox, "limit": self.limit}


@dataclass
class SearchRebuildResult:
    books: int
    blocks: int
    changed: int
    orphans_removed: int
    emitted_upserts: int
    emitted_deletes: int
    resumed: bool


def _apply(conn: psycopg.Connection, entity_type: str, rows: list, emit: bool, counts: dict) -> None:
    if not rows:
        return
    result = conn.execute(query("rebuild_search_apply"), {
        "entity_type": entity_type,
        "entity_ids": [r[0] for r in rows], "library_ids": [r[1] for r in rows], "texts": [r[2] for r in rows],
    }).fetchall()
    counts["changed"] = counts.get("changed", 0) + sum(1 for r in result if r[2])
    if emit:
        conn.execute(query("rebuild_search_emit"), {
            "op": "upsert", "entity_types": [entity_type] * len(result),
            "entity_ids": [r[0] for r in result], "versions": [r[1] for r in result]})
        counts["emitted_upserts"] = counts.get("emitted_upserts", 0) + len(result)


def _books_batch(conn, after: uuid.UUID, limit: int, opts: SearchRebuildOptions, counts: dict):
    ids = [r[0] for r in conn.execute(query("rebuild_search_lock_book_page"), {"after": after, "limit": limit})]
    if not ids:
        return None, 0
    live = conn.execute(query("rebuild_search_live_books"), {"ids": ids}).fetchall()
    _apply(conn, "book", live, opts.emit_outbox, counts)
    counts["books"] = counts.get("books", 0) + len(live)
    return ids[-1], len(ids)


def _blocks_batch(conn, after: uuid.UUID, limit: int, opts: SearchRebuildOptions, counts: dict):
    page = conn.execute(query("rebuild_search_block_page"), {"after": after, "limit": limit}).fetchall()
    if not page:
        return None, 0
    # Lock the books first: the domain writer locks a block's book before writing the block.
    conn.execute(query("rebuild_search_lock_books"), {"ids": sorted({r[1] for r in page})})
    live = conn.execute(query("rebuild_search_live_blocks"), {"ids": [r[0] for r in page]}).fetchall()
    _apply(conn, "block", live, opts.emit_outbox, counts)
    counts["blocks"] = counts.get("blocks", 0) + len(live)
    return page[-1][0], len(page)


def _orphans_batch(conn, after: uuid.UUID, limit: int, opts: SearchRebuildOptions, counts: dict):
    ids = [r[0] for r in conn.execute(query("rebuild_search_lock_index_page"), {"after": after, "limit": limit})]
    if not ids:
        return None, 0
    gone = conn.execute(query("rebuild_search_delete_orphans"), {"ids": ids}).fetchall()
    counts["orphans_removed"] = counts.get("orphans_removed", 0) + len(gone)
    if opts.emit_outbox and gone:
        conn.execute(query("rebuild_search_emit"), {
            "op": "delete", "entity_types": [r[0] for r in gone],
            "entity_ids": [r[1] for r in gone], "versions": [r[2] for r in gone]})
        counts["emitted_deletes"] = counts.get("emitted_deletes", 0) + len(gone)
    return ids[-1], len(ids)


BATCHES: dict[str, Callable] = {"books": _books_batch, "blocks": _blocks_batch, "orphans": _orphans_batch}


def rebuild_search_index(conn: psycopg.Connection, opts: SearchRebuildOptions, *, resume: bool = False,
                         out: Callable[[str], None] = print) -> SearchRebuildResult:
    """`conn` must be in autocommit mode: each batch opens its own transaction."""
    if opts.truncate and opts.limit:
        raise RebuildUsageError("--truncate cannot be combined with --limit: a partial rebuild cannot tell "
                                "which search_index rows are orphans")
    with exclusive_run(conn, PROJECTION), projection_run(conn, PROJECTION):
        cp = begin_checkpoint(conn, PROJECTION, PHASES[0], opts.checkpoint_key(), resume, out)
        sizes = conn.execute(query("rebuild_search_source_counts")).fetchone()
        total = sizes[0] + sizes[1] + (sizes[2] if opts.truncate else 0)
        with Progress("rebuild search_index", total) as progress:
            phases = [p for p in PHASES if p != "orphans" or opts.truncate]
            walk_phases(conn, PROJECTION, cp, phases, BATCHES, opts, progress, {"books": "books", "blocks": "blocks"})
        clear_checkpoint(conn, PROJECTION)
    c = cp.counts
    return SearchRebuildResult(c.get("books", 0), c.get("blocks", 0), c.get("changed", 0),
                               c.get("orphans_removed", 0), c.get("emitted_upserts", 0),
                               c.get("emitted_deletes", 0), cp.resumed)

