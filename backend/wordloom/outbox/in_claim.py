"""Delivery inside the claim: the loop step of a sink in the outbox's own database (the chronicle).

One statement claims a batch of clean rows (SKIP LOCKED), projects them and settles them
(sinks/chronicle.py, outbox_chronicle_deliver_in_claim).  No lease is needed while the sink works,
each outbox row is written once, and a worker that dies mid-statement leaves its rows pending as
they were.  Two kinds of row still take the durable claim of runner.run_claimed: a suspect (a row
reclaimed before, alone, C12) and every row of a statement that failed (which has changed nothing;
the ordinary path then finds the row at fault and fails it alone).

Measured and not kept: sending the next statement on a helper thread while this one notes the
last batch (spans, metrics) bought nothing (60,000 events, 2 runs each: 10,150 / 10,323 events/s
with it, 9,793 / 11,450 without): the statement is bound by its one PostgreSQL backend, not by
the Python around it.  A second worker process (a second backend) is what scales this path.
"""
from __future__ import annotations

import logging
import time
import uuid
from typing import TYPE_CHECKING

import psycopg

from ..redact import redact
from .tracing import BatchTrace, claim_span

if TYPE_CHECKING:
    from .outcomes import Outcome
    from .runner import BatchReport, Runner
    from .store import OutboxEvent

    Delivered = list[tuple[OutboxEvent, Outcome, bool]]

log = logging.getLogger(__name__)


class InClaimLoop:
    def __init__(self, runner: "Runner"):
        self.runner = runner

    def _deliver(self) -> "Delivered":
        r = self.runner
        with claim_span(r.projection):
            return r.sink.deliver_in_claim(r.conn, r.owner, r.settings.batch_size)

    def step(self) -> "BatchReport":
        """Claim, deliver and settle one batch (a suspect alone, durably), and note it."""
        from .runner import DB_ERRORS, BatchReport

        r = self.runner
        suspects = r.claim_suspect(r.conn)
        if suspects:
            return r.run_claimed(suspects, r.conn)
        started_ns = time.time_ns()
        try:
            delivered = self._deliver()
        except DB_ERRORS:
            raise
        except psycopg.Error as exc:
            log.info("one-statement batch failed; its rows take the ordinary path",
                     extra={"error": redact(str(exc))[:300], "sqlstate": exc.sqlstate})
            return r.run_once()
        if not delivered:
            return BatchReport()
        return self.note(delivered, started_ns)

    def note(self, delivered: "Delivered", started_ns: int) -> "BatchReport":
        """Spans, metrics and terminal-failure lines of a batch the database has settled."""
        from .runner import BatchReport

        r = self.runner
        events = [event for event, _, _ in delivered]
        BatchTrace(r.projection, str(uuid.uuid4()), events, started_ns=started_ns).end()
        settled = {event.id for event, _, ok in delivered if ok}
        outcomes = {event.id: outcome for event, outcome, _ in delivered}
        acked = {i for i in settled if outcomes[i].delivered}
        failed = settled - acked
        lost = set(outcomes) - settled  # cannot happen while the statement holds the row locks
        report = BatchReport(claimed=len(events), done=len(acked), failed=len(failed), lost=len(lost),
                             outcomes=outcomes, acked=acked, failed_ids=failed, lost_ids=lost)
        r._count(events, report)
        r._log_terminal(events, report)
        return report
