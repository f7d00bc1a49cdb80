"""`outbox prune`: delete `done` rows processed before a cutoff, in batches.

Only `done` rows are ever deleted (the status is re-checked inside the DELETE); pending, processing
and failed rows are never touched.  Each batch is its own short transaction so a prune of millions
of rows never holds locks for long or bloats one transaction.
"""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import psycopg

from ..db.queries import query
from .progress import Progress

BATCH_SIZE = 5000


@dataclass(frozen=True)
class PruneResult:
    outbox: str
    cutoff: datetime
    prunable: int
    deleted: int
    kept_pending: int
    kept_processing: int
    kept_failed: int


def prune_done(conn: psycopg.Connection, outbox: str, older_than_seconds: float, *, dry_run: bool = False,
               batch_size: int = BATCH_SIZE) -> PruneResult:
    """`conn` must be in autocommit mode: each batch commits on its own."""
    cutoff = conn.execute(query("prune_cutoff"), {"seconds": older_than_seconds}).fetchone()[0]
    prunable, pending, processing, failed = conn.execute(query("prune_counts", outbox), {"cutoff": cutoff}).fetchone()
    deleted = 0
    if not dry_run and prunable:
        with Progress(f"prune {outbox} outbox", prunable) as progress:
            while True:
                n = conn.execute(query("prune_done_batch", outbox), {"cutoff": cutoff, "limit": batch_size}).fetchone()[0]
                if not n:
                    break
                deleted += n
                progress.update(n)
    return PruneResult(outbox, cutoff, prunable, deleted, pending, processing, failed)
