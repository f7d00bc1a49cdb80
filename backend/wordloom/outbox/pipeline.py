"""Batches in flight: while batches are at the sink, the next is claimed and read.

A batch is two halves (runner.begin_batch / finish_batch): the database part (claim, BEGIN,
entity locks, current state, encoded actions) and the delivery (the `_bulk`, its answers, the acks,
COMMIT).  One after the other, the worker waits on PostgreSQL and then on Elasticsearch, and each
server idles while the other works.  Here batch N+1's database part runs on this thread and a free
connection while up to `depth` earlier batches (OUTBOX_PIPELINE_DEPTH) are delivered on delivery
threads, each on its own connection, so both servers (and the two cores of a small machine) are
busy at once.

It reads ahead only while there is a backlog (the last claim came back full).  Under a trickle of
writes it waits for the batches in flight before claiming again, like the one-batch loop, so events
that arrive meanwhile share one batch: reading ahead there would only make more, smaller batches.

Why this keeps every guarantee of the one-batch loop:
- each batch is still one transaction that holds its entities' advisory locks until its acks
  commit; batches in flight behave exactly like that many workers, which the claim (SKIP LOCKED),
  the locks and the external versions are built for (C11).  N+1 waiting for a lock N holds is
  fine: N commits on its own thread, never waiting for this one;
- a row reclaimed before (a suspect) is processed alone, after the batch in flight has finished;
- when a batch in flight fails, its rows are re-run one by one only after N+1 is finished,
  because they may need locks N+1 holds on this thread;
- any error leaving step() first ends the batches in flight (quiesce), so the loop's handlers
  (back off, release, reconnect) never close a connection a delivery still uses;
- stop(): step() claims nothing more, close() finishes the batches in flight, then the runner
  releases what is left.
"""
from __future__ import annotations

import logging
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..redact import redact

if TYPE_CHECKING:
    import psycopg

    from .runner import Batch, Runner

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, runner: "Runner", depth: int = 1):
        self.runner = runner
        self.depth = max(1, depth)  # batches at the sink at once (OUTBOX_PIPELINE_DEPTH)
        self.in_flight: deque[tuple["Batch", Future]] = deque()  # oldest first
        self._backlog = False  # the last claim came back full: read ahead while one is in flight
        self._pool: ThreadPoolExecutor | None = None

    def _submit(self, batch: "Batch") -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(self.depth, thread_name_prefix=f"deliver-{self.runner.projection}")
        self.in_flight.append((batch, self._pool.submit(self.runner.finish_batch, batch)))

    def _free_conn(self) -> "psycopg.Connection":
        busy = {id(batch.conn) for batch, _ in self.in_flight}
        return next(c for c in self.runner.batch_connections() if id(c) not in busy)

    # -- one loop iteration ---------------------------------------------------------------------------
    def step(self) -> bool:
        """Claim and begin the next batch, then hand it to the delivery thread once the batch in
        flight is done.  True when the loop should go on at once (something was claimed)."""
        r = self.runner
        batch: "Batch | None" = None
        try:
            if not self._backlog:
                # The last claim took what there was: no backlog to read ahead of.  Let the batch
                # in flight finish first, so the next claim gathers what arrived meanwhile into
                # one batch instead of many tiny ones (each costs its round trips and spans: at a
                # steady trickle that CPU is what the latency of every event waits for).
                self.drain()
            conn = self._free_conn()
            r._maybe_reclaim(conn)
            events = r.claim(conn) if not r.stopping.is_set() else []
            self._backlog = len(events) >= r.settings.batch_size
            if not events:
                self.drain()
                return False
            if events[0].reclaim_count > 0:
                self.drain()  # a suspect goes alone, with nothing else of ours in flight
                r.run_claimed(events, conn)
                return True
            r.lease_keeper.track((e.id for e in events), key=conn)
            if r.experiments.process_sleep_seconds:
                r._wait(r.experiments.process_sleep_seconds, r.hard_stop)
            if r.hard_stop.is_set():
                self.drain()
                r.lease_keeper.untrack(conn)
                return False  # the rows are released by the runner's shutdown
            try:
                batch = r.begin_batch(events, conn)
            except Exception as exc:  # rolled back already; find the row that broke it, alone
                self.drain()
                self._settle_failed(events, conn, exc)
                return True
            while len(self.in_flight) >= self.depth:
                if self._drain_oldest(next_batch=batch):
                    return True  # a batch in flight failed: `batch` was finished here, in order
            self._submit(batch)
            return True
        except BaseException as exc:
            if batch is not None and all(b is not batch for b, _ in self.in_flight):
                r.abort_batch(batch, exc)
            self.quiesce()
            for key in r.batch_connections():  # nothing of ours is in flight any more
                r.lease_keeper.untrack(key)
            raise

    # -- the batch in flight ----------------------------------------------------------------------------
    def drain(self) -> None:
        """Wait for every batch in flight and account for it."""
        while self.in_flight:
            self._drain_oldest()

    def _drain_oldest(self, next_batch: "Batch | None" = None) -> bool:
        """Wait for the oldest batch in flight and account for it.  True when `next_batch` (begun
        on this thread) had to be finished here because that batch failed: its rows are re-run
        one by one on this thread, and may need entity locks `next_batch` holds.  (Batches still
        in flight hold locks too, but they commit on their own threads, never waiting for this one.)"""
        batch, future = self.in_flight.popleft()
        try:
            report = future.result()
        except Exception as exc:
            if next_batch is not None:
                self._finish_here(next_batch)
            self._settle_failed(batch.events, batch.conn, exc)
            return next_batch is not None
        self.runner.lease_keeper.untrack(batch.conn)
        self.runner._count(batch.events, report)
        self.runner._log_terminal(batch.events, report)
        return False

    def _finish_here(self, batch: "Batch") -> None:
        r = self.runner
        try:
            report = r.finish_batch(batch)
        except Exception as exc:
            self._settle_failed(batch.events, batch.conn, exc)
            return
        r.lease_keeper.untrack(batch.conn)
        r._count(batch.events, report)
        r._log_terminal(batch.events, report)

    def _settle_failed(self, events, conn, exc: BaseException) -> None:
        """A batch that raised (and rolled back): the runner's usual recovery, on its connection."""
        r = self.runner
        try:
            report = r.recover(events, conn, exc)  # counts; raises the database's own failures
            r._log_terminal(events, report)
        finally:
            r.lease_keeper.untrack(conn)

    def quiesce(self) -> None:
        """On the way out of an error: let every batch in flight end, whatever its result (its
        rows, if not acked, are released by the loop's error handling)."""
        while self.in_flight:
            batch, future = self.in_flight.popleft()
            try:
                report = future.result()
            except Exception as exc:
                log.info("a batch in flight failed too", extra={"rows": len(batch.events),
                                                                 "error": redact(str(exc))[:300]})
            else:
                self.runner._count(batch.events, report)
                self.runner._log_terminal(batch.events, report)
            finally:
                self.runner.lease_keeper.untrack(batch.conn)

    def close(self) -> None:
        """Finish the batches in flight (stop: they are delivered and acked, not abandoned)."""
        try:
            self.drain()
        except Exception as exc:  # the runner's shutdown releases whatever is left
            log.warning("the batch in flight failed at shutdown", extra={"error": redact(str(exc))[:300]})
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
