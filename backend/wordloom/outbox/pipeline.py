"""Two batches in flight: while one batch is at the sink, the next is claimed and read.

A batch is two halves (runner.begin_batch / finish_batch): the database part (claim, BEGIN,
entity locks, current state, encoded actions) and the delivery (the `_bulk`, its answers, the acks,
COMMIT).  One after the other, the worker waits on PostgreSQL and then on Elasticsearch, and each
server idles while the other works.  Here batch N+1's database part runs on this thread and a
second connection while batch N's delivery runs on the delivery thread, so both servers (and the
two cores of a small machine) are busy at once.

It reads ahead only while there is a backlog (the last claim came back full).  Under a trickle of
writes it waits for the batch in flight before claiming again, like the one-batch loop, so events
that arrive meanwhile share one batch: reading ahead there would only make more, smaller batches.

Why this keeps every guarantee of the one-batch loop:
- each batch is still one transaction that holds its entities' advisory locks until its acks
  commit; two batches in flight behave exactly like two workers, which the claim (SKIP LOCKED),
  the locks and the external versions are built for (C11).  N+1 waiting for a lock N holds is
  fine: N commits on its own thread, never waiting for this one;
- a row reclaimed before (a suspect) is processed alone, after the batch in flight has finished;
- when the batch in flight fails, its rows are re-run one by one only after N+1 is finished,
  because they may need locks N+1 holds on this thread;
- any error leaving step() first ends the batch in flight (quiesce), so the loop's handlers
  (back off, release, reconnect) never close a connection a delivery still uses;
- stop(): step() claims nothing more, close() finishes the batch in flight, then the runner
  releases what is left.
"""
from __future__ import annotations

import logging
from concurrent.futures import Future, ThreadPoolExecutor
from typing import TYPE_CHECKING

from ..redact import redact

if TYPE_CHECKING:
    import psycopg

    from .runner import Batch, Runner

log = logging.getLogger(__name__)


class Pipeline:
    def __init__(self, runner: "Runner"):
        self.runner = runner
        self.in_flight: tuple["Batch", Future] | None = None
        self._backlog = False  # the last claim came back full: read ahead while one is in flight
        self._pool: ThreadPoolExecutor | None = None

    def _submit(self, batch: "Batch") -> None:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix=f"deliver-{self.runner.projection}")
        self.in_flight = (batch, self._pool.submit(self.runner.finish_batch, batch))

    def _free_conn(self) -> "psycopg.Connection":
        r = self.runner
        if self.in_flight is not None and self.in_flight[0].conn is r.conn:
            return r.spare
        return r.conn

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
            if self.drain(next_batch=batch):
                return True  # the batch in flight failed: `batch` was finished here, in order
            self._submit(batch)
            return True
        except BaseException as exc:
            if batch is not None and (self.in_flight is None or self.in_flight[0] is not batch):
                r.abort_batch(batch, exc)
            self.quiesce()
            for key in (r.conn, r.spare):  # nothing of ours is in flight any more
                r.lease_keeper.untrack(key)
            raise

    # -- the batch in flight ----------------------------------------------------------------------------
    def drain(self, next_batch: "Batch | None" = None) -> bool:
        """Wait for the batch in flight and account for it.  True when `next_batch` (begun on this
        thread) had to be finished here because the batch in flight failed."""
        if self.in_flight is None:
            return False
        batch, future = self.in_flight
        self.in_flight = None
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
        """On the way out of an error: let the batch in flight end, whatever its result (its rows,
        if not acked, are released by the loop's error handling)."""
        if self.in_flight is None:
            return
        batch, future = self.in_flight
        self.in_flight = None
        try:
            report = future.result()
        except Exception as exc:
            log.info("the batch in flight failed too", extra={"rows": len(batch.events),
                                                               "error": redact(str(exc))[:300]})
        else:
            self.runner._count(batch.events, report)
            self.runner._log_terminal(batch.events, report)
        finally:
            self.runner.lease_keeper.untrack(batch.conn)

    def close(self) -> None:
        """Finish the batch in flight (stop: it is delivered and acked, not abandoned)."""
        try:
            self.drain()
        except Exception as exc:  # the runner's shutdown releases whatever is left
            log.warning("the batch in flight failed at shutdown", extra={"error": redact(str(exc))[:300]})
        finally:
            if self._pool is not None:
                self._pool.shutdown(wait=True)
                self._pool = None
