"""Monitor: database ping for readiness, the backlog gauges, the rebuild gauges and the
stalled-backlog watchdog.

Runs on its own connection with a short statement timeout, so a slow or absent database turns
/readyz red after OUTBOX_DB_PING_FAILS_BEFORE_DRAINING failed pings without touching the loop.

Rebuilds run in other processes (the rebuild tools) and record their end in projection_status;
each check also reads the rows of the projections this worker owns (metrics.REBUILD_NAMES) into
projection_rebuild_duration_seconds / _last_finished_timestamp_seconds / _last_success, labelled
with the projection_status name.  That read is not part of readiness: when it fails the gauges
keep their last values and one warning is logged per failing streak.
"""
from __future__ import annotations

import logging
import threading
import time
from typing import TYPE_CHECKING, Callable

import psycopg

from ..db.connect import DatabaseUnavailable, close_quietly, connect
from ..db.queries import query
from ..redact import redact
from .metrics import REBUILD_NAMES

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
        self._stall_base_lag: int | None = None
        self._last_lag: int | None = None
        self._last_done = 0.0
        self._stalled = False
        self._rebuild_error: str | None = None  # the error of the current failing streak, if any

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
        except (*DB_ERRORS, psycopg.Error) as exc:
            # Unreachable, or reachable but the query fails (a table renamed or a privilege revoked
            # by a migration): either way the worker cannot do its job.  Logged once per streak.
            self._fails += 1
            self._close()
            message = redact(str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__)[:200]
            if self._fails >= s.db_ping_fails_before_draining:
                if r.health.db_ok:
                    log.warning("database check failing; not ready", extra={"error": message})
                r.health.set_db(False, message)
            return
        self._fails = 0
        r.health.set_db(True)
        r.metrics.set_backlog(stats)
        self._watch_backlog(stats)
        self._read_rebuilds()
        if self.es_probe is not None:
            try:
                self.es_probe()
                r.health.set_es(True)
            except Exception as exc:
                r.health.set_es(False, redact(str(exc))[:200])

    def _read_rebuilds(self) -> None:
        """projection_status -> the projection_rebuild_* gauges of this worker's projections.
        A projection with no row, or whose first rebuild has not finished, is exported as never
        rebuilt: last_finished 0, duration 0, last_success 1 (see OutboxMetrics.set_rebuild)."""
        r = self.runner
        names = REBUILD_NAMES.get(r.projection, ())
        if not names:
            return
        try:
            rows = self._conn.execute(query("outbox_rebuild_status"), {"names": list(names)}).fetchall()
        except psycopg.Error as exc:
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            message = redact(first)[:200]
            if message != self._rebuild_error:
                log.warning("could not read projection_status; rebuild gauges keep their last values",
                            extra={"error": message})
                self._rebuild_error = message
            if isinstance(exc, DB_ERRORS):
                self._close()
            return
        if self._rebuild_error is not None:
            log.info("projection_status readable again")
            self._rebuild_error = None
        found = {row[0]: row[1:] for row in rows}
        for name in names:
            finished, duration, success = found.get(name, (None, None, None))
            r.metrics.set_rebuild(name, finished, duration, success)

    def _watch_backlog(self, stats) -> None:
        """Watchdog: the backlog has grown while no row was delivered for longer than
        OUTBOX_HEALTH_MAX_SILENCE_SECONDS.  One warning when it starts, one line when it ends, and
        outbox_backlog_stalled 1 meanwhile.  Progress (a row delivered here, or the lag shrinking
        because another worker delivers) or an empty backlog resets the window."""
        r = self.runner
        done = sum(r.metrics.value("outbox_processed_total", projection=r.projection, op=op) for op in ("upsert", "delete"))
        now = time.monotonic()
        progress = done > self._last_done or (self._last_lag is not None and stats.lag < self._last_lag)
        if progress or stats.lag == 0:
            self._stall_since, self._stall_base_lag = None, None
        elif self._stall_since is None:
            self._stall_since, self._stall_base_lag = now, stats.lag
        self._last_lag, self._last_done = stats.lag, done
        stalled = (self._stall_since is not None and now - self._stall_since > r.settings.health_max_silence
                   and stats.lag > self._stall_base_lag)
        if stalled and not self._stalled:
            log.warning("watchdog: backlog grows while nothing is delivered",
                        extra={"lag": stats.lag, "lag_at_start": self._stall_base_lag,
                               "seconds": round(now - self._stall_since, 1), "state": r.health.state})
        elif self._stalled and not stalled:
            log.info("watchdog: backlog moving again", extra={"lag": stats.lag})
        self._stalled = stalled
        r.metrics.backlog_growing.labels(projection=r.projection).set(1 if stalled else 0)

    def _close(self) -> None:
        close_quietly(self._conn)
        self._conn = None
