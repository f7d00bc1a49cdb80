"""LeaseKeeper: renews the leases of the batches in flight, from its own connection.

v3 never renewed leases, so a batch slower than OUTBOX_LEASE_SECONDS was reclaimed and delivered
by a second worker while the first was still on it.  Renewal runs every lease/3, for every batch
the worker holds (two while the pipeline reads the next batch during a delivery).  While a batch is
in flight the keeper also beats the liveness heartbeat, at least four times per
OUTBOX_HEALTH_MAX_SILENCE_SECONDS whatever the lease length: a long batch is busy, not stuck.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING

import psycopg

from ..db.connect import close_quietly, connect
from ..redact import redact

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger(__name__)


class LeaseKeeper(threading.Thread):
    """Renews the leases of the batches in flight from its own connection."""

    def __init__(self, runner: "Runner"):
        super().__init__(name=f"lease-keeper-{runner.projection}", daemon=True)
        self.runner = runner
        self.interval = max(0.2, runner.settings.lease_seconds / 3.0)  # renewal period
        self.tick = max(0.05, min(self.interval, runner.settings.health_max_silence / 4.0))
        self._batches: dict[object, frozenset] = {}
        self._ids: frozenset = frozenset()  # the union of the batches' ids
        self._lock = threading.Lock()
        self._conn: psycopg.Connection | None = None

    def track(self, ids, key: object = None) -> None:
        with self._lock:
            self._batches[key] = frozenset(ids)
            self._ids = frozenset().union(*self._batches.values())

    def untrack(self, key: object = None) -> None:
        with self._lock:
            self._batches.pop(key, None)
            self._ids = frozenset().union(*self._batches.values())

    def run(self) -> None:
        r = self.runner
        next_renewal = time.monotonic() + self.interval
        while not r.closed.wait(self.tick):
            with self._lock:
                ids = self._ids
            if not ids:
                next_renewal = time.monotonic() + self.interval
                continue
            r.health.beat()  # a long batch is alive, not stuck
            if time.monotonic() < next_renewal:
                continue
            next_renewal = time.monotonic() + self.interval
            try:
                lost = self.renew(ids)
            except Exception as exc:  # never let the keeper die: the next tick tries again
                log.warning("lease renewal failed", extra={"error": redact(str(exc).strip()[:300])})
                self._close()
                continue
            if lost:
                log.warning("lease lost for rows in flight", extra={"rows": len(lost)})
        self._close()

    def renew(self, ids) -> set:
        """Renew the leases of `ids`; returns the rows still tracked that are no longer ours."""
        r = self.runner
        if self._conn is None or self._conn.closed:
            self._conn = connect(r.settings.database_url, autocommit=True, connect_timeout=2)
        renewed = r.store.renew_lease(self._conn, r.owner, list(ids), r.settings.lease_seconds)
        with self._lock:
            missing = (self._ids & ids) - renewed
        if missing:
            # A renewal that ran into a batch's ack waits for its row locks and then finds the rows
            # settled: the batch simply finished first (it is untracked a moment later).  Only rows
            # that someone else holds, or that went back to the queue, are lost.
            missing -= r.store.settled_by(self._conn, r.owner, list(missing))
            with self._lock:
                missing &= self._ids
        return missing

    def _close(self) -> None:
        close_quietly(self._conn)
        self._conn = None
