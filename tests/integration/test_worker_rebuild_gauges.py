"""projection_rebuild_* gauges on a real worker's /metrics (CONTRACT.md §1 projection_status, §3).

Rebuilds run in other processes and record their end in projection_status; the worker's monitor
thread reads the rows of the projections it owns and exports them labelled with the
projection_status name.  A projection never rebuilt is exported as last_success 1, last_finished 0,
duration 0, so the documented alert `projection_rebuild_last_success == 0` only fires for a
rebuild that failed.  A real rebuild (ops rebuild-chronicle-entries) shows up too."""
from __future__ import annotations

import pytest

from tests.integration.test_observability_metrics import FREE_METRICS_PORTS, scrape, value
from tests.support.ops_fixtures import run_cli
from tests.support.outbox_helpers import WorkerProcess, wait_until

pytestmark = pytest.mark.integration

FAST = {"OUTBOX_DB_PING_INTERVAL_SECONDS": "0.2", "OUTBOX_POLL_INTERVAL_SECONDS": "0.2"}


def _status(conn, name: str, success: bool, duration: float, error: str | None = None) -> float:
    """Write a finished rebuild the way ops.sql's rebuild_status_finished does; its epoch."""
    conn.execute(
        """INSERT INTO projection_status (projection, last_started_at, last_finished_at, last_duration_seconds,
                                          last_success, last_error, updated_at)
           VALUES (%s, now() - interval '1 minute', now(), %s, %s, %s, now())
           ON CONFLICT (projection) DO UPDATE
           SET last_finished_at = now(), last_duration_seconds = EXCLUDED.last_duration_seconds,
               last_success = EXCLUDED.last_success, last_error = EXCLUDED.last_error, updated_at = now()""",
        (name, duration, success, error))
    return conn.execute("SELECT extract(epoch FROM last_finished_at)::float8 FROM projection_status "
                        "WHERE projection = %s", (name,)).fetchone()[0]


def _gauges(text: str, name: str) -> tuple:
    return (value(text, "projection_rebuild_last_success", projection=name),
            value(text, "projection_rebuild_last_finished_timestamp_seconds", projection=name),
            value(text, "projection_rebuild_duration_seconds", projection=name))


def _wait_for(port: int, name: str, expected: tuple, timeout: float = 10.0) -> str:
    def check():
        text = scrape(port)
        got = _gauges(text, name)
        return text if got[0] == expected[0] and got[2] == pytest.approx(expected[2]) \
            and got[1] == pytest.approx(expected[1], abs=1e-3) else None
    return wait_until(check, timeout, interval=0.1, message=f"rebuild gauges of {name} = {expected}")


def test_search_worker_exports_projection_status_rows_as_rebuild_gauges(conn, worker_env):
    env = {**worker_env, **FREE_METRICS_PORTS, **FAST}
    with WorkerProcess("search", env) as worker:
        port = worker.health_port()
        # Never rebuilt: exported (no gap), and not an alert.
        for name in ("search_sot_to_search_index", "search_index_to_elastic"):
            _wait_for(port, name, (1, 0, 0))
        # A row whose first rebuild started but never finished is still "never rebuilt".
        conn.execute("INSERT INTO projection_status (projection, last_started_at) VALUES "
                     "('search_index_to_elastic', now())")

        finished = _status(conn, "search_sot_to_search_index", True, 12.5)
        text = _wait_for(port, "search_sot_to_search_index", (1, finished, 12.5))
        assert _gauges(text, "search_index_to_elastic") == (1, 0, 0)

        failed_at = _status(conn, "search_index_to_elastic", False, 3.25, "RebuildError: boom")
        text = _wait_for(port, "search_index_to_elastic", (0, failed_at, 3.25))
        # the other projection keeps its own values; the chronicle name is not this worker's
        assert _gauges(text, "search_sot_to_search_index")[0] == 1
        assert value(text, "projection_rebuild_last_success", projection="chronicle_events_to_entries") is None
        # no other label values leak in (e.g. the worker label `search`)
        labels = {line.split('projection="')[1].split('"')[0] for line in text.splitlines()
                  if line.startswith("projection_rebuild_last_success{")}
        assert labels == {"search_sot_to_search_index", "search_index_to_elastic"}

        # A later successful rebuild clears the failure.
        again = _status(conn, "search_index_to_elastic", True, 1.5)
        _wait_for(port, "search_index_to_elastic", (1, again, 1.5))


def test_chronicle_worker_sees_a_real_rebuild(conn, worker_env):
    env = {**worker_env, **FREE_METRICS_PORTS, **FAST}
    with WorkerProcess("chronicle", env) as worker:
        port = worker.health_port()
        _wait_for(port, "chronicle_events_to_entries", (1, 0, 0))

        done = run_cli(worker_env, "ops", "rebuild-chronicle")
        assert done.returncode == 0, done.stdout + done.stderr
        finished, duration, success = conn.execute(
            "SELECT extract(epoch FROM last_finished_at)::float8, last_duration_seconds, last_success "
            "FROM projection_status WHERE projection = 'chronicle_events_to_entries'").fetchone()
        assert success is True
        _wait_for(port, "chronicle_events_to_entries", (1, finished, duration))

        failed_at = _status(conn, "chronicle_events_to_entries", False, 0.5, "RebuildError: interrupted")
        _wait_for(port, "chronicle_events_to_entries", (0, failed_at, 0.5))
