"""The outbox loop: wake up, claim a batch, hand it to a sink, settle the outcomes, repeat.

It knows nothing about Elasticsearch.  What it guarantees, whatever the sink:
- wake-up by LISTEN/NOTIFY on its own connection, with the poll interval as fallback, and back-to-
  back claims while batches come back full: a lost notification never strands a row (C02, C16);
- leases renewed by a side thread while a batch runs, so a slow batch keeps its rows;
- acks guarded by owner/status/lease with the changed ids checked: a lost lease is counted in
  outbox_owner_mismatch_skips_total, never as processed;
- expired or over-long processing rows reclaimed by any live worker, counting an attempt (C12);
- one failing row cannot sink its batch: an exception re-runs the batch one row at a time;
- a database error never ends the process: state DRAINING, reconnect with capped backoff, and
  the rows it held are released on reconnect (C14).  A query that fails on a live connection (a
  table renamed by a migration, a privilege revoked) is not a row's fault: the rows go back
  without an attempt, the loop backs off (capped) and is not ready until an iteration succeeds.
  Each kind of loop error is logged once per streak, with its reason, not once per iteration;
- stop(): claim nothing more, finish the batch in flight, release what is left, state STOPPED (C13).

Pipelining (OUTBOX_PIPELINE, on by default; pipeline.py): while one batch is at the sink, the next
is claimed, its entities locked and its state read on a second connection.  Each batch is still
one transaction holding its own entity locks until its acks commit, exactly as two workers would:
every guarantee above holds per batch.  run_once() stays the one-batch-at-a-time step.

Delivery inside the claim (OUTBOX_DELIVER_IN_CLAIM, on by default; in_claim.py): a sink in the
outbox's own database (the chronicle) claims, delivers and settles a batch in one statement, so
no lease is needed and each row is written once.  Suspects and any batch whose statement failed
still take the durable claim above, so C12 and the one-row-at-a-time recovery hold.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from typing import Callable, Protocol

import psycopg

from ..db.connect import DatabaseUnavailable, connect
from ..redact import redact
from .experiments import Experiments
from .health import DRAINING, RUNNING, STOPPED, HealthState
from .metrics import OutboxMetrics
from .outcomes import Outcome
from .retry import RetryPolicy, exception_reason
from .store import FailedRow, OutboxEvent, OutboxStore
from .lease_keeper import LeaseKeeper
from .monitor import Monitor
from .in_claim import InClaimLoop
from .pipeline import Pipeline
from .tracing import BatchTrace, claim_span, loop_span

log = logging.getLogger(__name__)

CHANNELS = {"search": "wordloom_search_outbox", "chronicle": "wordloom_chronicle_outbox"}
DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable)
# Database errors a single row can cause (bad data); any other psycopg error is the database's
# or the deployment's, and must not fail the rows of the batch it interrupted.
ROW_DB_ERRORS = (psycopg.DataError, psycopg.IntegrityError)
# Terminal failures get one WARNING line each (outbox id, entity, op, reason, masked error), at
# most this many per batch; the rest of the batch's terminal failures are summed up in one line.
TERMINAL_LOG_LINES_PER_BATCH = 20
TERMINAL_LOG_MESSAGE = "outbox row failed (terminal)"
RECONNECT_BASE_SECONDS = 0.2
RECONNECT_CAP_SECONDS = 5.0
WAIT_SLICE_SECONDS = 0.1  # how quickly an idle wait notices stop()
SUSPECT_LOOK_SECONDS = 1.0  # how often a worker that found no suspect looks again (claim_suspect)


class Sink(Protocol):
    projection: str

    def prepare(self, conn: psycopg.Connection, events: list[OutboxEvent]) -> object:
        """The database part of a batch, in its transaction, before anything leaves the process."""

    def complete(self, conn: psycopg.Connection, events: list[OutboxEvent], prepared: object) -> list[Outcome]:
        """Deliver what prepare() built; one outcome per event (may run on another thread)."""


@dataclass(eq=False)
class Batch:
    """A claimed batch whose transaction is open on `conn` (begin_batch -> finish_batch)."""

    events: list[OutboxEvent]
    conn: psycopg.Connection
    trace: BatchTrace
    tx: object = None  # the psycopg Transaction, entered by begin_batch
    prepared: object = None
    open: bool = True


@dataclass
class BatchReport:
    claimed: int = 0
    done: int = 0
    retried: int = 0
    failed: int = 0
    lost: int = 0  # rows whose lease was lost before the ack
    outcomes: dict = field(default_factory=dict)
    acked: set = field(default_factory=set)
    retried_ids: set = field(default_factory=set)
    failed_ids: set = field(default_factory=set)
    lost_ids: set = field(default_factory=set)
    suspect: bool = False  # a previously reclaimed row, processed alone

    def merge(self, other: "BatchReport") -> None:
        """Add the settled rows of a sub-batch (claimed stays as counted by the caller)."""
        self.done += other.done
        self.retried += other.retried
        self.failed += other.failed
        self.lost += other.lost
        self.outcomes.update(other.outcomes)
        self.acked |= other.acked
        self.retried_ids |= other.retried_ids
        self.failed_ids |= other.failed_ids
        self.lost_ids |= other.lost_ids


class Runner:
    def __init__(self, settings, sink: Sink, *, metrics: OutboxMetrics | None = None,
                 health: HealthState | None = None, policy: RetryPolicy | None = None,
                 experiments: Experiments | None = None, es_probe: Callable[[], None] | None = None):
        self.settings = settings
        self.sink = sink
        self.projection = settings.projection
        self.owner = settings.worker_id
        self.store = OutboxStore(self.projection)
        self.metrics = metrics or OutboxMetrics(self.projection)
        self.health = health or HealthState(self.projection, self.owner, settings.health_max_silence,
                                            settings.require_es_ready)
        self.policy = policy or RetryPolicy.from_settings(settings)
        self.experiments = experiments or Experiments.from_mapping(settings.experiments)
        self.es_probe = es_probe
        self.stopping = threading.Event()   # stop claiming; finish the batch in flight
        self.hard_stop = threading.Event()  # stop waiting for anything (grace over, second signal)
        self.closed = threading.Event()     # side threads end
        self.conn: psycopg.Connection | None = None
        self.spares: list[psycopg.Connection] = []  # the pipeline's other batch connections
        self.listener: psycopg.Connection | None = None
        self.lease_keeper = LeaseKeeper(self)
        self.monitor = Monitor(self, es_probe)
        # A sink in the outbox's own database delivers inside its claim (run_in_claim); fault
        # experiments need the durable claim's per-event hooks, so they turn that off.
        self.in_claim = (getattr(settings, "deliver_in_claim", False) and hasattr(sink, "deliver_in_claim")
                         and not self.experiments.active)
        self.pipeline = (Pipeline(self, getattr(settings, "pipeline_depth", 1))
                         if getattr(settings, "pipeline", False) and not self.in_claim else None)
        self.in_claim_loop = InClaimLoop(self)
        self._last_reclaim = 0.0
        self._suspects_looked_at: float | None = None  # monotonic time of the last look that found none
        self._db_down_since: float | None = None
        self._ever_connected = False
        self._loop_error: str | None = None  # the error of the current failing streak
        self._loop_error_count = 0

    # -- control ---------------------------------------------------------------------------------
    def stop(self, hard: bool = False) -> None:
        if not self.stopping.is_set():
            log.info("stop requested: finishing the batch in flight, claiming nothing more")
        self.stopping.set()
        if hard:
            self.hard_stop.set()
        if self.health.state != STOPPED:
            self.health.set_state(DRAINING, "stopping")

    def _wait(self, seconds: float, event: threading.Event | None = None) -> bool:
        """Sleep up to `seconds`; True when `event` (stopping by default) was set meanwhile."""
        return (event or self.stopping).wait(seconds)

    # -- connections -------------------------------------------------------------------------------
    def _connect(self) -> None:
        s = self.settings
        if self.listener is None or self.listener.closed:
            self.listener = connect(s.database_url, autocommit=True, connect_timeout=s.db_ping_timeout * 5)
            # LISTEN before the first claim, so a row committed in between still wakes us.
            self.listener.execute(f"LISTEN {CHANNELS[self.projection]}")
        if self.conn is None or self.conn.closed:
            self.conn = self._batch_connection()
            if self._ever_connected:
                # Rows of the batch the outage interrupted: the database failed, not the rows, so
                # they go back without an attempt.  (Never on first connect: a restarted worker
                # with a fixed OUTBOX_WORKER_ID must not erase the reclaim count of a crash loop.)
                released = self.store.release_owned(self.conn, self.owner)
                if released:
                    log.info("released rows held before the reconnect", extra={"rows": len(released)})
            self._ever_connected = True
        if self.pipeline is not None:
            self.spares = [c for c in self.spares if not c.closed]
            while len(self.spares) < self.pipeline.depth:
                self.spares.append(self._batch_connection())
        if self._db_down_since is not None:
            log.info("database connection restored",
                     extra={"down_seconds": round(time.monotonic() - self._db_down_since, 3)})
            self._db_down_since = None
        self.health.set_db(True)
        if not self.stopping.is_set() and self._loop_error is None:
            self.health.set_state(RUNNING, "")

    def _batch_connection(self) -> psycopg.Connection:
        conn = connect(self.settings.database_url, autocommit=True, connect_timeout=self.settings.db_ping_timeout * 5)
        # Claims, acks and the chronicle entries need not wait for their WAL flush: what a server
        # crash can lose of them is the last few hundred milliseconds of this worker's own
        # transactions, whole (an entry with its ack), and those rows come back to a worker by
        # their lease and are delivered again, which state transfer and the idempotent upsert
        # make harmless.  The source writes (API, tools) keep full durability.  +8 % events/s.
        conn.execute("SET synchronous_commit = off")
        return conn

    def _disconnect(self) -> None:
        for conn in (self.conn, *self.spares, self.listener):
            if conn is not None:
                try:
                    conn.close()
                except Exception:
                    pass
        self.conn = self.listener = None
        self.spares = []

    def batch_connections(self) -> list[psycopg.Connection]:
        """The connections batches run on: the main one, then the pipeline's spares."""
        return [self.conn, *self.spares]

    def open(self) -> None:
        """Connect without starting the loop (tests and drills stepping with run_once())."""
        self._connect()

    def close(self) -> None:
        self._disconnect()
        self.closed.set()

    # -- the loop ------------------------------------------------------------------------------
    def run(self) -> int:
        s = self.settings
        deadline = time.monotonic() + s.run_seconds if s.run_seconds > 0 else None
        self.lease_keeper.start()
        self.monitor.start()
        backoff = RECONNECT_BASE_SECONDS
        iteration = 0
        try:
            while not self.stopping.is_set():
                if deadline is not None and time.monotonic() >= deadline:
                    log.info("OUTBOX_RUN_SECONDS reached", extra={"run_seconds": s.run_seconds})
                    break
                self.health.beat()
                iteration += 1
                try:
                    with loop_span(self.projection, iteration):
                        self._connect()
                        if self.in_claim:
                            self._maybe_reclaim()
                            report = self.in_claim_loop.step()
                            busy = report.claimed >= s.batch_size or report.suspect
                        elif self.pipeline is not None:
                            busy = self.pipeline.step()
                        else:
                            self._maybe_reclaim()
                            report = self.run_once()
                            busy = report.claimed >= s.batch_size or report.suspect
                    self._loop_ok()
                    backoff = RECONNECT_BASE_SECONDS
                    if busy:
                        continue  # more is likely waiting, or a batch is in flight: no wake-up needed
                    self._wait_for_wakeup(s.poll_interval, deadline)
                except DB_ERRORS as exc:
                    self._on_db_error(exc)
                    self._wait(backoff)
                    backoff = min(backoff * 2, RECONNECT_CAP_SECONDS)
                except psycopg.Error as exc:
                    self._on_loop_error(exc, "database query failed")
                    self._wait(backoff)
                    backoff = min(backoff * 2, RECONNECT_CAP_SECONDS)
                except Exception as exc:
                    self._on_loop_error(exc, "unexpected error in the worker loop")
                    self._wait(backoff)
                    backoff = min(backoff * 2, RECONNECT_CAP_SECONDS)
        finally:
            if self.pipeline is not None:
                self.pipeline.close()  # finish the batch in flight first
            self._shutdown()
        return 0

    def _loop_ok(self) -> None:
        if self._loop_error is not None:
            log.info("worker loop recovered", extra={"failed_iterations": self._loop_error_count,
                                                     "error": self._loop_error})
            self._loop_error, self._loop_error_count = None, 0
        if not self.stopping.is_set():
            self.health.set_state(RUNNING, "")

    def _on_loop_error(self, exc: BaseException, what: str) -> None:
        """A failing iteration on a live connection: log once per kind of error, give the rows of
        the interrupted batch back (no attempt counted: the rows did nothing wrong), not ready."""
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        signature = redact(f"{type(exc).__name__}: {first}")[:300]
        self._loop_error_count += 1
        if signature != self._loop_error:
            if isinstance(exc, psycopg.Error):
                log.warning(f"{what}; backing off and retrying", extra={"error": signature,
                                                                        "sqlstate": exc.sqlstate})
            else:
                log.exception(f"{what}; backing off and retrying", extra={"error": signature})
            self._loop_error = signature
        self.health.set_state(DRAINING, f"{what}: {signature}"[:200])
        if self.conn is not None and not self.conn.closed:
            try:
                released = self.store.release_owned(self.conn, self.owner)
                if released:
                    log.info("released rows of the interrupted batch", extra={"rows": len(released)})
            except Exception:  # the next iteration (or the reconnect) will hand them back
                pass

    def _on_db_error(self, exc: BaseException) -> None:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if self._db_down_since is None:
            self._db_down_since = time.monotonic()
            log.warning("database error; draining and reconnecting", extra={"error": redact(first)[:300]})
        self.health.set_db(False, redact(first)[:200])
        self.health.set_state(DRAINING, "database unavailable")
        self._disconnect()

    def _wait_for_wakeup(self, seconds: float, deadline: float | None) -> None:
        end = time.monotonic() + seconds
        if deadline is not None:
            end = min(end, deadline)
        while not self.stopping.is_set():
            remaining = end - time.monotonic()
            if remaining <= 0:
                return
            self.health.beat()
            for _ in self.listener.notifies(timeout=min(WAIT_SLICE_SECONDS, remaining), stop_after=1):
                return

    def _maybe_reclaim(self, conn: psycopg.Connection | None = None) -> None:
        s = self.settings
        now = time.monotonic()
        if now - self._last_reclaim < s.reclaim_interval:
            return
        self._last_reclaim = now
        result = self.store.reclaim_expired(conn or self.conn, s.max_processing_seconds, s.max_reclaims)
        if result.to_pending:
            self._suspects_looked_at = None  # this reclaim made suspects: take them before the next batch
        if result.to_pending or result.to_failed:
            log.warning("reclaimed expired rows", extra={"to_pending": len(result.to_pending),
                                                         "to_failed": len(result.to_failed)})
        for op in result.failed_ops:
            self.metrics.count_failure(op, "reclaim_exhausted", terminal=True)
        if result.to_failed:
            self._log_reclaim_exhausted(result.to_failed)

    def run_once(self) -> BatchReport:
        """Claim one batch and process it.  Public for tests and drills that step the loop."""
        events = self.claim(self.conn)
        if not events:
            return BatchReport()
        return self.run_claimed(events, self.conn)

    def claim_suspect(self, conn: psycopg.Connection) -> list[OutboxEvent]:
        """Durably claim one row reclaimed before, if any: it may be the row that kills its
        worker, so it goes alone (C12).  Such rows appear only when a lease expires and a worker
        reclaims it, which takes OUTBOX_LEASE_SECONDS at the least, so while none turn up it is
        enough to look once every SUSPECT_LOOK_SECONDS rather than spend a query on every batch;
        while they keep turning up (or right after this worker reclaimed), look before each one."""
        looked = self._suspects_looked_at
        if looked is not None and time.monotonic() - looked < SUSPECT_LOOK_SECONDS:
            return []
        events = self.store.claim_batch(conn, self.owner, 1, self.settings.lease_seconds, suspects=True)
        self._suspects_looked_at = None if events else time.monotonic()
        return events

    def run_in_claim(self) -> BatchReport:
        """One batch through the chronicle's one-statement path (in_claim.py).  Public for tests
        and drills that step the loop."""
        return self.in_claim_loop.step()

    def claim(self, conn: psycopg.Connection) -> list[OutboxEvent]:
        self.experiments.before_claim(lambda secs: self._wait(secs, self.hard_stop))
        with claim_span(self.projection):
            events = self.claim_suspect(conn)
            if not events:
                events = self.store.claim_batch(conn, self.owner, self.settings.batch_size, self.settings.lease_seconds)
        return events

    def run_claimed(self, events: list[OutboxEvent], conn: psycopg.Connection) -> BatchReport:
        """Process claimed events to the end on `conn`, one batch at a time."""
        suspect = events[0].reclaim_count > 0
        self.lease_keeper.track(e.id for e in events)
        try:
            if self.experiments.process_sleep_seconds:
                self._wait(self.experiments.process_sleep_seconds, self.hard_stop)
            if self.hard_stop.is_set():
                return BatchReport(claimed=len(events))  # released by _shutdown
            report = self.process_events(events, conn)
        finally:
            self.lease_keeper.untrack()
        report.suspect = suspect
        return report

    def process_events(self, events: list[OutboxEvent], conn: psycopg.Connection | None = None) -> BatchReport:
        """Run the sink over claimed events and settle every outcome in one transaction."""
        report = self._process(events, conn or self.conn)
        self._log_terminal(events, report)
        return report

    def _process(self, events: list[OutboxEvent], conn: psycopg.Connection) -> BatchReport:
        try:
            report = self.finish_batch(self.begin_batch(events, conn))
        except Exception as exc:
            return self.recover(events, conn, exc)
        self._count(events, report)
        return report

    # -- one batch, in two halves (the pipeline runs them on two threads) ---------------------------
    def begin_batch(self, events: list[OutboxEvent], conn: psycopg.Connection) -> Batch:
        """Open the batch's transaction and run the sink's database part in it."""
        batch = Batch(events, conn, BatchTrace(self.projection, str(uuid.uuid4()), events))
        try:
            batch.tx = conn.transaction()
            batch.tx.__enter__()
            for event in events:
                self.experiments.before_event(event)
            with batch.trace.active():
                batch.prepared = self.sink.prepare(conn, events)
        except BaseException as exc:
            self.abort_batch(batch, exc)
            raise
        return batch

    def finish_batch(self, batch: Batch) -> BatchReport:
        """Deliver, settle and COMMIT; on any error roll back, end the spans failed, re-raise."""
        try:
            with batch.trace.active():
                outcomes = self.sink.complete(batch.conn, batch.events, batch.prepared)
                report = self._settle(batch.events, outcomes, batch.conn)
        except BaseException as exc:
            self.abort_batch(batch, exc)
            raise
        batch.open = False
        try:
            batch.tx.__exit__(None, None, None)  # COMMIT
        except BaseException as exc:
            batch.trace.end(exc)
            raise
        batch.trace.end()
        return report

    def abort_batch(self, batch: Batch, exc: BaseException) -> None:
        """Roll back (if still open) and end the spans as failed; never raises."""
        if not batch.open:
            return
        batch.open = False
        if batch.tx is not None:
            try:
                batch.tx.__exit__(type(exc), exc, exc.__traceback__)
            except Exception:  # a broken connection: the server rolls back without us
                pass
        batch.trace.end(exc)

    def recover(self, events: list[OutboxEvent], conn: psycopg.Connection, exc: BaseException) -> BatchReport:
        """A batch raised and rolled back.  The database's failures go up to the loop (it backs
        off and releases the rows); a row's failure is found by re-running the rows one by one."""
        if isinstance(exc, DB_ERRORS) or (isinstance(exc, psycopg.Error) and not isinstance(exc, ROW_DB_ERRORS)):
            raise exc
        return self._row_exception(events, conn, exc)

    def _row_exception(self, events: list[OutboxEvent], conn: psycopg.Connection, exc: BaseException) -> BatchReport:
        """The sink raised for this batch: find the row that breaks it instead of failing or
        retrying all of them; a single row is settled by the exception's reason."""
        if len(events) > 1:
            log.warning("batch failed; retrying its rows one by one",
                        extra={"rows": len(events), "error": redact(str(exc))[:300]})
            total = BatchReport(claimed=len(events))
            for event in events:
                total.merge(self._process([event], conn))
            return total
        event = events[0]
        reason = exception_reason(exc)
        # INFO: whether the row is retried or failed is decided by the settle below; a terminal
        # failure gets its own WARNING line (_log_terminal), retries are summed up per batch.
        log.info("row failed with an exception", extra={"outbox_event_id": str(event.id), "reason": reason,
                                                         "error": redact(repr(exc))[:300]})
        with conn.transaction():
            report = self._settle(events, [Outcome.failure(event.id, reason, redact(repr(exc))[:2000])], conn)
        self._count(events, report)
        return report

    def _settle(self, events: list[OutboxEvent], outcomes: list[Outcome], conn: psycopg.Connection) -> BatchReport:
        by_id = {e.id: e for e in events}
        outcome_of = {o.event_id: o for o in outcomes}
        missing = [e.id for e in events if e.id not in outcome_of]
        for event_id in missing:  # a sink that forgot a row must not leave it processing forever
            outcome_of[event_id] = Outcome.failure(event_id, "unknown_exception", "sink returned no outcome")
        done_ids, retry_rows, fail_rows = [], [], []
        for event_id, outcome in outcome_of.items():
            if outcome.delivered:
                done_ids.append(event_id)
                continue
            decision = self.policy.decide(outcome.reason, by_id[event_id].attempts)
            row = FailedRow(event_id, outcome.reason, outcome.error or outcome.reason,
                            decision.delay_seconds if decision.retry else None)
            (retry_rows if decision.retry else fail_rows).append(row)
        acked = self.store.ack_done(conn, self.owner, done_ids)
        retried = self.store.schedule_retry(conn, self.owner, retry_rows)
        failed = self.store.mark_failed(conn, self.owner, fail_rows)
        lost = set(by_id) - acked - retried - failed
        return BatchReport(claimed=len(events), done=len(acked), retried=len(retried), failed=len(failed),
                           lost=len(lost), outcomes=outcome_of, acked=acked, retried_ids=retried,
                           failed_ids=failed, lost_ids=lost)

    def _count(self, events: list[OutboxEvent], report: BatchReport) -> None:
        """Metrics after COMMIT only: a rolled-back settle counts nothing."""
        m = self.metrics
        done: Counter = Counter()  # summed per label set first: one inc() per label set, not per row
        noops: Counter = Counter()
        for event in events:
            outcome = report.outcomes.get(event.id)
            if outcome is None:
                continue
            if event.id in report.acked:
                done[event.op] += 1
                if outcome.noop_reason:
                    noops[(event.op, outcome.noop_reason)] += 1
            elif event.id in report.retried_ids:
                m.count_failure(event.op, outcome.reason, terminal=False)
            elif event.id in report.failed_ids:
                m.count_failure(event.op, outcome.reason, terminal=True)
        for op, n in done.items():
            m.count_done(op, n)
        for (op, reason), n in noops.items():
            m.count_noop(op, reason, n)
        if report.lost:
            m.count_owner_mismatch(report.lost)
            log.warning("lease lost before the ack; rows left to their new owner", extra={"rows": report.lost})
        if report.acked:
            m.last_success.labels(projection=self.projection).set(time.time())
        if report.retried or report.failed:
            reasons = sorted({o.reason for o in report.outcomes.values() if o.reason})
            log.info("batch settled with failures", extra={"done": report.done, "retried": report.retried,
                                                           "failed": report.failed, "reasons": ",".join(reasons)})

    def _log_terminal(self, events: list[OutboxEvent], report: BatchReport) -> None:
        """One WARNING line per row this batch moved to `failed` (after COMMIT), naming the outbox
        id, so "read the worker log for the outbox id" (runbooks) finds it; capped per batch."""
        failed = [e for e in events if e.id in report.failed_ids]
        for event in failed[:TERMINAL_LOG_LINES_PER_BATCH]:
            outcome = report.outcomes.get(event.id)
            reason = (outcome.reason if outcome else None) or "unknown_exception"
            error = redact((outcome.error if outcome else None) or reason)[:1000]
            self._warn_terminal(event.id, event.entity_type, event.entity_id, event.op, reason, error,
                                attempts=event.attempts + 1)
        rest = len(failed) - TERMINAL_LOG_LINES_PER_BATCH
        if rest > 0:
            reasons = sorted({report.outcomes[e.id].reason for e in failed[TERMINAL_LOG_LINES_PER_BATCH:]
                              if e.id in report.outcomes and report.outcomes[e.id].reason})
            log.warning("more outbox rows failed (terminal) in this batch; not logged one by one",
                        extra={"rows": rest, "reasons": ",".join(reasons),
                               "hint": "outbox status / replay-failed --dry-run lists them"})

    def _warn_terminal(self, outbox_id, entity_type, entity_id, op, reason, error, attempts=None) -> None:
        log.warning(f"{TERMINAL_LOG_MESSAGE}: outbox_id={outbox_id} {entity_type}:{entity_id} op={op} reason={reason}",
                    extra={"outbox_id": str(outbox_id), "projection": self.projection, "entity_type": entity_type,
                           "entity_id": None if entity_id is None else str(entity_id), "op": op, "reason": reason, "error": error,
                           "attempts": attempts})

    def _log_reclaim_exhausted(self, ids: list) -> None:
        """Rows the reclaim moved to `failed` (reclaim_exhausted): the same WARNING line."""
        shown = ids[:TERMINAL_LOG_LINES_PER_BATCH]
        try:
            rows = self.store.events_by_id(self.conn, shown)
        except psycopg.Error:  # logging must not fail the reclaim; the ids alone still help
            rows = {}
        for outbox_id in shown:
            row = rows.get(outbox_id, {})
            reason = row.get("error_reason") or "reclaim_exhausted"
            self._warn_terminal(outbox_id, row.get("entity_type"), row.get("entity_id"), row.get("op"), reason,
                                redact(row.get("error") or reason)[:1000], attempts=row.get("attempts"))
        if len(ids) > len(shown):
            log.warning("more outbox rows failed (terminal) in this reclaim; not logged one by one",
                        extra={"rows": len(ids) - len(shown), "reasons": "reclaim_exhausted",
                               "hint": "outbox status / replay-failed --dry-run lists them"})

    # -- shutdown ------------------------------------------------------------------------------
    def release_owned_now(self) -> int:
        """Hand back every row this worker holds, from a fresh connection (grace over)."""
        try:
            with connect(self.settings.database_url, autocommit=True, connect_timeout=2) as conn:
                conn.execute("SET statement_timeout = '2s'")
                return len(self.store.release_owned(conn, self.owner))
        except (*DB_ERRORS, psycopg.Error) as exc:
            log.warning("could not release rows at shutdown; their leases will expire",
                        extra={"error": redact(str(exc))[:200]})
            return 0

    def _shutdown(self) -> None:
        self.health.set_state(DRAINING, "stopping")
        released = 0
        if self.conn is not None and not self.conn.closed:
            try:
                released = len(self.store.release_owned(self.conn, self.owner))
            except (*DB_ERRORS, psycopg.Error):
                released = self.release_owned_now()
        if released:
            log.info("released rows at shutdown", extra={"rows": released})
        self._disconnect()
        self.closed.set()
        self.health.set_state(STOPPED, "stopped")
        log.info("worker stopped", extra={"projection": self.projection, "worker_id": self.owner})
