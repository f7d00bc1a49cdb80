"""Monitor: database ping for readiness, the backlog gauges, and the stalled-backlog watchdog.

Runs on its own connection with a short statement timeout, so a slow or absent database turns
/readyz red after OUTBOX_DB_PING_FAILS_BEFORE_DRAINING failed pings without touching the loop.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable

import psycopg

from ..db.connect import DatabaseUnavailable, connect
from ..redact import redact

if TYPE_CHECKING:
    from .runner import Runner

log = logging.getLogger(__name__)
DB_ERRORS = (psycopg.OperationalError, psycopg.InterfaceError, DatabaseUnavailable)


class Monitor(threading.Thread):
    """Database ping (readiness), backlog gauges and the stalled-backlog watchdog."""

    def __init__(self, runner: "Runner", es_probe: Callable[[], None] | None = None):
        super().__init__(name=f"monitor-{runner.projection}", daemon=True)
        self.runner = runner
        self.es_probe = es_probe
        self._conn: psycopg.Connection | None = None
        self._fails = 0
        self._stall_since: float | None = None
        self._last_lag: int | None = None
        self._last_done = 0.0
        self._stalled = False

    def run(self) -> None:
        r = self.runner
        s = r.settings
        while not r.closed.wait(s.db_ping_interval):
            try:
                self.check_once()
            except Exception:  # a bug here must not silence readiness for the rest of the run
                log.exception("health monitor check failed")
                self._close()

    def check_once(self) -> None:
        r, s = self.runner, self.runner.settings
        try:
            if self._conn is None or self._conn.closed:
                self._conn = connect(s.database_url, autocommit=True, connect_timeout=s.db_ping_timeout)
                self._conn.execute("SELECT set_config('statement_timeout', %s, false)",
                                   (f"{int(s.db_ping_timeout * 1000)}ms",))
            stats = r.store.backlog_stats(self._conn)
        except (*DB_ERRORS, psycopg.errors.QueryCanceled, psycopg.errors.AdminShutdown) as exc:
            self._fails += 1
            self._close()
            if self._fails >= s.db_ping_fails_before_draining:
                r.health.set_db(False, redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)[:200])
            return
        self._fails = 0
        r.health.set_db(True)
        r.metrics.set_backlog(stats)
        self._watch_backlog(stats)
        if self.es_probe is not None:
            try:
                self.es_probe()
                r.health.set_es(True)
            except Exception as exc:
                r.health.set_es(False, redact(str(exc))[:200])

    def _watch_backlog(self, stats) -> None:
        r = self.runner
        done = sum(r.metrics.value("outbox_processed_total", projection=r.projection, op=op) for op in ("upsert", "delete"))
        growing = self._last_lag is not None and stats.lag > self._last_lag and done == self._last_done
        self._last_lag, self._last_done = stats.lag, done
        now = time.monotonic()
        if growing:
            self._stall_since = self._stall_since or now
        elif not growing:
            self._stall_since = None
        stalled = self._stall_since is not None and now - self._stall_since > r.settings.health_max_silence
        if stalled and not self._stalled:
            log.warning("watchdog: backlog grows while nothing is delivered", extra={"lag": stats.lag})
        self._stalled = stalled
        r.metrics.backlog_growing.labels(projection=r.projection).set(1 if stalled else 0)

    def _close(self) -> None:
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:
                pass
            self._conn = None
